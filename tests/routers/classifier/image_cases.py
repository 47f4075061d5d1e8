"""What the image-input tests share: a real ONNX model that classifies by mean colour
(red-dominant -> class 0, blue-dominant -> class 1), built with the `onnx` package, and
PNG/JPEG images encoded with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from classifier_cases import need

RED, BLUE = (220, 30, 40), (30, 40, 220)


def colour_onnx(path, size=(32, 32), layout: str = "NCHW", gain: float = 10.0) -> str:
    """scores = gain * [R - B, B - R] of the image's mean colour. size None: H and W symbolic."""
    onnx = need("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    h, w = size if size is not None else ("H", "W")
    dims, axes = (["N", 3, h, w], [2, 3]) if layout == "NCHW" else (["N", h, w, 3], [1, 2])
    weights = numpy_helper.from_array(np.array([[gain, -gain], [0, 0], [-gain, gain]], np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["mean"], axes=axes, keepdims=0),
         helper.make_node("MatMul", ["mean", "W"], ["scores"])], "colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def encode(pixels, fmt: str = "PNG", **save) -> bytes:
    """An (H, W[, C]) array (uint8; uint16: a 16-bit PNG) or a Pillow image as PNG or JPEG bytes."""
    Image = need("PIL.Image", "images")
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels))
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def solid(colour, width: int = 40, height: int = 30, fmt: str = "PNG") -> bytes:
    return encode(np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)), fmt)


def with_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's header): IHDR rewritten,
    its CRC recomputed, so Pillow reads it as a valid header."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + png[33:]
