"""gRPC: the seldon.protos services Seldon's wrapper serves for any unit (Router, Generic,
Model, Transformer, OutputTransformer, Combiner, Seldon) on grpc.aio, thin over the
dataplane (server/unit_calls.py for the calls a router only answers for parity), plus the
standard gRPC health service. Methods not listed answer UNIMPLEMENTED (grpc does that for
any method no handler claims)."""

from __future__ import annotations

from functools import partial

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..errors import ConfigError, NotDefined, RouterError
from ..proto import prediction_pb2 as pb
from ..request import Headers
from . import forwarded, unit_calls
from .dataplane import DataPlane


# Every service handlers() serves (the health service reports each of them).
SERVICES = ("Router", "Generic", "Model", "Transformer", "OutputTransformer", "Combiner", "Seldon")


def _unary(path: str, message_cls, call, path_header: str = ""):
    """A handler that parses the request itself, so undecodable bytes are INVALID_ARGUMENT
    (a failing request_deserializer would surface as an internal error). With path_header
    (route and feedback), the client's original path and query come from that metadata."""

    async def handler(raw: bytes, context: grpc.aio.ServicerContext):
        try:
            msg = message_cls.FromString(raw)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid {message_cls.__name__}: {exc}")
        try:
            if path_header:
                pairs = context.invocation_metadata()
                values = forwarded.metadata_values(pairs, path_header)
                request_path, query = forwarded.resolve(values, path_header, path, {})
                return await call(msg, Headers(pairs), request_path, query)
            # Metadata is fetched only if the router reads a header.
            return await call(msg, Headers(context.invocation_metadata), path, {})
        except RouterError as exc:  # its headers (Retry-After, x-ratelimit-*) as trailing metadata
            await context.abort(grpc.StatusCode[exc.grpc_code], exc.message, tuple(exc.header_pairs()))

    return grpc.unary_unary_rpc_method_handler(handler)


async def _metadata_of_a_graph(msg):
    raise NotDefined("GraphMetadata is not available on a unit, only on a whole graph (the executor's)")


def handlers(dp: DataPlane, path_header: str = forwarded.DEFAULT_PATH_HEADER) -> list:
    """The method handlers of every service, as Seldon's wrapper registers them for a unit."""
    path_header = forwarded.header_name(path_header, "path_header")

    def forwarding(method, message_cls, call):  # route and feedback: the path header applies
        return method, lambda service: _unary(f"/seldon.protos.{service}/{method}", message_cls, call, path_header)

    def parity(method, message_cls, call):  # answered as the wrapper answers it (unit_calls.py)
        return method, lambda service: _unary(f"/seldon.protos.{service}/{method}", message_cls,
                                              lambda msg, *_: call(msg))

    async def metadata(_):
        return unit_calls.metadata_proto(dp)

    route = forwarding("Route", pb.SeldonMessage, dp.route_proto)
    feedback = forwarding("SendFeedback", pb.Feedback, dp.feedback_proto)
    predict = parity("Predict", pb.SeldonMessage, partial(unit_calls.predict_proto, dp))
    transform_input = parity("TransformInput", pb.SeldonMessage,
                             partial(unit_calls.transform_proto, dp, "transform-input"))
    transform_output = parity("TransformOutput", pb.SeldonMessage,
                              partial(unit_calls.transform_proto, dp, "transform-output"))
    aggregate = parity("Aggregate", pb.SeldonMessageList, partial(unit_calls.aggregate_proto, dp))
    # Model/Metadata takes an Empty, Seldon/ModelMetadata a {name} (read as an Empty): both
    # answer this unit's metadata.
    services = {
        "Router": (route, feedback),
        "Generic": (transform_input, transform_output, route, aggregate, feedback),
        "Model": (predict, feedback, parity("Metadata", empty_pb2.Empty, metadata)),
        "Transformer": (transform_input,),
        "OutputTransformer": (transform_output,),
        "Combiner": (aggregate,),
        "Seldon": (predict, feedback, parity("ModelMetadata", empty_pb2.Empty, metadata),
                   parity("GraphMetadata", empty_pb2.Empty, _metadata_of_a_graph)),
    }
    assert tuple(services) == SERVICES
    return [grpc.method_handlers_generic_handler(f"seldon.protos.{name}", {m: make(name) for m, make in methods})
            for name, methods in services.items()]


async def start(dp: DataPlane, host: str, port: int, max_message: int, reuse_port: bool = False,
                path_header: str = forwarded.DEFAULT_PATH_HEADER, read_timeout: float = 30.0):
    """Starts the gRPC server; returns (server, health servicer). Without reuse_port (one
    process) a port in use is an error; with it (workers) the kernel balances connections
    across the workers listening on the port."""
    # The limit bounds requests only, as over REST: a reply (say, with large tags) may exceed it.
    # The handshake timeout (grpc's default 120 s) drops a connection that has not sent
    # HTTP/2's preface and SETTINGS within --read-timeout, as REST drops slow headers.
    options = [("grpc.max_receive_message_length", max_message),
               ("grpc.so_reuseport", 1 if reuse_port else 0),
               ("grpc.server_handshake_timeout_ms", max(1, int(read_timeout * 1000)))]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(handlers(dp, path_header))
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
    for service in ("", *(f"seldon.protos.{name}" for name in SERVICES)):
        await health_servicer.set(service, status)
