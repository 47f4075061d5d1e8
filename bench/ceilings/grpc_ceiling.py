"""gRPC ceiling: the least a grpc.aio server can do for seldon.protos.Router/Route.

A generic handler with raw-bytes (de)serializers (request_deserializer=None,
response_serializer=None) answers every Route call with one pre-serialized SeldonMessage,
so no protobuf work happens per call: the throughput ceiling for any grpc.aio router.

    python bench/ceilings/grpc_ceiling.py --port 5000 [--uvloop]
"""

import argparse
import asyncio
import struct

import grpc

# SeldonMessage{data: DefaultData{names: ["t:0"], ndarray: [[1]]}}, encoded by hand so
# this module needs no generated code; serving.py checks it against prediction_pb2.


def _build_reply() -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    def ld(field: int, payload: bytes) -> bytes:  # length-delimited field
        return varint(field << 3 | 2) + varint(len(payload)) + payload

    number_value = b"\x11" + struct.pack("<d", 1.0)  # Value.number_value (field 2, double)
    inner_list = ld(1, number_value)  # ListValue{values: [1]}
    outer_list = ld(1, ld(6, inner_list))  # ListValue{values: [Value{list_value: [1]}]}
    default_data = ld(1, b"t:0") + ld(3, outer_list)
    return ld(3, default_data)


ROUTE_REPLY = _build_reply()


async def _route(request: bytes, context) -> bytes:
    return ROUTE_REPLY


async def serve(port: int, host: str) -> None:
    # no SO_REUSEPORT: a stale server on the port must fail the bind, not share the load
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        "seldon.protos.Router",
        {
            "Route": grpc.unary_unary_rpc_method_handler(
                _route, request_deserializer=None, response_serializer=None
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (default: asyncio)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.port, args.host))
    else:
        asyncio.run(serve(args.port, args.host))


if __name__ == "__main__":
    main()
