"""examples/image-router/Dockerfile on images/Dockerfile's onnx target: a PNG in binData,
decoded by the image's Pillow, routed to the specialist for its colour with the example
SeldonDeployment's parameters."""

from __future__ import annotations

import base64
import io
import json

import requests
import yaml

from podman_engine import ROOT
from support import MODELS, require


def test_the_onnx_image_routes_an_encoded_image(podman, onnx_image, containers):
    pil = require("PIL.Image", MODELS, "pip install -e '.[images]' (in the test extra)")
    image = podman.build("localhost/seldon-routers-images:test", "examples/image-router/Dockerfile",
                         "--build-arg", f"ONNX_IMAGE={onnx_image}", context=ROOT)
    doc = yaml.safe_load((ROOT / "examples" / "image-router" / "seldondeployment.yaml").read_text())
    parameters = doc["spec"]["predictors"][0]["graph"]["parameters"]
    c = containers(image, env={"PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters)})
    for colour, want in (((230, 10, 10), 0), ((10, 10, 230), 1)):
        png = io.BytesIO()
        pil.new("RGB", (320, 240), colour).save(png, format="PNG")
        r = requests.post(c.url + "/route", json={"binData": base64.b64encode(png.getvalue()).decode()}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["meta"]["tags"]["0"]["route"] == want, r.json()
    bad = requests.post(c.url + "/route", json={"binData": base64.b64encode(b"not an image").decode()}, timeout=30)
    assert bad.status_code == 400 and "binData" in bad.text
