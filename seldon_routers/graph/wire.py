"""What the front and the stub model share on the wire: Seldon's failure payload and an
ASGI request's body."""

from __future__ import annotations

import json


def failure_json(code: int, info: str) -> bytes:
    """Seldon's error payload (the executor's rest/client.go CreateErrorPayload, the wrapper's too)."""
    return json.dumps({"status": {"code": code, "info": info, "status": "FAILURE"}}).encode()


async def read_body(receive) -> bytes:
    """The whole body of an ASGI http request."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body
