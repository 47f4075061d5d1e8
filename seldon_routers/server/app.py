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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..codec import replies
from ..errors import ConfigError, HeadersTooLarge
from .dataplane import DataPlane
from .forwarded import DEFAULT_PATH_HEADER
from .pod_watcher import unwatch, watch_pods
from .rest import DEFAULT_MAX_BODY, DEFAULT_READ_TIMEOUT, READ_DEADLINE, RestApp

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
    read_timeout: float = DEFAULT_READ_TIMEOUT  # seconds for a whole request, headers and body
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


# A request line and headers beyond this many bytes are a 431 (Envoy's default is 60 KiB,
# gRPC's metadata limit 8 KiB): httptools itself would keep any amount in memory.
MAX_HEAD_BYTES = 64 * 1024


class _HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops parsing, uvicorn calls send_400_response."""


class _ReadBounded(HttpToolsProtocol):
    """uvicorn's httptools protocol with what uvicorn lacks, bounds on reading each request.
    Time: `read_timeout` seconds from the connection (its first request) or from the
    request's first byte (the next ones on a keep-alive connection). Headers not all in by
    then: the connection closes. The body: the app answers 408 at the same deadline (it gets
    it in the scope, rest.READ_DEADLINE), then the connection closes. Size: a request line
    and headers over MAX_HEAD_BYTES are a 431, and the connection closes."""

    read_timeout = DEFAULT_READ_TIMEOUT

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._read_timer = None
        self._headers_in = False
        self._arm()

    def _arm(self) -> None:
        if self._read_timer is None:
            self._deadline = self.loop.time() + self.read_timeout
            self._read_timer = self.loop.call_at(self._deadline, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_in = False
        self._head_bytes = 0
        self._arm()  # (the first request keeps the deadline its connection got)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # with ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def send_400_response(self, msg: str) -> None:
        if getattr(self, "_head_bytes", 0) <= MAX_HEAD_BYTES:
            return super().send_400_response(msg)
        exc = HeadersTooLarge(f"request line and headers: over the limit of {MAX_HEAD_BYTES} bytes")
        _, body, _ = replies.error_reply(exc)
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._headers_in = True
        self.scope[READ_DEADLINE] = self._deadline
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        cycle = self.cycle
        if not self._headers_in or cycle is None or cycle.response_complete:
            # headers still trickling in, or an answered request whose body still does
            self.transport.close()
        else:  # the app is reading the body: it answers 408, and the connection closes after
            cycle.keep_alive = False


def _read_bounded(read_timeout: float) -> type:
    return type("ReadBoundedHttpTools", (_ReadBounded,), {"read_timeout": read_timeout})


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this module owns shutdown for all three."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _uvicorn(app, host: str, port: int, settings: Settings) -> _Server:
    # log_config=None: uvicorn's records go to the root handler `seldon-router` configures
    # (one format, and a worker's prefix), not to handlers of uvicorn's own as well.
    config = uvicorn.Config(app, host=host, port=port, http=_read_bounded(settings.read_timeout),
                            lifespan="off", log_config=None,
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


DRAIN_SETTLE = 0.5  # seconds a stopping server still serves gRPC: calls already sent arrive and run


async def _drain_grpc(grpc_server, dp: DataPlane, grace: float) -> None:
    """grpc.aio's stop() cancels the calls it has received but not yet handed to a handler
    (the client sees CANCELLED, which it does not retry). So serve on for a moment, then
    refuse new calls (UNAVAILABLE, which clients retry elsewhere) until the running ones
    end, and stop only then, within `grace` in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    await asyncio.sleep(min(DRAIN_SETTLE, grace))
    dp.draining = True
    while dp.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # what grpc core had queued reaches a handler, and is refused
    await grpc_server.stop(max(deadline - loop.time(), 0.0))


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
                                                         settings.path_header, settings.read_timeout)
    except BaseException:
        for sock in sockets:
            sock.close()
        await unwatch(watcher)
        if load_first:
            await dp.stop()
        raise
    servers = [_uvicorn(RestApp(dp, settings.max_body_size, settings.path_header, settings.read_timeout),
                        settings.host, settings.http_port, settings)]
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
        await _drain_grpc(grpc_server, dp, settings.graceful_timeout)

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
