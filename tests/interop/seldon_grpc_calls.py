"""Runs INSIDE the seldon-core 1.18.2 venv: calls every method of every service in Seldon's
own prediction.proto once, with Seldon's generated stubs and messages, and prints what
each answered as JSON: {"Service/Method": {"code": "OK", "reply": {...}} or
{"code": "UNIMPLEMENTED", "details": "..."}}, plus two raw calls: bytes that are no
SeldonMessage, and a method no service has.

  python seldon_grpc_calls.py HOST:PORT UNIT_ID
"""

import json
import sys

import grpc
from google.protobuf import empty_pb2, json_format
from seldon_core.proto import prediction_pb2 as pb
from seldon_core.proto import prediction_pb2_grpc as pb_grpc


def requests_by_type(unit: str) -> dict:
    message = json_format.ParseDict({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]},
                                     "meta": {"puid": "p1", "tags": {"user": "u1"}}}, pb.SeldonMessage())
    response = json_format.ParseDict({"meta": {"routing": {unit: 1}}}, pb.SeldonMessage())
    return {
        "SeldonMessage": message,
        "Feedback": pb.Feedback(request=message, response=response, reward=1.0),
        "SeldonMessageList": pb.SeldonMessageList(seldonMessages=[message, message]),
        "Empty": empty_pb2.Empty(),
        "SeldonModelMetadataRequest": pb.SeldonModelMetadataRequest(name="router"),
    }


def call(fn, request) -> dict:
    try:
        reply = fn(request, timeout=10)
    except grpc.RpcError as exc:
        return {"code": exc.code().name, "details": exc.details()}
    # Parsing the reply with Seldon's own messages is part of the check: a field of a
    # different type (SeldonModelMetadata.custom) would fail to decode here.
    return {"code": "OK", "reply": json_format.MessageToDict(reply) if hasattr(reply, "DESCRIPTOR") else None}


def main():
    target, unit = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    # The wrapper's gRPC server is a separate process that may come up after its REST one.
    grpc.channel_ready_future(channel).result(timeout=30)
    by_type = requests_by_type(unit)
    out = {}
    for service_name, service in pb.DESCRIPTOR.services_by_name.items():
        stub = getattr(pb_grpc, service_name + "Stub")(channel)
        for method in service.methods:
            out[f"{service_name}/{method.name}"] = call(getattr(stub, method.name), by_type[method.input_type.name])
    out["garbage:Router/Route"] = call(channel.unary_unary("/seldon.protos.Router/Route"), b"\xff\xff\xff")
    out["missing:Router/Predict"] = call(channel.unary_unary("/seldon.protos.Router/Predict"), b"")
    channel.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
