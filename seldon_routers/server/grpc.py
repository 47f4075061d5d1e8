"""gRPC: seldon.protos Router, Generic and Model services on grpc.aio, thin over the
dataplane, plus the standard gRPC health service. Methods not listed answer UNIMPLEMENTED
(grpc does that for any method no handler claims)."""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..errors import ConfigError, RouterError
from ..proto import prediction_pb2 as pb
from ..request import Headers
from .dataplane import DataPlane


def _unary(dp: DataPlane, path: str, message_cls, call):
    """A handler that parses the request itself, so undecodable bytes are INVALID_ARGUMENT
    (a failing request_deserializer would surface as an internal error)."""

    async def handler(raw: bytes, context: grpc.aio.ServicerContext):
        try:
            msg = message_cls.FromString(raw)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid {message_cls.__name__}: {exc}")
        try:
            # Metadata is fetched only if the router reads a header.
            return await call(msg, Headers(context.invocation_metadata), path)
        except RouterError as exc:
            await context.abort(grpc.StatusCode[exc.grpc_code], exc.message)

    return grpc.unary_unary_rpc_method_handler(handler)


def handlers(dp: DataPlane) -> list:
    route = lambda service: _unary(dp, f"/seldon.protos.{service}/Route", pb.SeldonMessage, dp.route_proto)  # noqa: E731
    feedback = lambda service: _unary(dp, f"/seldon.protos.{service}/SendFeedback", pb.Feedback, dp.feedback_proto)  # noqa: E731
    services = {
        "seldon.protos.Router": {"Route": route("Router"), "SendFeedback": feedback("Router")},
        "seldon.protos.Generic": {"Route": route("Generic"), "SendFeedback": feedback("Generic")},
        "seldon.protos.Model": {"SendFeedback": feedback("Model")},
    }
    return [grpc.method_handlers_generic_handler(name, methods) for name, methods in services.items()]


async def start(dp: DataPlane, host: str, port: int, max_message: int, reuse_port: bool = False):
    """Starts the gRPC server; returns (server, health servicer). Without reuse_port (one
    process) a port in use is an error; with it (workers) the kernel balances connections
    across the workers listening on the port."""
    # The limit bounds requests only, as over REST: a reply (say, with large tags) may exceed it.
    options = [("grpc.max_receive_message_length", max_message),
               ("grpc.so_reuseport", 1 if reuse_port else 0)]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(handlers(dp))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpc's only signal for a port that cannot be bound
        raise ConfigError(f"--grpc-port: cannot listen on {host}:{port} (already in use?)") from None
    await server.start()
    return server, health_servicer


async def set_serving(health_servicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", "seldon.protos.Router", "seldon.protos.Generic", "seldon.protos.Model"):
        await health_servicer.set(service, status)
