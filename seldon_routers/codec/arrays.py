"""The tensor forms of DefaultData (ndarray, tensor, tftensor) to numpy, one way for
JSON and protobuf alike, so both transports give a router the same array."""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadRequest, quote

# TensorFlow lets one value fill a whole shape; bound it, or a 60-byte request could ask
# for gigabytes. Requests listing their values are bounded by the body size instead.
MAX_FILL = 1 << 20  # elements
MAX_DIMS = 32


def ndarray(values, field: str = "data.ndarray") -> np.ndarray:
    """A (nested) JSON list to an array. Numbers become float64 on every transport (a
    protobuf ListValue holds doubles only); anything else gives an object array."""
    if not isinstance(values, list):
        raise BadRequest(f"{field}: expected a JSON array, got {type(values).__name__}")
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        return np.array(values, dtype=object)
    except ValueError as exc:  # ragged nesting numpy cannot place
        raise BadRequest(f"{field}: not a rectangular array: {exc}") from None


def tensor(shape, values, field: str = "data.tensor") -> np.ndarray:
    """Seldon's Tensor: flat double values and a shape (no shape: a flat vector)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequest(f"{field}.values: expected a list of numbers") from None
    if arr.ndim != 1:
        raise BadRequest(f"{field}.values: expected a flat list of numbers")
    if not len(shape):
        return arr
    dims = list(shape)
    if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < 2**31 for d in dims) or len(dims) > MAX_DIMS:
        raise BadRequest(f"{field}.shape: expected at most {MAX_DIMS} non-negative integers, got {quote(dims)}")
    if math.prod(dims) != arr.size:
        raise BadRequest(f"{field}: shape {dims} does not fit {arr.size} values")
    return _reshape(arr, dims, field)


def _reshape(arr: np.ndarray, dims: list, field: str) -> np.ndarray:
    try:
        return arr.reshape(dims)
    except ValueError as exc:  # e.g. an empty array with dimensions numpy cannot index
        raise BadRequest(f"{field}: cannot shape values as {dims}: {exc}") from None


# tensorflow.DataType -> (numpy dtype, TensorProto field holding the values)
_TF_TYPES = {
    1: (np.float32, "float_val"),
    2: (np.float64, "double_val"),
    3: (np.int32, "int_val"),
    4: (np.uint8, "int_val"),
    5: (np.int16, "int_val"),
    6: (np.int8, "int_val"),
    7: (object, "string_val"),
    9: (np.int64, "int64_val"),
    10: (np.bool_, "bool_val"),
    17: (np.uint16, "int_val"),
    19: (np.float16, "half_val"),
    22: (np.uint32, "uint32_val"),
    23: (np.uint64, "uint64_val"),
}


def tftensor(proto, field: str = "data.tftensor") -> np.ndarray:
    """A tensorflow.TensorProto message to an array, as tf.make_ndarray would."""
    if proto.dtype not in _TF_TYPES:
        raise BadRequest(f"{field}.dtype: unsupported DataType {proto.dtype}")
    dtype, values_field = _TF_TYPES[proto.dtype]
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims) or len(dims) > MAX_DIMS:
        raise BadRequest(f"{field}.tensorShape: expected at most {MAX_DIMS} dimensions of known size, got {quote(dims)}")
    size = math.prod(dims)  # Python ints: no overflow
    if proto.tensor_content:
        if dtype is object:
            raise BadRequest(f"{field}.tensorContent: not allowed for DT_STRING")
        if len(proto.tensor_content) != size * np.dtype(dtype).itemsize:
            raise BadRequest(f"{field}.tensorContent: {len(proto.tensor_content)} bytes do not fit "
                             f"shape {dims} of {np.dtype(dtype).name}")
        return _reshape(np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<")).copy(), dims, field)
    raw = list(getattr(proto, values_field))
    try:
        if values_field == "half_val":
            arr = np.asarray(raw, dtype=np.uint16).view(np.float16)
        else:
            arr = np.array(raw, dtype=dtype)
    except OverflowError:  # int_val is int32 on the wire: 300 for DT_UINT8, 70000 in half_val
        json_name = values_field.split("_")[0] + "Val"
        kind = "float16 bits (uint16)" if values_field == "half_val" else np.dtype(dtype).name
        raise BadRequest(f"{field}.{json_name}: a value is out of range for {kind}") from None
    if arr.size == size:
        return _reshape(arr, dims, field)
    if arr.size == 1 and 0 < size <= MAX_FILL:  # TensorFlow's convention: one value fills the shape
        return np.full(dims, arr[0], dtype=arr.dtype)
    raise BadRequest(f"{field}: shape {dims} does not fit {arr.size} values"
                     + (f" (one value fills at most {MAX_FILL} elements)" if arr.size == 1 else ""))
