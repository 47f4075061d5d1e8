"""The tensor forms of DefaultData (ndarray, tensor, tftensor) to numpy, one way for
JSON and protobuf alike, so both transports give a router the same array."""

from __future__ import annotations

import numpy as np

from ..errors import BadRequest


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
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in dims):
        raise BadRequest(f"{field}.shape: expected non-negative integers, got {dims}")
    if int(np.prod(dims, dtype=np.int64)) != arr.size:
        raise BadRequest(f"{field}: shape {dims} does not fit {arr.size} values")
    return arr.reshape(dims)


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
    if any(d < 0 for d in dims):
        raise BadRequest(f"{field}.tensorShape: unknown (-1) dimensions are not allowed in a request")
    size = int(np.prod(dims, dtype=np.int64))
    if proto.tensor_content:
        if dtype is object:
            raise BadRequest(f"{field}.tensorContent: not allowed for DT_STRING")
        if len(proto.tensor_content) != size * np.dtype(dtype).itemsize:
            raise BadRequest(f"{field}.tensorContent: {len(proto.tensor_content)} bytes do not fit "
                             f"shape {dims} of {np.dtype(dtype).name}")
        return np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims).copy()
    raw = list(getattr(proto, values_field))
    if values_field == "half_val":
        arr = np.asarray(raw, dtype=np.uint16).view(np.float16)
    else:
        arr = np.array(raw, dtype=dtype)
    if arr.size == size:
        return arr.reshape(dims)
    if arr.size == 1 and size > 0:  # TensorFlow's convention: one value fills the shape
        return np.full(dims, arr[0], dtype=arr.dtype)
    if arr.size == 0 and size == 0:
        return arr.reshape(dims)
    raise BadRequest(f"{field}: shape {dims} does not fit {arr.size} values")
