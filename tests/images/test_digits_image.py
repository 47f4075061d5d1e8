"""examples/digits-router/Dockerfile on images/Dockerfile's onnx target: the classifier
router with model.onnx, no torch, routing a held-out digit to its specialist."""

from __future__ import annotations

import requests

from podman_engine import ROOT
from support import MODELS, require


def test_the_onnx_image_routes_a_digit(podman, onnx_image, containers):
    datasets = require("sklearn.datasets", MODELS, "pip install scikit-learn (in the test extra)")
    image = podman.build("localhost/seldon-routers-classifier:test", "examples/digits-router/Dockerfile",
                         "--build-arg", f"ONNX_IMAGE={onnx_image}", context=ROOT)
    assert podman("run", "--rm", "--entrypoint=python", image, "-c",
                  "import importlib.util as u; print(u.find_spec('torch') is None)").stdout.strip() == "True"
    c = containers(image)
    digits = datasets.load_digits()
    seven = digits.data[digits.target == 7][:1].tolist()
    r = requests.post(c.url + "/route", json={"data": {"ndarray": seven}}, timeout=30)
    assert r.status_code == 200, r.text
    tags = r.json()["meta"]["tags"]["0"]
    assert (tags["class"], tags["route"], tags["branch"]) == (7, 1, "digits-5-9"), tags
