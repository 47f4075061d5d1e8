"""Every example SeldonDeployment that no README session runs (tests/graph/test_example_sessions.py)
runs through `seldon-router graph run`: a prediction is routed by its router and a feedback
for it is accepted, with the input the example's router reads (digits, a prompt, an image)."""

from __future__ import annotations

import base64
import io

import pytest
import yaml

from graph_runner import EXAMPLES, INJECT, ROOT
from redis_server import RedisServer, need_redis
from servers import free_port
from support import MODELS, require
from test_example_sessions import READMES, session

RUN_BY_SESSIONS = {(ROOT / session(r)[0]).resolve() for r in READMES}
DEPLOYMENTS = sorted(p for p in EXAMPLES.glob("*/seldondeployment*.yaml") if p.resolve() not in RUN_BY_SESSIONS)


def _digit() -> dict:
    require("sklearn", MODELS, "pip install scikit-learn")
    from sklearn.datasets import load_digits

    return {"data": {"ndarray": [load_digits().data[0].tolist()]}}


def _image() -> dict:
    require("PIL", MODELS, "pip install -e '.[images]'")
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 20, 20)).save(png, format="PNG")
    return {"binData": base64.b64encode(png.getvalue()).decode()}


# What each example's router reads; the rest take a row of numbers.
MESSAGES = {
    "digits-router": _digit,
    "prompt-router": lambda: {"strData": "How do I undo the last git commit but keep my changes?"},
    "image-router": _image,
}
# What an example's router needs beyond the test extra, as `module`: hint.
NEEDS = {"seldondeployment.yaml@digits-router": ("torch", "pip install torch (CPU)"),
         "prompt-router": ("sentence_transformers", "pip install -r examples/prompt-router/requirements.txt")}


def test_there_are_examples_the_sessions_leave_out():
    assert DEPLOYMENTS  # else this file tests nothing: drop it


@pytest.mark.parametrize("path", DEPLOYMENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_example_graph_routes_and_takes_feedback(path, runners, tmp_path):
    example = path.parent.name
    need = NEEDS.get(f"{path.name}@{example}") or NEEDS.get(example)
    if need:
        require(need[0], MODELS, need[1])
    doc = yaml.safe_load(path.read_text())
    redis = None
    if "redis://" in path.read_text():  # the example's Redis is a cluster service: one of the test's own
        need_redis()
        redis = RedisServer(free_port(), tmp_path).start()
        for predictor in doc["spec"]["predictors"]:
            for spec in predictor["componentSpecs"]:
                for container in spec["spec"]["containers"]:
                    for var in container.get("env", []):
                        if str(var.get("value", "")).startswith("redis://"):
                            var["value"] = redis.url
    try:
        runner = runners(doc if redis else path, env=INJECT)
        routers = [name for name, u in runner.units().items() if u.get("type") == "ROUTER"]
        assert routers, f"{path}: an example graph shows a router"
        message = {**MESSAGES.get(example, lambda: {"data": {"ndarray": [[1.0, 2.0]]}})(), "meta": {}}
        reply = runner.predict(message)
        assert reply.status_code == 200, reply.text
        routing = reply.json()["meta"]["routing"]
        assert all(isinstance(routing[name], int) and routing[name] >= -2 for name in routers), routing
        feedback = runner.feedback({"request": message, "response": reply.json(), "reward": 1.0})
        assert feedback.status_code == 200, feedback.text
        runner.stop()
    finally:
        if redis is not None:
            redis.stop()
