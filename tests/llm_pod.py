"""A vLLM-like pod for tests: a real HTTP server on 127.0.0.1 (a thread, or a process of its own)
answering what the routers, the pod watcher and an OpenAI-compatible gateway ask of a vLLM
server, with values a test sets as it goes. It is a double, not a model: the point is vLLM's
wire behaviour (shapes, SSE framing, keep-alive, timing, failures), cheap enough to run N of.

  GET  /metrics              vLLM's Prometheus names, written by prometheus_client as vLLM does
  GET  /v1/models            the base models, and the LoRA adapters with `parent` set to their base
  GET  /health               200 (empty), as vLLM answers
  POST /v1/chat/completions  `max_tokens` (16) tokens of "tok "; "stream": true is SSE, chunked
  POST /v1/completions       the same, as text_completion
  POST /v1/embeddings        8 floats per input

    pod = LLMPod(models=["llama"], adapters={"sql-lora": "llama"}).start()
    pod.running, pod.kv_cache = 3, 0.4      # the next scrape sees them (running + pod.active)
    pod.metrics_status = 500                # /metrics fails, /health still answers
    pod.metrics_delay = 30                  # /metrics hangs 30 s before it answers (a slow pod)
    pod.ttft, pod.token_time = 0.2, 0.02    # seconds before the first byte, between tokens
    pod.fail_next = 2                       # the next 2 generations answer pod.fail_status (500)
    pod.die_after_tokens = 3                # streams are cut after 3 tokens, no [DONE]
    pod.hold = threading.Event()            # generations wait until it is set
    pod.seen[-1]                            # (path, lowercased headers, body) of the last POST
    pod.stop(); pod.start()                 # gone, then back on the same port

Prompt tokens are ceil(characters / 4). A prefix cache of pod.cache_blocks blocks of 64
characters (16 tokens) chained by hash, LRU, feeds vllm:prefix_cache_queries/_hits and costs
pod.prefill_per_token seconds per uncached token on top of the TTFT, so cache-aware routing
shows up in both the metrics and the latency.

Capacity (off by default: pod.slots = None, every request runs at once in its own thread):
with pod.slots = 16 (`--slots 16`) at most 16 requests generate at once, the rest wait in a
FIFO queue (vllm:num_requests_waiting; the admitted ones are vllm:num_requests_running), and
prefill is the pod's compute: one prefill at a time (a lock), the cache looked up when a
request is admitted to it, while the admitted requests' decodes (token_time apart) overlap.
A slot is held from admission until the answer's last chunk is sent (or the client is gone).

As a process (a pod a test can SIGKILL): `python tests/llm_pod.py --port 0 --model llama`
prints `ready <port>` once serving; spawn_pods(n, token_time=0.05) / pods_running(n) do it.

A route is a method named by ROUTES, called with the request's body and headers and
returning (status, content type, body bytes, or an iterable of bytes: sent chunked, each
chunk flushed as it comes), so a test (or the gateway's tests) adds one by subclassing:
ROUTES = {**LLMPod.ROUTES, ("POST", "/v1/rerank"): "rerank"}.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

BLOCK_CHARS, BLOCK_TOKENS = 64, 16  # 4 characters a token, as the prompt count assumes
TOKEN = "tok "


class _Cut(Exception):
    """Raised by a stream to have the connection dropped mid-answer (a pod dying)."""


class _Stream:
    """A streamed body that gives its request's slot back exactly once, even if never started
    (a generator that never ran skips its `finally`)."""

    def __init__(self, chunks, done):
        self.chunks, self._done = chunks, done

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.chunks.close()
        done, self._done = self._done, None
        if done:
            done()


def _error(status: int, message: str) -> tuple:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    body = {"object": "error", "error": {"message": message, "type": kind, "param": None, "code": status}}
    return status, "application/json", json.dumps(body).encode()


def _text(content) -> str:
    """A message's content: a string, or OpenAI's list of parts (the text ones count)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


class LLMPod:
    ROUTES = {("GET", "/metrics"): "metrics", ("GET", "/v1/models"): "models_list", ("GET", "/health"): "health",
              ("POST", "/v1/chat/completions"): "chat", ("POST", "/v1/completions"): "completions",
              ("POST", "/v1/embeddings"): "embeddings"}

    def __init__(self, models=("llama",), adapters: Optional[dict] = None, port: int = 0):
        self.models = list(models)
        self.adapters = dict(adapters or {})  # adapter -> its base model
        self.port = port
        # What /metrics says (a test sets these).
        self.running = 0
        self.waiting = 0
        self.kv_cache = 0.0
        self.prompt_tokens = 0  # counters: vllm:prompt_tokens_total, vllm:generation_tokens_total
        self.generation_tokens = 0
        self.lora_running: list = []
        self.lora_waiting: list = []
        self.legacy_kv = False  # name it vllm:gpu_cache_usage_perc, as vLLM did before V1
        self.metrics_status = 200  # anything else: /metrics answers that, with no metrics
        self.metrics_delay = 0.0  # seconds /metrics waits before answering
        self.calls: dict = {}  # path -> requests seen
        self.seen: list = []  # (path, lowercased headers, parsed body or raw text) of every POST
        self.active = 0  # requests being answered now; /metrics reports running + active
        self.prefix_queries = 0  # tokens looked up in the prefix cache, and found
        self.prefix_hits = 0
        # Timing and the simulated prefix cache.
        self.ttft = 0.0
        self.token_time = 0.0
        self.prefill_per_token = 0.0
        self.cache_blocks = 2000
        self.slots: Optional[int] = None  # None: no capacity limit
        self.queued = 0  # requests waiting for a slot (reported as waiting, not running)
        self._admitted = 0
        self._queue: collections.deque = collections.deque()  # FIFO of waiting requests' tickets
        self._slot_free = threading.Condition(threading.Lock())
        self._prefill = threading.Lock()  # one prefill at a time, when slots is set
        self._cache: collections.OrderedDict = collections.OrderedDict()  # block hash -> None, LRU first
        # Faults.
        self.fail_next = 0
        self.fail_status = 500
        self.die_after_tokens: Optional[int] = None
        self.hold: Optional[threading.Event] = None
        self._server: Optional[ThreadingHTTPServer] = None
        self._connections: set = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "LLMPod":
        pod = self

        class Handler(_Handler):
            owner = pod

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # reuses the port after stop
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=f"llm-pod-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        """Gone: the port refuses connections and open keep-alive connections are cut."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- the routes ------------------------------------------------------------------------

    def metrics(self, body: bytes, headers) -> tuple:
        if self.metrics_delay:
            time.sleep(self.metrics_delay)  # this request's own thread: other routes answer meanwhile
        if self.metrics_status != 200:
            return self.metrics_status, "text/plain", b"metrics unavailable"
        registry = CollectorRegistry()
        registry.register(_Collector(self))
        return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(registry)

    def models_list(self, body: bytes, headers) -> tuple:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "vllm", "root": m, "parent": None}
                for m in self.models]
        data += [{"id": a, "object": "model", "created": 0, "owned_by": "vllm", "root": f"/adapters/{a}",
                  "parent": base} for a, base in self.adapters.items()]
        return 200, "application/json", json.dumps({"object": "list", "data": data}).encode()

    def health(self, body: bytes, headers) -> tuple:
        return 200, "application/json", b""

    def chat(self, body: bytes, headers) -> tuple:
        return self._generate(body, chat=True)

    def completions(self, body: bytes, headers) -> tuple:
        return self._generate(body, chat=False)

    def embeddings(self, body: bytes, headers) -> tuple:
        request, error = self._request(body)
        if error:
            return error
        inputs = request.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        tokens = sum(self._tokens(str(text)) for text in inputs)
        with self._serving():
            time.sleep(self.ttft)
            with self._lock:
                self.prompt_tokens += tokens
        data = [{"object": "embedding", "index": i, "embedding": [round(0.1 * (j + 1), 3) for j in range(8)]}
                for i, _ in enumerate(inputs)]
        reply = {"object": "list", "data": data, "model": request["model"],
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return 200, "application/json", json.dumps(reply).encode()

    # --- generation ------------------------------------------------------------------------

    def _request(self, body: bytes):
        try:
            request = json.loads(body or b"null")
        except ValueError:
            return None, _error(400, "Invalid JSON body")
        if not isinstance(request, dict):
            return None, _error(400, "The body must be a JSON object")
        model = request.get("model")
        if model not in self.models and model not in self.adapters:
            return None, _error(404, f"The model `{model}` does not exist.")
        return request, None

    @staticmethod
    def _tokens(text: str) -> int:
        return math.ceil(len(text) / 4)

    @contextlib.contextmanager
    def _serving(self):
        with self._lock:
            self.active += 1
        try:
            yield
        finally:
            self._release()

    def _release(self):
        with self._lock:
            self.active -= 1

    def _cached_tokens(self, model: str, text: str) -> int:
        """Look the prompt's full blocks up in the LRU (a hit is the run of blocks from the start),
        then store them all, as vLLM's automatic prefix caching does."""
        digest, hits, hit_run = hashlib.sha1(model.encode()), 0, True
        with self._lock:
            for end in range(BLOCK_CHARS, len(text) + 1, BLOCK_CHARS):
                digest.update(text[end - BLOCK_CHARS:end].encode())  # chained: the hash of the prefix
                key = digest.copy().hexdigest()
                if hit_run and key in self._cache:
                    hits += BLOCK_TOKENS
                else:
                    hit_run = False
                self._cache[key] = None
                self._cache.move_to_end(key)
            while len(self._cache) > max(0, self.cache_blocks):
                self._cache.popitem(last=False)
            prompt = self._tokens(text)
            self.prefix_queries += prompt
            self.prefix_hits += min(hits, prompt)
        return min(hits, prompt)

    def _generate(self, body: bytes, chat: bool) -> tuple:
        request, error = self._request(body)
        if error:
            return error
        if chat:
            text = "\n".join(_text(m.get("content")) for m in request.get("messages") or [] if isinstance(m, dict))
        else:
            prompt = request.get("prompt", "")
            text = "\n".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
        n = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
        with self._lock:
            self.active += 1
        handed_off, slotted = False, False
        try:
            if self.hold is not None:
                self.hold.wait()
            with self._lock:
                failing = self.fail_next > 0
                self.fail_next -= failing
            if failing:
                return _error(self.fail_status, "Simulated failure")
            prompt_tokens = self._tokens(text)
            slotted = self._admit()
            with self._prefill if slotted else contextlib.nullcontext():
                cached = self._cached_tokens(request["model"], text)
                time.sleep(self.prefill_per_token * (prompt_tokens - cached))
            time.sleep(self.ttft)
            with self._lock:
                self.prompt_tokens += prompt_tokens
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
            head = {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex, "created": int(time.time()),
                    "model": request["model"]}
            if request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                chunks = self._chunks(head, chat, n, usage if include_usage else None)
                handed_off = True
                return 200, "text/event-stream", _Stream(chunks, self._finish if slotted else self._release)
            with self._lock:
                self.generation_tokens += n
            choice = ({"index": 0, "message": {"role": "assistant", "content": TOKEN * n}} if chat
                      else {"index": 0, "text": TOKEN * n})
            choice.update(logprobs=None, finish_reason="length")
            reply = {**head, "object": "chat.completion" if chat else "text_completion", "choices": [choice],
                     "usage": usage}
            return 200, "application/json", json.dumps(reply).encode()
        finally:
            if not handed_off:
                self._finish() if slotted else self._release()

    def _admit(self) -> bool:
        """Waits for a slot, first come first served; False when there is no limit."""
        slots = self.slots
        if not slots:
            return False
        ticket = object()
        with self._slot_free:
            self._queue.append(ticket)
            self.queued += 1
            while self._queue[0] is not ticket or self._admitted >= slots:
                self._slot_free.wait()
            self._queue.popleft()
            self.queued -= 1
            self._admitted += 1
            self._slot_free.notify_all()  # the next in line may fit too
        return True

    def _finish(self):
        """An admitted request is done: its slot goes to the next in line."""
        with self._slot_free:
            self._admitted -= 1
            self._slot_free.notify_all()
        self._release()

    def _chunks(self, head: dict, chat: bool, n: int, usage: Optional[dict]):
        """vLLM's SSE: a role chunk (chat), a chunk a token (the last with finish_reason), the
        usage chunk when asked for, then [DONE]."""
        extra = {"usage": None} if usage else {}

        def event(choices, **more) -> bytes:
            chunk = {**head, "object": "chat.completion.chunk" if chat else "text_completion",
                     "choices": choices, **extra, **more}
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        def choice(content, finish=None) -> dict:
            c = {"index": 0, "delta": content} if chat else {"index": 0, "text": content.get("content", "")}
            c.update(logprobs=None, finish_reason=finish)
            return c

        if chat:
            yield event([choice({"role": "assistant", "content": ""})])
        for i in range(max(n, 1)):
            if self.die_after_tokens is not None and i >= self.die_after_tokens:
                raise _Cut()
            if i:
                time.sleep(self.token_time)
            with self._lock:
                self.generation_tokens += 1 if n else 0
            yield event([choice({"content": TOKEN if n else ""}, "length" if i == max(n, 1) - 1 else None)])
        if usage:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"


class _Collector:
    """The pod's values as vLLM's metric families (labels as vLLM V1 writes them)."""

    def __init__(self, pod: LLMPod):
        self.pod = pod

    def collect(self):
        pod = self.pod
        names, values = ["engine", "model_name"], ["0", pod.models[0] if pod.models else ""]
        kv = "vllm:gpu_cache_usage_perc" if pod.legacy_kv else "vllm:kv_cache_usage_perc"
        queued = pod.queued
        for name, value, doc in (("vllm:num_requests_running", pod.running + pod.active - queued,
                                  "Requests in the running batch."),
                                 ("vllm:num_requests_waiting", pod.waiting + queued, "Requests waiting to run."),
                                 (kv, pod.kv_cache, "KV-cache usage. 1 means 100 percent usage.")):
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(values, value)
            yield family
        for name, value in (("vllm:prompt_tokens", pod.prompt_tokens), ("vllm:generation_tokens", pod.generation_tokens),
                            ("vllm:prefix_cache_queries", pod.prefix_queries), ("vllm:prefix_cache_hits", pod.prefix_hits)):
            family = CounterMetricFamily(name, f"Number of {name[5:].replace('_', ' ')} processed.", labels=names)
            family.add_metric(values, value)
            yield family
        lora = GaugeMetricFamily("vllm:lora_requests_info", "Running stats on lora requests.",
                                 labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"])
        lora.add_metric(["4", ",".join(pod.lora_running), ",".join(pod.lora_waiting)], time.time())
        yield lora


class _Handler(BaseHTTPRequestHandler):
    owner: LLMPod
    protocol_version = "HTTP/1.1"  # keep-alive, as clients use vLLM

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each SSE chunk leaves at once
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self):
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the peer is gone (or we cut it): nothing left to flush
            pass

    def _dispatch(self, method: str):
        pod, path = self.owner, self.path.split("?", 1)[0]
        pod.calls[path] = pod.calls.get(path, 0) + 1
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if method == "POST":
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            pod.seen.append((path, {k.lower(): v for k, v in self.headers.items()}, parsed))
        route = pod.ROUTES.get((method, path))
        if route is None:
            status, kind, body = 404, "application/json", json.dumps({"detail": "Not Found"}).encode()
        else:
            status, kind, body = getattr(pod, route)(raw, self.headers)
        try:
            self.send_response(status)
            self.send_header("content-type", kind)
            if isinstance(body, (bytes, bytearray)):
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-cache")
            self.end_headers()
            for chunk in body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except _Cut:  # dying mid-answer: no terminating chunk, the peer sees the connection drop
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client went away: stop generating for it
            self.close_connection = True
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def log_message(self, *args):  # quiet: the tests read the pods' state, not their logs
        pass


# --- as a process ------------------------------------------------------------------------------

class PodProcess:
    """An LLMPod in a process of its own, for tests that need it killed (SIGKILL) like a real pod."""

    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


_FLAGS = {"ttft": "--ttft", "token_time": "--token-time", "prefill_per_token": "--prefill-per-token",
          "cache_blocks": "--cache-blocks", "slots": "--slots", "metrics_delay": "--metrics-delay"}


def _spawn(models=("llama",), port: int = 0, timeout: float = 15.0, **options) -> PodProcess:
    args = [sys.executable, os.path.abspath(__file__), "--port", str(port)]
    for model in models:
        args += ["--model", model]
    for name, value in options.items():
        args += [_FLAGS[name], str(value)]  # a KeyError names an option the CLI does not have
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    deadline, line = time.monotonic() + timeout, b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None or not select.select([proc.stdout], [], [], left)[0]:
            PodProcess(proc, 0).stop()
            raise RuntimeError(f"llm_pod did not get ready: {line!r}")
        byte = os.read(proc.stdout.fileno(), 1)  # unbuffered: never read past the ready line
        if not byte:
            continue
        line += byte
    return PodProcess(proc, int(line.split()[1]))


def spawn_pods(n: int, **options) -> list:
    """n pods as processes, each ready; options: models, ttft, token_time, prefill_per_token, cache_blocks,
    slots, metrics_delay."""
    pods: list = []
    try:
        for _ in range(n):
            pods.append(_spawn(**options))
    except Exception:
        for pod in pods:
            pod.stop()
        raise
    return pods


@contextlib.contextmanager
def pods_running(n: int, **options):
    pods = spawn_pods(n, **options)
    try:
        yield pods
    finally:
        for pod in pods:
            pod.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="A vLLM-like test pod.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", action="append", dest="models")
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--token-time", type=float, default=0.0)
    parser.add_argument("--prefill-per-token", type=float, default=0.0)
    parser.add_argument("--cache-blocks", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=None, help="requests generating at once (default: no limit)")
    parser.add_argument("--metrics-delay", type=float, default=0.0, help="seconds /metrics hangs before answering")
    args = parser.parse_args(argv)
    pod = LLMPod(models=args.models or ["llama"], port=args.port)
    pod.ttft, pod.token_time = args.ttft, args.token_time
    pod.prefill_per_token, pod.cache_blocks, pod.slots = args.prefill_per_token, args.cache_blocks, args.slots
    pod.metrics_delay = args.metrics_delay
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    pod.start()
    try:
        print(f"ready {pod.port}", flush=True)
        while True:
            signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        pod.stop()


if __name__ == "__main__":
    main()
