"""One request through the gateway: the router decides, the pod answers, the router hears
how it ended.

    route -> POST to the pod -> 5xx or connect error before the first byte? release, back
    off, route again (up to `retries`) -> still failing? the fallback pods, in order ->
    stream the answer, event by event -> release the pod with the usage the answer carried

Every path out (answered, failed, timed out, client gone) releases the request exactly
once, so in-flight counts and token limits stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Optional

import aiohttp
import orjson

from ..codec import replies
from ..errors import BadRequest, RouterError
from ..request import Feedback, Headers, Request
from .config import Policy

log = logging.getLogger("seldon_routers.gateway")

# Not passed on: hop-by-hop headers (RFC 9110 7.6.1), and the ones the gateway sets itself.
DROPPED = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te",
                     b"upgrade", b"proxy-authorization", b"proxy-connection", b"trailer", b"accept-encoding"})
DROPPED_BACK = frozenset({"content-length", "connection", "keep-alive", "transfer-encoding", "date", "server",
                          "content-encoding"})


class UpstreamFailed(RouterError):
    """No pod (routed, retried or fallback) could answer."""

    http_status = 502
    grpc_code = "UNAVAILABLE"
    reason = "UPSTREAM_FAILED"
    openai_error = ("api_error", "upstream_failed")


class UpstreamTimeout(UpstreamFailed):
    http_status = 504
    reason = "UPSTREAM_TIMEOUT"
    openai_error = ("timeout", "upstream_timeout")


class Attempt:
    """One routed call: which pod, and its decision's puid and tags (to release it)."""

    __slots__ = ("pod", "puid", "tags", "released")

    def __init__(self, pod: int, puid: str, tags: dict):
        self.pod, self.puid, self.tags, self.released = pod, puid, tags, False


class Forwarder:
    def __init__(self, gateway):
        self.g = gateway

    # --- the router's side ---------------------------------------------------------------

    async def route(self, body: dict, headers: Headers, path: str) -> Attempt:
        request = Request(body, kind="jsonData", headers=headers, path=path)
        routed = await self.g.dp.route(request)
        if not 0 <= routed.child < len(self.g.urls):
            raise BadRequest(f"router {self.g.dp.name} chose {routed.child}: the gateway forwards to one pod "
                             f"(0..{len(self.g.urls) - 1}), not to all (-1) or none (-2)")
        tags = routed.tags.get(routed.unit_id) or {}
        return Attempt(routed.child, routed.puid, tags if isinstance(tags, dict) else {})

    async def release(self, attempt: Attempt, usage: Optional[dict]) -> None:
        """Tells the router the request ended (with its usage when the pod gave one)."""
        if attempt.released or not self.g.accounts:
            return
        attempt.released = True
        meta = {"puid": attempt.puid, "tags": {}, "routing": {}, "requestPath": {}}
        response = Request({"usage": usage}, kind="jsonData") if usage else None
        fb = Feedback(Request(meta=meta), {"puid": attempt.puid}, 0.0, None, attempt.pod, reward_given=False,
                      response=response)
        try:
            await self.g.dp.feedback(fb)
        except Exception:  # never the client's failure: the entry ages out by the router's TTL
            log.exception("pod %s: releasing request %s failed", self.g.names[attempt.pod], attempt.puid)

    # --- the pods' side -------------------------------------------------------------------

    async def post(self, url: str, path: str, body: bytes, headers: list, policy: Policy, timeout):
        session = self.g.session(url)
        return await session.post(url + path, data=body, headers=headers,
                                  timeout=aiohttp.ClientTimeout(total=timeout, connect=policy.connect_timeout))

    async def call(self, body: dict, raw: bytes, headers: Headers, scope_headers, path: str, policy: Policy):
        """The routed pod's response (status < 500, or the last one), after retries and
        fallback; returns (response, attempt or None for a fallback pod, pod name, retries)."""
        fwd = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope_headers if k not in DROPPED]
        attempt = await self.route(body, headers, path)
        retries = _int(attempt.tags.get("retries"), policy.retries)  # a ModelRoute's, from the rules router
        timeout = _seconds(attempt.tags.get("timeout"), policy.timeout)
        why, tried = "", 0
        while True:
            name = self.g.names[attempt.pod]
            self.g.metrics.started(name)
            try:
                resp = await self.post(self.g.urls[attempt.pod], path, raw, fwd, policy, timeout)
            except asyncio.TimeoutError:
                self.g.metrics.ended(name, _label(body), 504, None, 0.0, None)
                self.g.metrics.failed(name, "timeout")
                await self.release(attempt, None)
                raise UpstreamTimeout(f"pod {name}: no answer within {timeout:g} s (timeout)") from None
            except aiohttp.ClientError as exc:
                self.g.metrics.ended(name, _label(body), 502, None, 0.0, None)
                self.g.metrics.failed(name, "connect")
                await self.release(attempt, None)
                why = f"pod {name}: {type(exc).__name__}: {exc}"
                if isinstance(exc, aiohttp.ClientConnectorError):
                    await self.g.pod_unreachable(attempt.pod)
            except BaseException:  # anything else (the client gone: CancelledError) still releases it
                self.g.metrics.ended(name, _label(body), 499, None, 0.0, None)
                await self.release(attempt, None)
                raise
            else:
                if resp.status < 500 or (tried >= retries and not policy.fallback):
                    return resp, attempt, name, tried  # the last 5xx passed on as the pod said it
                await resp.read()
                self.g.metrics.ended(name, _label(body), resp.status, None, 0.0, None)
                self.g.metrics.failed(name, f"http_{resp.status}")
                await self.release(attempt, None)
                why = f"pod {name} answered {resp.status}"
            if tried >= retries:
                break
            await asyncio.sleep(policy.retry_backoff * (2 ** tried) * (0.5 + random.random() / 2))
            tried += 1
            try:
                attempt = await self.route(body, headers, path)
            except RouterError as exc:  # no pod left (all down): the fallback pool, if any
                why = f"{why}; then {exc.message}"
                break
        return await self.fallback(raw, fwd, path, policy, timeout, why, tried)

    async def fallback(self, raw: bytes, fwd: list, path: str, policy: Policy, timeout, why: str, tried: int):
        for i in policy.fallback:
            name, url = self.g.cfg.fallback[i]
            try:
                resp = await self.post(url, path, raw, fwd, policy, timeout)
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                self.g.metrics.failed(name, "connect")
                why = f"{why}; fallback {name}: {type(exc).__name__}"
                continue
            if resp.status < 500:
                log.warning("answered by fallback pod %s after: %s", name, why)
                self.g.metrics.started(name)
                return resp, None, name, tried
            await resp.read()
            self.g.metrics.failed(name, f"http_{resp.status}")
            why = f"{why}; fallback {name} answered {resp.status}"
        raise UpstreamFailed(f"no pod could answer: {why}")

    def mirror(self, raw: bytes, path: str, policy: Policy) -> None:
        """A copy of the request to the mirror, its answer read and dropped (Envoy's shadowing)."""
        mirror = policy.mirror
        if mirror is None or (mirror.fraction < 1 and random.random() >= mirror.fraction):
            return
        task = asyncio.ensure_future(self._mirror(mirror.url, raw, path))
        self.g.background.add(task)
        task.add_done_callback(self.g.background.discard)

    async def _mirror(self, url: str, raw: bytes, path: str) -> None:
        try:
            async with self.g.session(url).post(url + path, data=raw, headers={"content-type": "application/json"},
                                                timeout=aiohttp.ClientTimeout(total=600)) as resp:
                await resp.read()
        except Exception as exc:  # a mirror never fails the request it copies
            log.debug("mirror %s: %s", url, exc)


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _seconds(value, default):
    if value is None:
        return default
    from ..routers._params import duration

    try:
        return duration(value, "timeout") or default
    except RouterError:
        return default


def _label(body: dict) -> str:
    model = body.get("model")
    return model if isinstance(model, str) else ""


def response_headers(resp, pod: str) -> list:
    out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()
           if k.lower() not in DROPPED_BACK]
    out.append((b"x-seldon-pod", pod.encode("latin-1")))
    return out


def usage_in(body: bytes) -> Optional[dict]:
    """A non-streamed answer's usage, if it is JSON with one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = value.get("usage") if isinstance(value, dict) else None
    return usage if isinstance(usage, dict) else None


def error_event(exc: RouterError) -> bytes:
    """A failure after streaming began, as vLLM reports it: an SSE event with `error`."""
    _, body, _ = replies.error_reply(exc)
    return b"data: " + body + b"\n\n"


__all__ = ["Forwarder", "UpstreamFailed", "UpstreamTimeout", "response_headers", "usage_in", "error_event"]
