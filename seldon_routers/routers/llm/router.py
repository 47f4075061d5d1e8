"""The LLM routers: children are model-server pods; a strategy (or a weighted mix of them)
picks one per request, within the pods that serve the request's model, after the user's
rate limits admit it. The decision and its accounting (in flight, tokens, limits) live
here; forwarding does not (the gateway, or the graph's executor, forwards).

Each built-in name is this class with another default strategy (strategies.py).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any, Optional, Union

import numpy as np

from ...errors import BadRequest, ConfigError, NoCapacity, quote
from ...request import Feedback, Request
from ...router import Decision, Router
from .._params import duration, integer, optional
from . import limits as limits_mod
from . import signals as signals_mod
from .inflight import InFlight
from .pods import Catalog, read_pods
from .prompt import body_of, estimate_tokens, max_tokens_of, model_of, openai_json, prompt_text, usage_of
from .scorers import make, parse_mix

DEFAULT_TTL = 600.0  # seconds before an uncompleted request stops counting (longer than any generation)


class Call:
    """One request as the strategies see it (built once per route)."""

    __slots__ = ("request", "body", "model", "user", "session", "key", "counts", "tags", "_prompt", "tokens",
                 "_loads", "prompt_tokens", "max_tokens")

    def __init__(self, request: Request, body: dict, model: Optional[str], user: Optional[str],
                 session: Optional[str], key: str):
        self.request, self.body, self.model, self.user, self.session, self.key = request, body, model, user, session, key
        self.counts: list = []
        self.tags: dict = {}
        self._prompt: Optional[str] = None
        self._loads = None
        self.tokens = 0  # prompt + output tokens expected (rate limits, throughput)
        self.prompt_tokens = self.max_tokens = 0  # its two parts (estimated, and asked for)

    def loads(self, pods) -> np.ndarray:
        """The candidates' in-flight counts as floats (made once: every load scorer reads them)."""
        if self._loads is None or self._loads[0] is not pods:
            counts = self.counts or [0] * (max(pods) + 1)
            values = np.asarray(counts, dtype=float)
            self._loads = (pods, values if len(pods) == len(counts) else values[pods])  # (pods are sorted)
        return self._loads[1]

    @property
    def prompt(self) -> str:
        if self._prompt is None:
            self._prompt = prompt_text(self.body)
        return self._prompt


class LLMRouter(Router):
    """Routes OpenAI requests (jsonData, strData or a bare body) over model-server pods.

    strategy: the strategy, or a weighted mix like prefix-cache:3,least-request:2 (each
      score normalised to [0, 1], summed with these weights).
    pods / pods_file: the pods (JSON or YAML): name, url, models, adapters, gpu,
      cost_per_hour, profile (see docs/llm/models.md, docs/llm/slo.md); else n_branches / branch_names.
    strategy_header: the header naming a per-request strategy (`llm` only; default routing-strategy).
    session_header: the session key of session-affinity (default x-session-id).
    user_header: the header naming the user for rate limits (default user).
    in_flight_ttl: seconds after which a request never reported complete stops counting (default 600).
    rpm, tpm: default requests / tokens per minute per user (default: no limit).
    limits / limits_file: per-user and per-model overrides (see docs/llm/rate-limits.md).
    block_size: prefix-cache block, in characters of prompt (default 512, about 128 tokens, as
      AIBrix; hashing costs per block, see docs/llm/prefix-cache.md).
    prefix_blocks: prefix-cache blocks remembered per pod (its KV capacity in blocks of
      block_size; default 1024, about 131,000 tokens).
    prefix_max_imbalance: in-flight max - min beyond which prefix-cache routes by load (default 8).
    prefix_balance_ratio: ... and only when max > this x min (SGLang's relative rule, 1.0001
      there; default 1: the absolute bound alone, as AIBrix).
    prefix_sigma: prefix-cache only considers pods within mean + this many sigma of in-flight (AIBrix's
      filter; default 0: off, see docs/llm/prefix-cache.md for what it cost).
    metrics_interval, metrics_stale: pod metrics refreshed at most this often, stale after (0.05 s, 2 s).
    slo_ttft, slo_tpot: the `slo` strategy's objectives (seconds to first token, per output token).
    slo_miss: when no pod can meet the objective: best-effort (default), 429 or 503.
    seed: seeds the random choices (ties, random, power-of-two).
    """

    name = "llm"
    reads_features = True
    default_strategy = "least-request"
    per_request_strategy = True  # honour the strategy header (the `llm` router)

    def __init__(self, strategy: Optional[str] = None, pods: Union[str, list, None] = None,
                 pods_file: Optional[str] = None, n_branches: Optional[int] = None,
                 branch_names: Union[str, list, None] = None, strategy_header: str = "routing-strategy",
                 session_header: str = "x-session-id", user_header: str = "user",
                 in_flight_ttl: Optional[str] = None, rpm: Optional[int] = None, tpm: Optional[int] = None,
                 limits: Union[str, dict, None] = None, limits_file: Optional[str] = None,
                 block_size: int = 512, prefix_blocks: int = 1024, prefix_max_imbalance: float = 8.0,
                 prefix_balance_ratio: float = 1.0, prefix_sigma: float = 0.0, metrics_interval: float = 0.05,
                 metrics_stale: float = 2.0,
                 slo_ttft: Optional[float] = None, slo_tpot: Optional[float] = None, slo_miss: str = "best-effort",
                 seed: Optional[int] = None):
        self.pods = read_pods(pods, pods_file, n_branches, branch_names)
        self.branch_names = [p.name for p in self.pods]
        self.n_children = len(self.pods)
        self.catalog = Catalog(self.pods)
        self.strategy_header = strategy_header.lower()
        self.session_header = session_header.lower()
        self.user_header = user_header.lower()
        ttl = DEFAULT_TTL if in_flight_ttl is None else duration(in_flight_ttl, "in_flight_ttl")
        if ttl <= 0:
            raise ConfigError(f"in_flight_ttl: must be > 0, got {in_flight_ttl!r}")
        self.seed = optional(integer, seed, "seed")
        self.rng = np.random.default_rng(self.seed)
        self.options = {"block_size": block_size, "prefix_blocks": prefix_blocks,
                        "prefix_max_imbalance": prefix_max_imbalance, "prefix_balance_ratio": prefix_balance_ratio,
                        "prefix_sigma": prefix_sigma,
                        "slo_ttft": slo_ttft, "slo_tpot": slo_tpot, "slo_miss": slo_miss}
        # The clock every component reads (in-flight TTL, metrics staleness, rate-limit
        # windows): set router.clock to drive the router in simulated time (bench/llm_fleet).
        self.clock = time.monotonic
        self.ledger = InFlight(self.n_children, ttl, self.now)
        self.signals = signals_mod.PodSignals(self.n_children, metrics_interval, metrics_stale, self.now, ttl)
        self.limits = limits_mod.RateLimits.from_params(rpm, tpm, limits, limits_file, self.now)
        self._scorers: dict = {}
        self._build_lock = threading.Lock()
        # puids for requests that carry none: unique across replicas (a random prefix per
        # router) and cheaper than a uuid4 (an os.urandom call) per request
        self._id_prefix, self._ids = uuid.uuid4().hex[:16] + "-", itertools.count(1)
        self.mix = self._mix(self.default_strategy if strategy is None else strategy, "strategy", ConfigError)

    def now(self) -> float:
        return self.clock()

    # --- strategies ---------------------------------------------------------------------

    def scorer(self, name: str):
        """The scorer of one strategy, built once (its index, its state) and shared by every mix."""
        scorer = self._scorers.get(name)
        if scorer is None:
            with self._build_lock:  # two threads asking at once must share one index
                scorer = self._scorers.get(name)
                if scorer is None:
                    scorer = self._scorers[name] = make(name, self)
        return scorer

    def _mix(self, spec: str, field: str, error) -> list:
        mix = []
        for name, weight in parse_mix(spec, field, error):
            try:
                mix.append((self.scorer(name), weight))
            except ConfigError as exc:
                if error is ConfigError:
                    raise
                # a strategy this router is not configured for (slo without profiles), asked
                # for by a request: the client's 400, naming why
                raise BadRequest(f"{field}: strategy {name} is not available on this router: {exc.message}") from None
        return mix

    def mix_for(self, request: Request) -> tuple[list, str]:
        if self.per_request_strategy and self.strategy_header:
            spec = request.headers.get(self.strategy_header)
            if spec:
                return self._mix(spec, f"header {self.strategy_header}", BadRequest), spec
        return self.mix, "default"

    # --- routing ------------------------------------------------------------------------

    def call_of(self, request: Request) -> Call:
        body = body_of(request)
        key = request.puid
        if not key:  # the reply carries the puid the completion must name
            key = f"{self._id_prefix}{next(self._ids)}"
            request.meta["puid"] = key
        headers = request.headers
        user = headers.get(self.user_header) or body.get("user") or None
        if user is not None and not isinstance(user, str):
            raise BadRequest(f"user: expected a string naming the end user, got {quote(user)}")
        return Call(request, body, model_of(body), user, headers.get(self.session_header), key)

    def choose(self, call: Call, mix: list, candidates: list) -> int:
        """The pod with the highest weighted score (ties at random). Pure: the scorers only
        remember the pick when `commit` tells them."""
        if len(candidates) == 1 and len(mix) == 1 and not mix[0][0].judges_alone:
            return candidates[0]
        if len(mix) == 1:  # one strategy: its pick, or its own scores (a weight changes no order)
            pod = mix[0][0].pick(call, candidates)
            if pod is not None:
                return pod
            total = np.asarray(mix[0][0].score(call, candidates), dtype=float)
        else:
            total = np.zeros(len(candidates))
            for scorer, weight in mix:
                total += weight * np.asarray(scorer.score(call, candidates), dtype=float)
        best = np.flatnonzero(total >= total.max() - 1e-12)
        # (Generator.choice costs ~15 us a call: a uniform index does the same)
        pick = best[0] if len(best) == 1 else best[int(self.rng.random() * len(best))]
        return candidates[int(pick)]

    def candidates(self, call: Call) -> list:
        pods = self.catalog.candidates(call.model)
        healthy = self.signals.healthy(pods)
        if not healthy:
            raise NoCapacity(f"model {call.model or '(any)'}: none of its pods ({', '.join(self.branch_names[p] for p in pods)}) "
                             "is healthy", 503)
        tried = call.request.tried
        if tried:  # a retry: another pod if there is one (after its release, the failed one looks idlest)
            return [p for p in healthy if p not in tried] or healthy
        return healthy

    def decide(self, request: Request):
        call = self.call_of(request)
        mix, source = self.mix_for(request)
        candidates = self.candidates(call)
        call.prompt_tokens, call.max_tokens = estimate_tokens(call.prompt), max_tokens_of(call.body)
        call.tokens = call.prompt_tokens + call.max_tokens
        if self.ledger.is_async:
            return self._decide_shared(call, mix, source, candidates)
        call.counts = self.ledger.counts()
        pod = self.choose(call, mix, candidates)
        remaining = self.limits.admit(call)  # raises RateLimited: nothing has changed yet
        self.ledger.acquire(call.key, pod, call.tokens)
        return self._commit(call, mix, source, pod, remaining)

    async def _decide_shared(self, call: Call, mix, source, candidates):
        """The same steps with a shared (Redis) ledger and limits: counts read, limits
        checked and the request counted by one atomic call each."""
        call.counts = await self.ledger.counts()
        pod = self.choose(call, mix, candidates)
        remaining = await self.limits.admit_async(call)
        try:
            await self.ledger.acquire(call.key, pod, call.tokens)
        except Exception:
            if remaining is not None:  # admitted but not routed: its tokens back (its request stays counted)
                try:
                    await self.limits.settle_async(call.key, 0)
                except Exception:  # the store went away: the window ages out on its own
                    pass
            raise
        return self._commit(call, mix, source, pod, remaining)

    def _commit(self, call: Call, mix, source, pod: int, remaining: Optional[dict]) -> Decision:
        for scorer, _ in mix:
            scorer.routed(call, pod)
        self.signals.routed(pod, call)
        tags = {"route": pod, "pod": self.branch_names[pod], "strategy": ",".join(s.name for s, _ in mix),
                "in_flight": call.counts[pod] + 1 if call.counts else 1, **call.tags}
        if source != "default":
            tags["strategy_from"] = "header"
        if call.model is not None:
            tags["model"] = call.model
        if remaining:
            tags["ratelimit_remaining"] = remaining
        return Decision(pod, tags)

    # --- completions --------------------------------------------------------------------

    @property
    def learns(self) -> bool:
        # Feedback is attributed by its puid, so it need not name a child in meta.routing.
        return False

    def learn(self, feedback: Feedback):
        key = feedback.request.puid or feedback.response_meta.get("puid") or ""
        usage = usage_of(openai_json(feedback.response, "response.", "response"))
        if self.ledger.is_async:
            return self._learn_shared(key, feedback.routing, usage)
        entry = self.ledger.release(key) if key else None
        if entry is None and not key and feedback.routing is not None and feedback.routing >= 0:
            entry = self.ledger.release_oldest(feedback.routing)
        self._completed(key, entry, usage)
        if usage is not None and key:
            self.limits.settle(key, usage["total_tokens"])

    async def _learn_shared(self, key: str, routing, usage):
        entry = await self.ledger.release(key) if key else None
        if entry is None and not key and routing is not None and routing >= 0:
            entry = await self.ledger.release_oldest(routing)
        self._completed(key, entry, usage)
        if usage is not None and key:
            await self.limits.settle_async(key, usage["total_tokens"])

    def _completed(self, key: str, entry, usage) -> None:
        if entry is not None:
            self.signals.completed(entry.pod, entry, usage, key)

    # --- signals from outside (the pod watcher, a store) ---------------------------------

    def use_ledger(self, ledger, limits=None) -> None:
        """A shared ledger (and limits) in place of the memory ones (state/llm_redis.py)."""
        self.ledger = ledger
        if limits is not None:
            self.limits = limits

    def observe_pod(self, pod: int, sample: dict, now: Optional[float] = None) -> None:
        """A pod's scraped metrics (the watcher calls this), see signals.py."""
        self.signals.observe(pod, sample, now)

    def pod_down(self, pod: int):
        """A pod that stopped answering: out of the candidates, its in-flight entries dropped
        and its cache forgotten (a pod that comes back has restarted empty). With a shared
        ledger, returns the awaitable that drops its entries there."""
        self.signals.down(pod)
        for scorer in self._scorers.values():
            scorer.forget(pod)
        return self.ledger.drop_pod(pod)

    def pod_up(self, pod: int) -> None:
        self.signals.up(pod)

    def pod_models(self, pod: int, models, adapters=frozenset()) -> None:
        """A pod's models and LoRA adapters as its /v1/models lists them."""
        self.catalog.update(pod, None if models is None else frozenset(models), frozenset(adapters))

    # --- introspection -------------------------------------------------------------------

    def state(self) -> dict:
        out: dict[str, Any] = {"pods": self.branch_names, "strategy": ",".join(f"{s.name}:{w:g}" for s, w in self.mix)}
        if not self.ledger.is_async:
            out.update(self.ledger.state())
        else:
            out["in_flight"] = "shared (see the store)"
        out["signals"] = self.signals.state()
        out["limits"] = self.limits.state()
        out["models"] = self.catalog.models()
        for name, scorer in self._scorers.items():
            describe = getattr(scorer, "state", None)
            if describe is not None:
                out[name] = describe()
        return out

