"""Runs INSIDE the seldon-core 1.18.2 venv (its python, protobuf 3 and generated stubs).

The interop tests start it as a subprocess with the venv's python and read one JSON
document from stdout, so that Seldon's own code, not ours, builds and parses the messages.

  client --endpoint HOST:PORT --transport rest|grpc --payload tensor|ndarray|json|str
      SeldonClient.microservice(method="route") then microservice_feedback() with the
      request and response of that route, as a user testing a microservice would.
  stub --target HOST:PORT --service Router|Generic --method Route|SendFeedback --json MSG
      one call (or --repeat N) through seldon_core.proto.prediction_pb2_grpc stubs.
"""

import argparse
import json

import grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc
from seldon_core.seldon_client import SeldonClient


def to_dict(msg):
    return None if msg is None else json_format.MessageToDict(msg)


def client(args):
    sc = SeldonClient(microservice_endpoint=args.endpoint, transport=args.transport)
    if args.payload == "json":
        data = {"json_data": {"user": "u1", "features": [1, 2, 3]}}
    elif args.payload == "str":
        data = {"str_data": "hello"}
    else:  # tftensor needs TensorFlow, which the venv does not have
        data = {"payload_type": args.payload, "shape": (2, 3), "names": ["a", "b", "c"]}
    r = sc.microservice(method="route", **data)
    f = sc.microservice_feedback(prediction_request=r.request, prediction_response=r.response,
                                 reward=args.reward)
    return {
        "route": {"success": r.success, "msg": r.msg, "response": to_dict(r.response)},
        "feedback": {"success": f.success, "msg": f.msg, "response": to_dict(f.response)},
    }


def stub(args):
    channel = grpc.insecure_channel(args.target)
    # The wrapper's gRPC server is a separate process that may come up after its REST one.
    grpc.channel_ready_future(channel).result(timeout=30)
    call = getattr(getattr(prediction_pb2_grpc, args.service + "Stub")(channel), args.method)
    request_type = prediction_pb2.Feedback if args.method == "SendFeedback" else prediction_pb2.SeldonMessage
    request = json_format.Parse(args.json, request_type())
    replies = []
    for _ in range(args.repeat):
        try:
            replies.append(to_dict(call(request, timeout=10)))
        except grpc.RpcError as e:
            replies.append({"error": e.code().name, "details": e.details()})
    channel.close()
    return replies


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--endpoint", required=True)
    c.add_argument("--transport", choices=["rest", "grpc"], required=True)
    c.add_argument("--payload", choices=["tensor", "ndarray", "json", "str"], default="tensor")
    c.add_argument("--reward", type=float, default=1.0)
    s = sub.add_parser("stub")
    s.add_argument("--target", required=True)
    s.add_argument("--service", choices=["Router", "Generic"], required=True)
    s.add_argument("--method", choices=["Route", "SendFeedback"], required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    print(json.dumps(client(args) if args.cmd == "client" else stub(args)))


if __name__ == "__main__":
    main()
