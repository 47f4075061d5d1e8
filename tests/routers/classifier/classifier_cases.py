"""What the classifier tests share: the committed digits models and how they map digits to
children; `need`, which gates a test on a model backend (skip on a user's machine, fail
where SELDON_ROUTERS_REQUIRE_MODELS=1, as in CI, so CI is never green by skipping); and
the calls the served tests make."""

from __future__ import annotations

import os

import grpc
import requests
from google.protobuf import json_format

from support import MODELS as REQUIRE_MODELS
from support import require
from seldon_routers.proto import prediction_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DIGITS = os.path.join(ROOT, "examples", "digits-router")
MODELS = {"torchscript": os.path.join(DIGITS, "model.pt"), "onnx": os.path.join(DIGITS, "model.onnx")}
SPECIALISTS = [0] * 5 + [1] * 5  # digits 0-4 -> child 0, 5-9 -> child 1, as the example's graph


def need(module: str, extra: str):
    """The module, or a skip (a failure where SELDON_ROUTERS_REQUIRE_MODELS=1)."""
    return require(module, REQUIRE_MODELS, f"pip install 'seldon-routers[{extra}]'")


def need_backend(backend: str):
    return need("torch", "torch") if backend == "torchscript" else need("onnxruntime", "onnx")


def route(url, body):
    return requests.post(url + "/route", json=body, timeout=10)


def grpc_route(target, body):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        return call(json_format.ParseDict(body, pb.SeldonMessage()), timeout=10)
