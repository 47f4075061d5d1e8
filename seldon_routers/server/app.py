"""One process, one router: REST (uvicorn), gRPC (grpc.aio) and metrics in one event
loop. SIGTERM/SIGINT: not ready at once, stop accepting, drain in-flight calls, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

import uvicorn
from prometheus_client import make_asgi_app

from . import grpc as grpc_transport
from .dataplane import DataPlane
from .rest import DEFAULT_MAX_BODY, RestApp

log = logging.getLogger("seldon_routers")


@dataclass
class Settings:
    host: str = "0.0.0.0"
    http_port: int = 9000
    grpc_port: int = 5000
    metrics_port: int = 6000
    metrics_path: str = "/metrics"
    max_body_size: int = DEFAULT_MAX_BODY
    graceful_timeout: float = 25.0  # under Kubernetes' default 30 s termination grace
    log_level: str = "info"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this module owns shutdown for all three."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _uvicorn(app, host: str, port: int, settings: Settings) -> _Server:
    config = uvicorn.Config(app, host=host, port=port, http="httptools", lifespan="off",
                            access_log=False, log_level=settings.log_level, server_header=False,
                            date_header=False, timeout_graceful_shutdown=settings.graceful_timeout,
                            backlog=2048)
    return _Server(config)


def _metrics_app(dp: DataPlane, path: str):
    inner = make_asgi_app(dp.metrics.registry)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] != path:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"metrics are at " + path.encode()})
            return
        await inner(scope, receive, send)

    return app


async def serve(dp: DataPlane, settings: Settings) -> None:
    rest = _uvicorn(RestApp(dp, settings.max_body_size), settings.host, settings.http_port, settings)
    metrics = _uvicorn(_metrics_app(dp, settings.metrics_path), settings.host, settings.metrics_port, settings)
    grpc_server, health = await grpc_transport.start(dp, settings.host, settings.grpc_port, settings.max_body_size)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    async def shutdown():
        await stopping.wait()
        log.info("shutting down: draining in-flight calls (up to %ss)", settings.graceful_timeout)
        dp.ready = False
        await grpc_transport.set_serving(health, False)
        rest.should_exit = metrics.should_exit = True
        await grpc_server.stop(settings.graceful_timeout)

    tasks = [asyncio.ensure_future(t) for t in (rest.serve(), metrics.serve(), shutdown())]
    await asyncio.sleep(0)
    # Load after the listeners are up, so /live answers while a model loads.
    try:
        await dp.start()
    except BaseException:  # e.g. a snapshot that cannot be restored: stop the listeners, then say why
        rest.should_exit = metrics.should_exit = True
        await grpc_server.stop(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    await grpc_transport.set_serving(health, True)
    log.info("router %s (unit %s) ready: REST :%d, gRPC :%d, metrics :%d%s", dp.name, dp.unit_id,
             settings.http_port, settings.grpc_port, settings.metrics_port, settings.metrics_path)
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    if not stopping.is_set():  # a listener died (e.g. port in use): stop the rest too
        stopping.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await dp.store.stop()  # after the last call drained: the final snapshot or flush has it
    for task in done:
        if task.exception():
            raise task.exception()
    if not rest.started or not metrics.started:
        raise SystemExit(f"could not listen on {settings.host}:{settings.http_port}/{settings.metrics_port}")


def run(dp: DataPlane, settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, just slower
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(dp, settings))
    else:
        asyncio.run(serve(dp, settings))
