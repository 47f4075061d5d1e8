"""Watches an LLM router's pods: their Prometheus metrics (vLLM's names), their health and
the models they serve, and tells the router (observe_pod, pod_down, pod_up, pod_models).

One asyncio task per pod with a `url` (so a slow pod never delays another's samples):
  every metrics_interval (the router's, 50 ms by default)  GET {url}/metrics
  every models_interval (5 s), and when the pod comes back  GET {url}/v1/models
    (only for a pod whose config lists no `models`: what the config says, stays)
A pod is down after `failures` failed scrapes in a row (3) when GET {url}/health does not
answer either: out of the candidates, its in-flight requests dropped. A pod whose /metrics
fails while /health answers stays a candidate, its metrics go stale, and the strategies
fall back to local accounting. Down, it is polled as before; the first answer brings it back.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from typing import Optional

from ..errors import ConfigError
from ..routers.llm.pod_signals import GPU_CACHE, KV_CACHE, LORA_INFO, METRIC_NAMES

log = logging.getLogger("seldon_routers")

MODELS_INTERVAL = 5.0
FAILURES = 3  # failed scrapes in a row (with /health silent too) before a pod is down
TIMEOUT = 1.0  # seconds per HTTP call: well under the 2 s staleness


_NUMBERS = frozenset(METRIC_NAMES)


def parse_metrics(text: str) -> dict:
    """{vLLM metric name: value} from a Prometheus exposition: counts summed over label sets
    (engines, models), cache usage the highest; LORA_INFO: the newest sample's adapters as
    {running: [...], waiting: [...]}. A malformed sample of these names raises ValueError.

    Only the few names the router reads are parsed, by hand (a vLLM exposition is hundreds of
    lines of histograms, and prometheus-client's parser costs ~16 us a line)."""
    out: dict = {}
    newest, when = None, None
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue  # comments, other families
        brace = line.find("{")
        cut = brace if brace >= 0 else line.find(" ")
        name = line[:cut] if cut >= 0 else line
        if name == LORA_INFO:
            labels, value = _sample(line, brace, cut)
            if when is None or value >= when:  # its value is when vLLM wrote it
                newest, when = labels, value
        elif name in _NUMBERS:
            value = _sample(line, brace, cut)[1]
            out[name] = max(out.get(name, 0.0), value) if name in (KV_CACHE, GPU_CACHE) else out.get(name, 0.0) + value
    if newest is not None:
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(newest)}
        out[LORA_INFO] = {kind: [a for a in labels.get(f"{kind}_lora_adapters", "").split(",") if a]
                          for kind in ("running", "waiting")}
    return out


def _sample(line: str, brace: int, cut: int) -> tuple:
    """(labels text, value) of `name[{labels}] value [timestamp]`: its last `}` ends the labels
    (a value or a timestamp has none)."""
    labels, rest = "", []
    if brace >= 0:
        end = line.rfind("}")
        if end > brace:
            labels, rest = line[brace + 1:end], line[end + 1:].split()
    elif cut >= 0:
        rest = line[cut:].split()
    if not rest:
        raise ValueError(f"not a sample: {line[:120]!r}")
    return labels, float(rest[0])


_LABEL = re.compile(r'([a-zA-Z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def parse_models(body) -> tuple[list, list]:
    """(base models, LoRA adapters) from an OpenAI /v1/models body: vLLM lists an adapter
    with `parent` set to its base model."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("expected an object with a `data` list")
    models, adapters = [], []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            (adapters if item.get("parent") else models).append(item["id"])
    return models, adapters


def _aiohttp():
    try:
        import aiohttp
    except ImportError:
        raise ConfigError("pods[].url: scraping pod metrics needs aiohttp, in the llm extra: "
                          "pip install 'seldon-routers[llm]'") from None
    return aiohttp


class PodWatcher:
    def __init__(self, router, interval: Optional[float] = None, models_interval: float = MODELS_INTERVAL,
                 failures: int = FAILURES, timeout: float = TIMEOUT):
        self.router = router
        signals = getattr(router, "signals", None)
        self.interval = interval if interval is not None else getattr(signals, "interval", 0.05)
        self.models_interval, self.failures, self.timeout = models_interval, failures, timeout
        self.pods = [(i, pod.url.rstrip("/"), pod.models is None)  # discover: no models in config
                     for i, pod in enumerate(router.pods) if pod.url]
        self._aiohttp = _aiohttp()
        self.errors = (self._aiohttp.ClientError, asyncio.TimeoutError, ValueError)
        self._client = None
        self._tasks: list = []
        self._watches: dict = {}

    def name(self, i: int) -> str:
        return self.router.pods[i].name

    async def start(self) -> None:
        """One round first (so the first requests see every pod's models), then a task per pod."""
        self._client = self._aiohttp.ClientSession(timeout=self._aiohttp.ClientTimeout(total=self.timeout),
                                                   skip_auto_headers=("User-Agent",))
        watches = [_Watch(self, i, url, discover) for i, url, discover in self.pods]
        self._watches = {w.i: w for w in watches}
        await asyncio.gather(*(w.step() for w in watches))
        self._tasks = [asyncio.ensure_future(w.run()) for w in watches]

    async def suspect(self, i: int) -> None:
        """A pod a caller could not connect to: down now; its next answered scrape brings it back."""
        watch = self._watches.get(i)
        if watch is not None and not watch.down:
            watch.failed, watch.why = self.failures, "connection refused to a request"
            await watch.mark_down()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.close()
            self._client = None


class _Watch:
    """One pod's loop and what it remembers: failures in a row, down or not, when its models are due."""

    def __init__(self, watcher: PodWatcher, i: int, url: str, discover: bool):
        self.w, self.i, self.url, self.discover = watcher, i, url, discover
        self.failed, self.down, self.models_due = 0, False, 0.0
        self.why = ""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.step()
            except Exception:  # never let one bad answer end the watch
                log.exception("pod %s: watching %s failed", self.w.name(self.i), self.url)
            await asyncio.sleep(max(0.0, self.w.interval - (loop.time() - started)))

    async def step(self) -> None:
        router, client = self.w.router, self.w._client
        ok = await self._scrape(client)
        if ok:
            self.failed = 0
            alive = True
        else:
            self.failed += 1
            alive = self.failed < self.w.failures or await self._answers(client)
        if alive and self.down:
            log.info("pod %s answers again: back among the candidates", self.w.name(self.i))
            self.down, self.models_due = False, 0.0
            router.pod_up(self.i)
        elif not alive and not self.down:
            await self.mark_down()
        now = asyncio.get_running_loop().time()
        if self.discover and alive and now >= self.models_due:
            self.models_due = now + self.w.models_interval
            await self._models(client)

    async def mark_down(self) -> None:
        log.warning("pod %s: %d failed scrapes (%s) and no /health: down", self.w.name(self.i),
                    self.failed, self.why)
        self.down = True
        dropped = self.w.router.pod_down(self.i)
        if inspect.isawaitable(dropped):  # a shared (Redis) ledger drops the pod's entries there
            try:
                await dropped
            except Exception as exc:  # unreachable store: its entries expire by the TTL instead
                log.warning("pod %s down, but its in-flight entries stay in the state store until "
                            "they expire: %s", self.w.name(self.i), exc)

    async def _get(self, client, path: str) -> tuple:
        async with client.get(self.url + path) as reply:
            return reply.status, await reply.read()

    async def _scrape(self, client) -> bool:
        try:
            status, body = await self._get(client, "/metrics")
            if status != 200:
                self.why = f"/metrics answered {status}"
                return False
            sample = parse_metrics(body.decode("utf-8", "replace"))
        except self.w.errors as exc:
            self.why = f"{type(exc).__name__}: {exc}"
            return False
        self.w.router.observe_pod(self.i, sample, self.w.router.now())
        return True

    async def _answers(self, client) -> bool:
        try:
            return (await self._get(client, "/health"))[0] < 500
        except self.w.errors:
            return False

    async def _models(self, client) -> None:
        try:
            status, body = await self._get(client, "/v1/models")
            if status != 200:
                raise ValueError(f"it answered {status}")
            models, adapters = parse_models(json.loads(body))
        except self.w.errors as exc:
            log.warning("pod %s: cannot read %s/v1/models (%s): its models stay as they were",
                        self.w.name(self.i), self.url, exc)
            return
        self.w.router.pod_models(self.i, models, adapters)


def start_for(router) -> Optional[PodWatcher]:
    """A watcher for a router with pods that have a url (else None), not yet started."""
    pods = getattr(router, "pods", None)
    if not isinstance(pods, list) or not any(getattr(p, "url", None) for p in pods):
        return None
    return PodWatcher(router)


async def watch_pods(router) -> Optional[PodWatcher]:
    """What `serve` calls before the router is ready: a started watcher, or None (no pod urls)."""
    watcher = start_for(router)
    if watcher is not None:
        await watcher.start()
    return watcher


async def unwatch(watcher: Optional[PodWatcher]) -> None:
    if watcher is not None:
        await watcher.stop()
