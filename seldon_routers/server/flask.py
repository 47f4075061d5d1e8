"""Optional Flask adapter: `create_app(router)` mounts the same REST endpoints in a Flask
app, for users who serve them inside their own Flask application.

Handlers are the ASGI app's (server/rest.py); they run on one background event loop, so
a router sees the same single-threaded calls under Flask's threads as under uvicorn.
"""

from __future__ import annotations

import asyncio
import threading

from flask import Flask, Response, request

from ..request import Headers
from .dataplane import DataPlane
from .forwarded import DEFAULT_PATH_HEADER, header_name
from .rest import DEFAULT_MAX_BODY, ENDPOINTS, Call, allowed, handle, parse_query


class _LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="seldon-router-loop", daemon=True).start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def create_app(router, unit_id: str = "0", app: Flask | None = None,
               max_body_size: int = DEFAULT_MAX_BODY, url_prefix: str = "",
               path_header: str = DEFAULT_PATH_HEADER) -> Flask:
    """Adds the router's endpoints to `app` (a new Flask app by default) and returns it.
    path_header: the header a gateway forwards the client's original path in ("" for none;
    see server/forwarded.py)."""
    dp = router if isinstance(router, DataPlane) else DataPlane(router, unit_id)
    if not dp.ready:
        dp.load()
    header = header_name(path_header, "path_header")
    loop = _LoopThread()
    if app is None:  # our own app: unknown paths and methods answer in Seldon's error JSON too
        app = Flask(__name__)
        for code in (404, 405):
            app.register_error_handler(code, lambda exc: _reply(loop.run(handle(dp, _call(request.path))),
                                                                allowed(request.path)))

    def view(path: str):
        def endpoint():
            # Read at most one byte past the limit: the handler then answers 413 itself.
            body = request.stream.read(max_body_size + 1) if request.method != "GET" else b""
            call = _call(path)
            call.body = body
            if header:
                call.forwarded, call.path_header = tuple(request.headers.getlist(header)), header
            return _reply(loop.run(handle(dp, call) if len(body) <= max_body_size else _too_large(max_body_size)))
        return endpoint

    for path, (methods, _) in ENDPOINTS.items():
        app.add_url_rule(url_prefix + path, f"seldon_router{path}", view(path), methods=sorted(methods))
    app.extensions["seldon_router"] = dp
    return app


def _call(path: str) -> Call:
    return Call(request.method, path, b"", request.content_type or "", Headers(request.headers.items()),
                parse_query(request.query_string.decode("latin-1")))


def _reply(result, allow: str | None = None) -> Response:
    status, content_type, body, headers = result
    response = Response(body, status=status, content_type=content_type)
    for name, value in headers:  # an error's Retry-After, x-ratelimit-*
        response.headers[name] = value
    if status == 405 and allow:
        response.headers["Allow"] = allow
    return response


async def _too_large(limit: int):
    from ..codec.replies import error_reply
    from ..errors import PayloadTooLarge

    status, body, headers = error_reply(PayloadTooLarge(f"body: over the limit of {limit} bytes"))
    return status, "application/json", body, headers
