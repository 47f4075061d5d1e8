"""Builds model.onnx, the image-router example's stand-in classifier: it takes what a
torchvision cat-vs-dog export takes, (N, 3, 224, 224) float32 ImageNet-normalized NCHW,
and scores two classes from the image's mean colour: red-dominant -> class 0 ("red"),
blue-dominant -> class 1 ("blue"). Deterministic and a few hundred bytes, so it is
committed; replace it with your own export (same input, C logits) and keep the parameters.

    pip install onnx && python examples/image-router/build_model.py
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
# The router normalizes x = (pixel / 255 - mean) / std per channel (ImageNet's); the model
# undoes it on the mean colour so that its logits are 10 * (R - B) and 10 * (B - R), R and B in 0..1.
MEAN, STD, GAIN = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]), 10.0


def build(path: str = os.path.join(HERE, "model.onnx")) -> str:
    weights = np.zeros((3, 2), np.float32)
    weights[0], weights[2] = GAIN * STD[0] * np.array([1, -1]), GAIN * STD[2] * np.array([-1, 1])
    bias = (np.array([1, -1]) * GAIN * (MEAN[0] - MEAN[2])).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0),
         helper.make_node("Gemm", ["mean", "W", "b"], ["logits"])], "red_vs_blue",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="build_model.py")
    model.ir_version = 8
    helper.set_model_props(model, {"labels": json.dumps(["red", "blue"])})  # the router reads labels from here
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


if __name__ == "__main__":
    print("wrote", build())
