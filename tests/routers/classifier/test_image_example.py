"""examples/image-router: its SeldonDeployment's parameters (ImageNet's 224x224 eval
transform) build a router that sends red photos to the red specialist, blue ones to the
blue, an undecided grey to both; build_model.py rebuilds the committed model.onnx."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import yaml

from classifier_cases import ROOT, need
from image_cases import BLUE, RED, encode, solid
from seldon_routers import ClassifierRouter, params

EXAMPLE = os.path.join(ROOT, "examples", "image-router")


@pytest.fixture(scope="module")
def router(request):
    need("onnxruntime", "onnx")
    need("PIL.Image", "images")
    with open(os.path.join(EXAMPLE, "seldondeployment.yaml")) as f:
        unit = yaml.safe_load(f)["spec"]["predictors"][0]["graph"]
    kwargs = params.from_seldon_json(json.dumps(unit["parameters"]))
    kwargs["model_path"] = os.path.join(ROOT, kwargs["model_path"])  # relative to the image's /app
    router = params.build(ClassifierRouter, kwargs)
    router.load()
    yield router
    router.close()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_photos_go_to_the_specialist_for_their_colour(router, fmt):
    assert router.input_shape == (3, 224, 224) and router.labels == ["red", "blue"]
    for colour, child in ((RED, 0), (BLUE, 1)):
        d = router.classify(solid(colour, 640, 480, fmt))
        assert (d.child, d.tags["class"], d.tags["branch"]) == (child, ["red", "blue"][child],
                                                               ["red-specialist", "blue-specialist"][child])
    grey = router.classify(encode(np.full((300, 400, 3), 128, np.uint8), fmt))
    assert grey.child == -1 and grey.tags["fallback"] is True and grey.tags["probability"] < 0.8


def test_build_model_rebuilds_the_committed_model(tmp_path):
    ort = need("onnxruntime", "onnx")
    need("onnx", "onnx")
    spec = importlib.util.spec_from_file_location("build_model", os.path.join(EXAMPLE, "build_model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = module.build(str(tmp_path / "model.onnx"))
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    run = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
           for p in (rebuilt, os.path.join(EXAMPLE, "model.onnx"))]
    np.testing.assert_array_equal(*run)
