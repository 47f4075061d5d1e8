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
from ..errors import BadRequest, NoCapacity, RouterError
from ..request import Feedback, Headers, Request
from .config import Policy

log = logging.getLogger("seldon_routers.gateway")

# Not passed on: hop-by-hop headers (RFC 9110 7.6.1), and the ones the gateway sets itself.
DROPPED = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te",
                     b"upgrade", b"proxy-authorization", b"proxy-connection", b"trailer", b"accept-encoding"})
NO_TOKENS = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
MIRRORS = 64  # mirror copies in flight at most
DROPPED_BACK = frozenset({b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server",
                          b"content-encoding"})


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
        self._timeouts: dict = {}  # (total, connect) -> ClientTimeout: a few per config

    # --- the router's side ---------------------------------------------------------------

    async def route(self, body: dict, headers: Headers, path: str, tried: tuple = ()) -> Attempt:
        request = Request(body, kind="jsonData", headers=headers, path=path)
        request.tried = tried
        child, tags = await self.g.dp.decide(request)
        if not 0 <= child < len(self.g.urls):
            raise BadRequest(f"router {self.g.dp.name} chose {child}: the gateway forwards to one pod "
                             f"(0..{len(self.g.urls) - 1}), not to all (-1) or none (-2)")
        return Attempt(child, request.puid, tags if isinstance(tags, dict) else {})

    async def release(self, attempt: Attempt, usage: Optional[dict]) -> None:
        """Tells the router the request ended (with its usage when the pod gave one)."""
        if attempt.released or not self.g.accounts:
            return
        attempt.released = True
        meta = {"puid": attempt.puid, "tags": {}, "routing": {}, "requestPath": {}}
        fb = Feedback(Request(meta=meta), {"puid": attempt.puid}, 0.0, None, attempt.pod, reward_given=False,
                      response=Request({"usage": usage}, kind="jsonData") if usage else None)
        try:
            try:
                await self.g.dp.apply(fb)
            except BadRequest as exc:  # a pod's usage not in OpenAI's names: refused, nothing applied
                if fb.response is None:
                    raise
                log.warning("pod %s: %s: released without its usage", self.g.names[attempt.pod], exc.message)
                fb.response = None
                await self.g.dp.apply(fb)
        except Exception:  # never the client's failure: the entry ages out by the router's TTL
            log.exception("pod %s: releasing request %s failed", self.g.names[attempt.pod], attempt.puid)

    async def failed(self, attempt: Attempt, name: str, reason: Optional[str], usage=NO_TOKENS) -> None:
        """An attempt that got no answer to pass on: counted, and released, by default with
        no tokens used (a refused or failed call: its estimate given back to the user's TPM)."""
        self.g.metrics.attempt_failed(name, reason)
        # shielded: the client leaving (the task cancelled) must not cut a release in two
        await asyncio.shield(self.release(attempt, usage))

    # --- the pods' side -------------------------------------------------------------------

    async def post(self, url: str, path: str, body: bytes, headers: list, policy: Policy, timeout):
        key = (timeout, policy.connect_timeout)
        limits = self._timeouts.get(key)
        if limits is None:
            limits = self._timeouts[key] = aiohttp.ClientTimeout(total=timeout, connect=policy.connect_timeout)
        return await self.g.session(url).post(url + path, data=body, headers=headers, timeout=limits)

    async def call(self, body: dict, raw: bytes, headers: Headers, scope_headers, path: str, policy: Policy):
        """The routed pod's response (status < 500, or the last one), after retries and
        fallback; returns (response, attempt or None for a fallback pod, pod name, retries)."""
        fwd = forwarded(scope_headers)
        try:
            attempt = await self.route(body, headers, path)
        except NoCapacity as exc:  # no pod can take it (all down): the fallback pool, if any
            if not policy.fallback:
                raise
            return await self.fallback(raw, fwd, path, policy, policy.timeout, exc.message, 0)
        self.mirror(raw, fwd, path, policy)
        retries = _int(attempt.tags.get("retries"), policy.retries)  # a ModelRoute's, from the rules router
        timeout = _seconds(attempt.tags.get("timeout"), policy.timeout)
        why, tried, pods = "", 0, []
        while True:
            name = self.g.names[attempt.pod]
            self.g.metrics.started(name)
            try:
                resp = await self.post(self.g.urls[attempt.pod], path, raw, fwd, policy, timeout)
            except aiohttp.ConnectionTimeoutError as exc:  # not connected in time: another pod may be
                await self.failed(attempt, name, "connect")
                why = f"pod {name}: {type(exc).__name__}: {exc}"
            except asyncio.TimeoutError:
                await self.failed(attempt, name, "timeout", None)  # the pod may be generating: estimate kept
                raise UpstreamTimeout(f"pod {name}: no answer within {timeout:g} s (timeout)") from None
            except aiohttp.ClientError as exc:
                await self.failed(attempt, name, "connect")
                why = f"pod {name}: {type(exc).__name__}: {exc}"
                if isinstance(getattr(exc, "os_error", None), ConnectionRefusedError):
                    await self.g.pod_unreachable(attempt.pod)  # nothing listens: down now
            except BaseException:  # anything else (the client gone: CancelledError) still releases it
                await self.failed(attempt, name, None, None)
                raise
            else:
                if resp.status < 500 or (tried >= retries and not policy.fallback):
                    return resp, attempt, name, tried  # the last 5xx passed on as the pod said it
                why = f"pod {name} answered {resp.status}"
                try:
                    await discard(resp)
                finally:
                    await self.failed(attempt, name, f"http_{resp.status}")
            if tried >= retries:
                break
            await asyncio.sleep(policy.retry_backoff * (2 ** tried) * (0.5 + random.random() / 2))
            tried += 1
            pods.append(attempt.pod)
            try:
                attempt = await self.route(body, headers, path, tuple(pods))
            except NoCapacity as exc:  # no pod left (all down): the fallback pool, if any
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
            await discard(resp)
            self.g.metrics.failed(name, f"http_{resp.status}")
            why = f"{why}; fallback {name} answered {resp.status}"
        raise UpstreamFailed(f"no pod could answer: {why}")

    def mirror(self, raw: bytes, fwd: list, path: str, policy: Policy) -> None:
        """A copy of the routed request to the mirror, its answer read and dropped (Envoy's
        shadowing); at most MIRRORS copies at once, the others not sent (a slow mirror must
        not pile up sockets)."""
        mirror = policy.mirror
        if mirror is None or (mirror.fraction < 1 and random.random() >= mirror.fraction):
            return
        if len(self.g.background) >= MIRRORS:
            self.g.metrics.failed(mirror.url, "mirror_skipped")
            return
        task = asyncio.ensure_future(self._mirror(mirror.url, raw, fwd, path))
        self.g.background.add(task)
        task.add_done_callback(self.g.background.discard)

    async def _mirror(self, url: str, raw: bytes, fwd: list, path: str) -> None:
        try:
            async with self.g.session(url).post(url + path, data=raw, headers=fwd,
                                                timeout=aiohttp.ClientTimeout(total=600)) as resp:
                await resp.read()
        except Exception as exc:  # a mirror never fails the request it copies
            log.debug("mirror %s: %s", url, exc)


async def discard(resp) -> None:
    """Reads and drops an answer not passed on (its connection back to the pool, or closed if
    the body breaks)."""
    try:
        await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        resp.close()
    finally:
        resp.release()


def forwarded(scope_headers) -> list:
    """The client's headers to pass on: not the hop-by-hop ones (RFC 9110 7.6.1), nor those
    its Connection header names."""
    drop = DROPPED
    for k, v in scope_headers:
        if k == b"connection" and v.lower() not in (b"keep-alive", b"close"):
            drop = drop | {t.strip() for t in v.lower().split(b",")}
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope_headers if k not in drop]


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _seconds(value, default):
    """A decision's `timeout` tag (a ModelRoute's): seconds, None for 0 (no timeout, as Envoy
    reads 0), the policy's when absent or not a duration."""
    if value is None:
        return default
    from ..routers._params import duration

    try:
        seconds = duration(value, "timeout")
    except RouterError:
        return default
    return seconds or None


def response_headers(resp, pod: str) -> list:
    """The pod's headers as it sent them (aiohttp's raw bytes: no re-encoding to fail on)."""
    out = [(k, v) for k, v in ((k.lower(), v) for k, v in resp.raw_headers) if k not in DROPPED_BACK]
    out.append((b"x-seldon-pod", pod.encode("utf-8")))
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


__all__ = ["Forwarder", "UpstreamFailed", "discard", "forwarded", "UpstreamTimeout", "response_headers", "usage_in", "error_event"]
