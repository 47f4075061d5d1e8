"""The gateway's ASGI app and its process: OpenAI endpoints in front of the pods.

  POST /v1/chat/completions, /v1/completions, /v1/embeddings   routed, forwarded, streamed
  GET  /v1/models     the models (and LoRA adapters) the pods serve, with the pods of each
  GET  /health        alive;  GET /ready: the router loaded and some pod up
  GET  /metrics       Prometheus: the router's metrics and the gateway's per pod and model
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from typing import Optional

import aiohttp
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import params, registry
from ..codec import replies
from ..errors import QUOTE_LIMIT, BadRequest, ConfigError, MethodNotAllowed, NotFound, NotReady, RouterError, clip, quote
from ..request import Headers
from ..server.app import Settings, _uvicorn, listen_socket
from ..server.dataplane import DataPlane
from ..server.pod_watcher import start_for
from ..server.rest import DEFAULT_MAX_BODY, DEFAULT_READ_TIMEOUT, read_body, read_deadline
from ..state import StoreOptions, open_store
from . import sse
from .config import Config
from .forward import Forwarder, UpstreamFailed, error_event, response_headers, usage_in
from .metrics import GatewayMetrics

log = logging.getLogger("seldon_routers.gateway")
requests_log = logging.getLogger("seldon_routers.gateway.requests")

COMPLETIONS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
WATCH_AFTER = 0.05  # seconds into a request before the client's leaving is watched for
JSON = [(b"content-type", b"application/json")]
# Model names a client made up (not in the config) that still get a `model` label of their
# own; past these, or past MAX_LABEL_CHARS, "other": each name is a series kept for good.
MAX_MODEL_LABELS = 100
MAX_LABEL_CHARS = 128


def build_router(cfg: Config):
    """The configured router, given the pods (an LLM router) or their count (any other)."""
    cls = registry.resolve(cfg.router)
    names = {p["name"] for p in params.describe(cls)}
    parameters = dict(cfg.parameters)
    if "pods" in names:
        parameters["pods"] = cfg.pods
    elif "n_branches" in names:
        parameters.setdefault("n_branches", len(cfg.pods))
    router = params.build(cls, parameters)
    n = getattr(router, "n_children", None)
    if n is not None and n != len(cfg.pods):
        raise ConfigError(f"router: {cfg.router} has {n} children for {len(cfg.pods)} pods")
    return router


class Gateway:
    def __init__(self, cfg: Config, dp: DataPlane, max_body_size: int = DEFAULT_MAX_BODY,
                 read_timeout: float = DEFAULT_READ_TIMEOUT):
        self.cfg, self.dp = cfg, dp
        self.read_timeout = read_timeout
        self.urls = [p["url"].rstrip("/") for p in cfg.pods]
        self.names = [str(p.get("name") or f"pod-{i}") for i, p in enumerate(cfg.pods)]
        self.max_body_size = max_body_size
        self.metrics = GatewayMetrics(dp.metrics.registry)
        # release on every end: routers that count (LLM routers) learn nothing else from it;
        # a router that learns from rewards gets them from the user, not from the gateway
        self.accounts = not dp.router.learns and dp.router.has_hook("learn")
        self.forward = Forwarder(self)
        self.watcher = start_for(dp.router)
        self.background: set = set()
        self._sessions: dict = {}
        self._labels = set(cfg.models) | {m for p in cfg.pods for m in (p.get("models") or ())}
        self._max_labels = len(self._labels) + MAX_MODEL_LABELS

    def label(self, model) -> str:
        """A request's `model` label, bounded: three requests naming 1 MB models made /metrics
        50 MB, for good."""
        if model is None:
            return ""
        if model not in self._labels:
            if len(self._labels) >= self._max_labels or len(model) > MAX_LABEL_CHARS:
                return "other"
            self._labels.add(model)
        return model

    def session(self, url: str) -> aiohttp.ClientSession:
        """One pool of keep-alive connections per pod."""
        session = self._sessions.get(url)
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
            session = self._sessions[url] = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                json_serialize=lambda v: orjson.dumps(v).decode())
        return session

    async def pod_unreachable(self, pod: int) -> None:
        """A refused connection: out of the candidates now, not at the watcher's next failures."""
        if self.watcher is not None:
            await self.watcher.suspect(pod)

    async def start(self) -> None:
        if self.watcher is not None:
            await self.watcher.start()
        await self.dp.start()

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        for task in list(self.background):
            task.cancel()
        for session in self._sessions.values():
            await session.close()
        await self.dp.stop()

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path in COMPLETIONS:
                if method != "POST":
                    raise _not_allowed(path, "POST")
                await self.completion(scope, receive, send, path)
            elif method != "GET":
                raise _not_allowed(path, "GET")
            elif path == "/v1/models":
                await _reply(send, 200, replies.dumps(self.models()))
            elif path in ("/health", "/live"):
                await _reply(send, 200, b'{"status":"ok"}')
            elif path == "/ready":
                ready = self.dp.serving_ready() and self._some_pod_up()
                await _reply(send, 200 if ready else 503, b'{"ready":true}' if ready else b'{"ready":false}')
            elif path == "/metrics":
                await _reply(send, 200, generate_latest(self.dp.metrics.registry),
                             [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            elif path == "/state":
                await _reply(send, 200, self.dp.state_json())
            else:
                raise NotFound(f"{path}: not an endpoint of this gateway (see /v1/models)")
        except RouterError as exc:
            await _error(send, exc)

    def _some_pod_up(self) -> bool:
        signals = getattr(self.dp.router, "signals", None)
        return signals is None or bool(signals.healthy(list(range(len(self.urls)))))

    def models(self) -> dict:
        catalog = getattr(self.dp.router, "catalog", None)
        data = []
        if catalog is not None:
            for model in catalog.models():
                pods = [self.names[i] for i in catalog.candidates(model)]
                data.append({"id": model, "object": "model", "created": 0, "owned_by": "seldon-routers",
                             "parent": None, "pods": pods})
        return {"object": "list", "data": data}

    async def completion(self, scope, receive, send, path: str) -> None:
        started = time.perf_counter()
        if not self.dp.ready:
            raise NotReady("the gateway is starting or shutting down")
        declared = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
        raw = await read_body(receive, declared, self.max_body_size, read_deadline(scope, self.read_timeout))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body: not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise BadRequest(f"body: expected a JSON object (an OpenAI request), got {type(body).__name__}")
        model = body.get("model") if isinstance(body.get("model"), str) else None
        policy = self.cfg.policy(model)
        stream = body.get("stream") is True and path != "/v1/embeddings"
        strip = False
        if stream:
            asked = sse.with_usage(body)
            if asked is not None:  # the pod's usage chunk, so tokens are charged exactly
                raw, strip = orjson.dumps(asked), True
        headers = Headers(scope["headers"])
        user = headers.get("user") or body.get("user")
        watch = _Gone(receive)  # the client leaving before the answer is read ends the wait
        try:
            resp, attempt, pod, retries = await self.forward.call(body, raw, headers, scope["headers"], path, policy)
        except RouterError as exc:  # refused by the router, or no pod could answer
            watch.done()
            self._unanswered(model, stream, user, exc.http_status, exc.reason, started)
            raise
        except asyncio.CancelledError:
            watch.done()
            if not watch.fired:
                raise
            self._unanswered(model, stream, user, 499, "CLIENT_GONE", started)
            return
        record = {"model": model, "pod": pod, "stream": stream, "retries": retries, "user": user,
                  "strategy": attempt.tags.get("strategy") if attempt else "fallback"}
        status, usage, ttft = resp.status, None, None
        try:
            out = response_headers(resp, pod)
            if stream and resp.status == 200 and resp.content_type == "text/event-stream":
                status, usage, ttft = await self._stream(resp, send, out, strip, started, watch)
            else:
                try:
                    data = await resp.read()
                except asyncio.CancelledError:
                    if not watch.fired:
                        raise
                    resp.close()  # the client left: its connection to the pod closed (vLLM aborts)
                    status = 499
                    return
                finally:
                    watch.done()
                ttft = time.perf_counter() - started
                usage = usage_in(data) if resp.status == 200 else None
                out.append((b"content-length", str(len(data)).encode()))
                await send({"type": "http.response.start", "status": resp.status, "headers": out})
                await send({"type": "http.response.body", "body": data})
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # the pod failed while answering
            status = 502
            self.metrics.failed(pod, "broken")
            log.warning("pod %s failed mid-answer: %s: %s", pod, type(exc).__name__, exc)
            await _error(send, UpstreamFailed(f"pod {pod} failed while answering: {type(exc).__name__}"))
        finally:
            watch.done()  # (whatever ended it: nothing may cancel the release below)
            resp.release()
            if attempt is not None:
                await self.forward.release(attempt, usage)
            seconds = time.perf_counter() - started
            self.metrics.ended(pod, self.label(model), status, ttft, seconds, usage)
            if self._logging():
                record.update(status=status, ttft_ms=None if ttft is None else round(ttft * 1000, 2),
                              duration_ms=round(seconds * 1000, 2),
                              prompt_tokens=(usage or {}).get("prompt_tokens"),
                              completion_tokens=(usage or {}).get("completion_tokens"))
                self._log(record)

    def _unanswered(self, model, stream: bool, user, status: int, reason: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.metrics.unanswered(self.label(model), status, seconds)
        self._log({"model": model, "pod": None, "stream": stream, "user": user, "status": status,
                   "error": reason, "duration_ms": round(seconds * 1000, 2)})

    def _logging(self) -> bool:
        """Whether a request's line is written (else its record is not even built)."""
        return self.cfg.log_requests and requests_log.isEnabledFor(logging.INFO)

    def _log(self, record: dict) -> None:
        if self._logging():
            for key in ("model", "user"):  # the client's values: a line stays a line, not a 1 MB copy
                value = record.get(key)
                if value is not None and not (isinstance(value, str) and len(value) <= QUOTE_LIMIT):
                    record[key] = clip(value) if isinstance(value, str) else quote(value)
            requests_log.info("%s", orjson.dumps(record).decode())

    async def _stream(self, resp, send, out: list, strip: bool, started: float, watch: "_Gone"):
        """Events on as they come; the client gone (`watch`) cancels the pod's answer (its
        connection closed: vLLM aborts the generation)."""
        events = sse.Events(strip)
        ttft = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": out})
            async for data in resp.content.iter_any():
                chunk = events.feed(data)
                if chunk:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            watch.done()
            await send({"type": "http.response.body", "body": events.rest()})
            return 200, events.usage, ttft
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            watch.done()
            log.warning("stream from pod failed after %d events: %s: %s", events.chunks, type(exc).__name__, exc)
            await send({"type": "http.response.body", "more_body": False, "body": error_event(
                UpstreamFailed(f"the pod failed while streaming: {type(exc).__name__}"))})
            return 502, events.usage, ttft
        except asyncio.CancelledError:
            watch.done()
            if not watch.fired:
                raise
            resp.close()
            return 499, events.usage, ttft  # nginx's "client closed request"


async def _gone(receive) -> None:
    """Returns when the client has gone (all of its body was read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Gone:
    """Cancels the current task if the client leaves before done(). The watch (a task reading
    the client's receive channel) starts only once the request has taken WATCH_AFTER seconds:
    most answers come sooner, and a timer costs a tenth of a task. A client gone earlier is
    seen at once when it starts (the server keeps the disconnect)."""

    __slots__ = ("fired", "_waiting", "_watch", "_timer", "_task", "_receive")

    def __init__(self, receive):
        self._task, self._receive = asyncio.current_task(), receive
        self.fired, self._waiting, self._watch = False, True, None
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start)

    def _start(self) -> None:
        if self._waiting:
            self._watch = asyncio.ensure_future(_gone(self._receive))
            self._watch.add_done_callback(self._fire)

    def _fire(self, watch) -> None:
        if self._waiting and not watch.cancelled() and watch.exception() is None:
            self.fired = True
            self._task.cancel()

    def done(self) -> None:
        self._waiting = False
        self._timer.cancel()
        if self._watch is not None:
            self._watch.cancel()


def _not_allowed(path: str, method: str) -> MethodNotAllowed:
    exc = MethodNotAllowed(f"{path}: use {method}")
    exc.headers = {"Allow": method}
    return exc


async def _error(send, exc: RouterError) -> None:
    """Every error in OpenAI's shape (an OpenAI client reads `error.message`)."""
    kind = exc.openai_error or ("invalid_request_error" if exc.http_status < 500 else "api_error", None)
    body = replies.error_json(exc.message, exc.reason, kind)
    await _reply(send, exc.http_status, body, JSON + [(k.encode(), v.encode()) for k, v in exc.header_pairs()])


async def _reply(send, status: int, body: bytes, headers: Optional[list] = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": (headers or JSON) + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def serve(cfg: Config, settings: Settings) -> None:
    router = build_router(cfg)
    store = open_store(cfg.state, StoreOptions())
    dp = DataPlane(router, "gateway", registry.builtin_name(type(router)) or cfg.router, store=store)
    gateway = Gateway(cfg, dp, settings.max_body_size, settings.read_timeout)
    sock = listen_socket(settings.host, settings.http_port, "port")
    server = _uvicorn(gateway, settings.host, settings.http_port, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await gateway.start()
    except BaseException:
        sock.close()
        await gateway.stop()
        raise
    # What start-up made (modules, the router, the pools) lives as long as the process: out
    # of the collector's sight, so a full collection walks only requests' objects (measured:
    # gen-2 pauses of 20 ms made the p99 at 32 clients 25 ms; frozen, 9 ms).
    gc.collect()
    gc.freeze()
    log.info("gateway ready on %s:%d: %d pods, router %s", settings.host, settings.http_port, len(cfg.pods), dp.name)
    try:
        await server.serve(sockets=[sock])
    finally:
        await gateway.stop()


def run(cfg: Config, settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:
        uvloop = None
    (uvloop.run if uvloop is not None else asyncio.run)(serve(cfg, settings))


__all__ = ["Gateway", "build_router", "serve", "run"]
