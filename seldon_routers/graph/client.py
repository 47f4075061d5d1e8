"""REST calls from the executor to the units (rest/client.go), over one httpx client.

A reply other than 200 passes through with its status and body; a transport error or a
timeout is the executor's 500 failure payload naming the call. The whole call (connect,
write, read) is bounded by the deployment's `seldon.io/rest-timeout`, as Go's
http.Client.Timeout bounds it; there are no retries, as upstream.
"""

from __future__ import annotations

import asyncio
import httpx

from .deployment import Unit
from .executor import UnitError, failure

# Not forwarded: what describes the hop, not the request (httpx writes its own). The
# executor adds every other header of the client's request to each unit call.
HOP = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive",
                 "te", "trailer", "upgrade", "proxy-connection", "accept-encoding", "expect"})


class UnitClient:
    def __init__(self, urls: dict, timeout_ms: int = 0):
        self.urls = urls  # unit name -> base URL
        self.timeout = timeout_ms / 1000 if timeout_ms else None
        # No pool timeout of its own: a call waits for a connection within its overall budget.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(None), trust_env=False,
                                       limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))

    async def call(self, unit: Unit, path: str, body: bytes, headers: list) -> bytes:
        url = self.urls[unit.name] + path
        sent = [(k, v) for k, v in headers if k.lower() not in HOP] + [("content-type", "application/json")]
        try:
            r = await asyncio.wait_for(self._http.post(url, content=body, headers=sent), self.timeout)
        except asyncio.TimeoutError:
            raise failure(f"calling {unit.name} at {url}: no reply within the rest-timeout of "
                          f"{self.timeout * 1000:.0f} ms") from None
        except httpx.HTTPError as exc:
            raise failure(f"calling {unit.name} at {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise UnitError(r.status_code, r.content)
        return r.content

    async def aclose(self) -> None:
        await self._http.aclose()

