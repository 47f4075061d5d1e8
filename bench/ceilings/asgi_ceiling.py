"""REST ceiling: the least an ASGI server can do for a Route call.

A bare ASGI callable (no framework) that drains the request body and answers a fixed
Route reply. Served by uvicorn with httptools + uvloop and the access log off, it is the
throughput ceiling any ASGI router on this machine can approach.

    python -m uvicorn --app-dir bench/ceilings asgi_ceiling:app \
        --http httptools --loop uvloop --no-access-log --port 9000
"""

ROUTE_REPLY = b'{"data":{"names":["t:0"],"ndarray":[[1]]}}'
_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ROUTE_REPLY)).encode()),
]
_READY_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
_NOT_FOUND_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"0")]


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: accept startup/shutdown silently
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    more = True
    while more:  # drain the body, as a real handler must
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/route":
        await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": ROUTE_REPLY})
    elif path in ("/ready", "/live"):
        await send({"type": "http.response.start", "status": 200, "headers": _READY_HEADERS})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND_HEADERS})
        await send({"type": "http.response.body", "body": b""})
