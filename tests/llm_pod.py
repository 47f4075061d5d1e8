"""A vLLM-like pod for tests: a real HTTP server on 127.0.0.1 (a thread) answering what the
routers and the pod watcher ask of a vLLM server, with values a test sets as it goes.

  GET /metrics     vLLM's Prometheus names, written by prometheus_client as vLLM writes them
  GET /v1/models   the base models, and the LoRA adapters with `parent` set to their base
  GET /health      200 (empty), as vLLM answers

    pod = LLMPod(models=["llama"], adapters={"sql-lora": "llama"}).start()
    pod.running, pod.kv_cache = 3, 0.4      # the next scrape sees them
    pod.metrics_status = 500                # /metrics fails, /health still answers
    pod.stop(); pod.start()                 # gone, then back on the same port

A route is a method named by ROUTES, called with the request's body and headers and
returning (status, content type, body bytes), so a test (or the gateway's tests) adds one by
subclassing: ROUTES = {**LLMPod.ROUTES, ("POST", "/v1/chat/completions"): "chat"}.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class LLMPod:
    ROUTES = {("GET", "/metrics"): "metrics", ("GET", "/v1/models"): "models_list", ("GET", "/health"): "health"}

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
        self.calls: dict = {}  # path -> requests seen
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


class _Collector:
    """The pod's values as vLLM's metric families (labels as vLLM V1 writes them)."""

    def __init__(self, pod: LLMPod):
        self.pod = pod

    def collect(self):
        pod = self.pod
        names, values = ["engine", "model_name"], ["0", pod.models[0] if pod.models else ""]
        kv = "vllm:gpu_cache_usage_perc" if pod.legacy_kv else "vllm:kv_cache_usage_perc"
        for name, value, doc in (("vllm:num_requests_running", pod.running, "Requests in the running batch."),
                                 ("vllm:num_requests_waiting", pod.waiting, "Requests waiting to run."),
                                 (kv, pod.kv_cache, "KV-cache usage. 1 means 100 percent usage.")):
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(values, value)
            yield family
        for name, value in (("vllm:prompt_tokens", pod.prompt_tokens), ("vllm:generation_tokens", pod.generation_tokens)):
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
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self):
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        super().finish()

    def _dispatch(self, method: str):
        pod, path = self.owner, self.path.split("?", 1)[0]
        pod.calls[path] = pod.calls.get(path, 0) + 1
        route = pod.ROUTES.get((method, path))
        if route is None:
            status, kind, body = 404, "application/json", json.dumps({"detail": "Not Found"}).encode()
        else:
            length = int(self.headers.get("content-length") or 0)
            status, kind, body = getattr(pod, route)(self.rfile.read(length) if length else b"", self.headers)
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def log_message(self, *args):  # quiet: the tests read the pods' state, not their logs
        pass
