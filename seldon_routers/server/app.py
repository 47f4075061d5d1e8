"""One process, one router: REST (uvicorn), gRPC (grpc.aio) and metrics in one event
loop. SIGTERM/SIGINT: not ready at once, stop accepting, drain in-flight calls, exit 0.

With `--workers N` (server/workers.py) each worker runs this with `reuse_port` (the
kernel balances connections across the workers' listeners) and without the metrics port,
which the supervisor serves for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import socket
from dataclasses import dataclass

import uvicorn
from prometheus_client import make_asgi_app

from ..errors import ConfigError
from .dataplane import DataPlane
from .forwarded import DEFAULT_PATH_HEADER
from .pod_watcher import unwatch, watch_pods
from .rest import DEFAULT_MAX_BODY, RestApp

log = logging.getLogger("seldon_routers")

# Two uvicorn servers run in this process (REST, metrics), and each logs its own lifecycle
# ("Started server process [pid]", "Shutting down", ...): the same lines twice. The metrics
# server's task sets this, and the filter below drops its info lines (warnings still show).
_QUIET = contextvars.ContextVar("seldon_routers_quiet_uvicorn", default=False)


def _not_quieted(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not _QUIET.get()


def _quiet_filter() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")  # its lifecycle lines (uvicorn.access is off)
    if _not_quieted not in uvicorn_log.filters:
        uvicorn_log.addFilter(_not_quieted)


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
    path_header: str = DEFAULT_PATH_HEADER  # the client's original path, from a gateway ("": off)
    reuse_port: bool = False  # a worker: share the REST and gRPC ports with the other workers
    serve_metrics: bool = True  # a worker: no, the supervisor serves every worker's metrics


def listen_socket(host: str, port: int, flag: str, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening); a port that cannot be bound is a
    ConfigError naming the flag. Without reuse_port, binding fails while anyone listens there."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host: cannot resolve {host!r} ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and gRPC do
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{flag}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this module owns shutdown for all three."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _uvicorn(app, host: str, port: int, settings: Settings) -> _Server:
    # log_config=None: uvicorn's records go to the root handler `seldon-router` configures
    # (one format, and a worker's prefix), not to handlers of uvicorn's own as well.
    config = uvicorn.Config(app, host=host, port=port, http="httptools", lifespan="off", log_config=None,
                            access_log=False, log_level=settings.log_level, server_header=False,
                            date_header=False, timeout_graceful_shutdown=settings.graceful_timeout,
                            backlog=2048)
    return _Server(config)


def metrics_app(registry, path: str):
    """Prometheus' exposition of `registry` at `path` (404 elsewhere)."""
    inner = make_asgi_app(registry)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] != path:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"metrics are at " + path.encode()})
            return
        await inner(scope, receive, send)

    return app


async def serve(dp: DataPlane, settings: Settings, link=None) -> None:
    """Serves until SIGTERM/SIGINT. `link` (a worker's workers.WorkerLink) is told when the
    worker is ready, and stops it if its supervisor goes away."""
    from . import grpc as grpc_transport  # loaded here: a supervisor never loads grpc

    # One process loads after its listeners are up, so /live answers while a model loads. A
    # worker loads first, then joins the shared ports: a worker still loading (a restarted
    # one) never takes connections, with 503s, that a loaded worker could serve.
    load_first = settings.reuse_port
    watcher = None  # an LLM router's pods with a url: scraped from before it is ready until it stops
    if load_first:
        await dp.start()
        watcher = await watch_pods(dp.router)
    sockets = []
    try:
        sockets.append(listen_socket(settings.host, settings.http_port, "--http-port", settings.reuse_port))
        if settings.serve_metrics:
            sockets.append(listen_socket(settings.host, settings.metrics_port, "--metrics-port"))
        grpc_server, health = await grpc_transport.start(dp, settings.host, settings.grpc_port,
                                                         settings.max_body_size, settings.reuse_port,
                                                         settings.path_header)
    except BaseException:
        for sock in sockets:
            sock.close()
        await unwatch(watcher)
        if load_first:
            await dp.stop()
        raise
    servers = [_uvicorn(RestApp(dp, settings.max_body_size, settings.path_header), settings.host,
                        settings.http_port, settings)]
    if settings.serve_metrics:
        servers.append(_uvicorn(metrics_app(dp.metrics.registry, settings.metrics_path), settings.host,
                                settings.metrics_port, settings))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    async def shutdown():
        await stopping.wait()
        log.info("shutting down: draining in-flight calls (up to %ss)", settings.graceful_timeout)
        dp.ready = False
        await grpc_transport.set_serving(health, False)
        for server in servers:
            server.should_exit = True
        await grpc_server.stop(settings.graceful_timeout)

    _quiet_filter()

    async def quietly(server, sock):  # in its own task, so _QUIET is set for this server only
        _QUIET.set(True)
        await server.serve(sockets=[sock])

    runs = [servers[0].serve(sockets=[sockets[0]])] + [quietly(s, sock) for s, sock in zip(servers[1:], sockets[1:])]
    tasks = [asyncio.ensure_future(t) for t in runs + [shutdown()]]
    await asyncio.sleep(0)
    try:
        if not load_first:
            watcher = await watch_pods(dp.router)
            await dp.start()
    except BaseException:  # e.g. a snapshot that cannot be restored: stop the listeners, then say why
        for server in servers:
            server.should_exit = True
        await grpc_server.stop(0)
        await unwatch(watcher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    await grpc_transport.set_serving(health, True)
    metrics_at = (f"metrics :{settings.metrics_port}{settings.metrics_path}" if settings.serve_metrics
                  else "metrics from the supervisor")
    log.info("router %s (unit %s) ready: REST :%d, gRPC :%d, %s", dp.name, dp.unit_id,
             settings.http_port, settings.grpc_port, metrics_at)
    orphaned = None
    if link is not None:
        link.ready()

        async def supervisor_gone():
            await link.orphaned()
            log.warning("the supervisor is gone: shutting down")
            stopping.set()

        orphaned = asyncio.ensure_future(supervisor_gone())
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    if not stopping.is_set():  # a listener died: stop the rest too
        stopping.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if orphaned is not None:
        orphaned.cancel()
    await unwatch(watcher)
    await dp.stop()  # after the last call drained: the final snapshot or flush has it, then close()
    for task in done:
        if task.exception():
            raise task.exception()
    if not all(server.started for server in servers):
        raise SystemExit(f"could not listen on {settings.host}:{settings.http_port}/{settings.metrics_port}")


def run(dp: DataPlane, settings: Settings, link=None) -> None:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, just slower
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(dp, settings, link))
    else:
        asyncio.run(serve(dp, settings, link))
