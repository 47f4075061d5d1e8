"""inputs=image behind real servers, in process, built from string parameters as `seldon-router
serve classifier ...` builds it: PNG and JPEG images as base64 binData in REST JSON and as
bytes binData over gRPC, bad images as 400 / INVALID_ARGUMENT naming binData (and the next
call unharmed), concurrent image calls counted in the batch histograms."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests

from classifier_cases import grpc_route, need, route
from image_cases import BLUE, RED, colour_onnx, solid
from seldon_routers.proto import prediction_pb2 as pb
from servers import serving
from support import scrape


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    need("onnxruntime", "onnx")
    need("PIL.Image", "images")
    path = colour_onnx(tmp_path_factory.mktemp("models") / "colour.onnx", size=None)
    with serving("classifier", f"model_path={path}", "inputs=image", "image_size=32", "image_resize_shorter=36",
                 "image_mean=0.485,0.456,0.406", "image_std=0.229,0.224,0.225", "labels=red:blue",
                 "branch_names=reds:blues", unit_id="colour") as rp:
        yield rp


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def grpc_bytes(target, data: bytes):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        return call(pb.SeldonMessage(binData=data), timeout=10)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_images_over_rest_and_grpc(colours, fmt):
    for colour, child in ((RED, 0), (BLUE, 1)):
        image = solid(colour, 50, 40, fmt)
        r = route(colours.url, {"binData": b64(image)})
        assert r.status_code == 200, r.text
        tags = r.json()["meta"]["tags"]["colour"]
        assert (tags["class"], tags["route"]) == (["red", "blue"][child], child)
        assert tags["branch"] == ["reds", "blues"][child]
        assert r.json()["data"]["ndarray"] == [[child]]
        assert grpc_bytes(colours.grpc_target, image).meta.routing["colour"] == child


BAD = [(b"GIF89a not really", "binData: not a PNG or JPEG image"),
       (solid(RED)[:60], "binData: a broken or truncated PNG image")]


@pytest.mark.parametrize("data, message", BAD, ids=["not-an-image", "truncated"])
def test_a_bad_image_is_a_400_and_the_next_call_is_served(colours, data, message):
    r = route(colours.url, {"binData": b64(data)})
    assert r.status_code == 400, r.text
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA" and r.json()["status"]["info"].startswith(message)
    with pytest.raises(grpc.RpcError) as info:
        grpc_bytes(colours.grpc_target, data)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()
    assert route(colours.url, {"binData": b64(solid(BLUE))}).json()["meta"]["routing"] == {"colour": 1}


def test_other_data_is_a_400_naming_bindata(colours):
    r = route(colours.url, {"data": {"ndarray": [[1, 2, 3]]}})
    assert r.status_code == 400 and r.json()["status"]["info"] == ("features: expected binData: a PNG or JPEG "
                                                                   "image, got ndarray")
    r = route(colours.url, {"binData": "not base64!"})
    assert r.status_code == 400 and r.json()["status"]["info"] == "binData: not valid base64"
    reply = grpc_route(colours.grpc_target, {"binData": b64(solid(RED))})  # JSON-shaped proto: base64 there too
    assert reply.meta.routing["colour"] == 0


def test_concurrent_image_calls_show_in_the_batch_histograms(colours):
    def counts():
        samples = scrape(colours)
        return [samples.value("seldon_router_classifier_batch_size_count"),
                samples.value("seldon_router_classifier_batch_size_sum")]

    before = counts()
    bodies = [{"binData": b64(solid(RED if i % 2 else BLUE, 30 + i, 40))} for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda b: route(colours.url, b), bodies))
    assert [r.json()["meta"]["routing"]["colour"] for r in replies] == [0 if i % 2 else 1 for i in range(32)]
    batches, rows = (a - b for a, b in zip(counts(), before))
    assert 1 <= batches <= 32 and rows == 32  # concurrent calls may share a model call
    state = requests.get(colours.url + "/state", timeout=10).json()["state"]
    assert state["inputs"] == "image" and state["input_shape"] == [3, 32, 32]
    assert state["image"]["resize_shorter"] == 36 and state["image"]["resample"] == "bilinear"
    assert state["image"]["mean"] == [0.485, 0.456, 0.406] and state["image"]["std"] == [0.229, 0.224, 0.225]
