"""Micro-batching of the classifier router: the digits CNN's decide path in-process, from N
threads, batched beside unbatched, in one run; on CUDA too when there is a GPU.

    python bench/classifier_batching.py [--seconds 3] [--backend torchscript|onnx]
    python bench/classifier_batching.py --example prompt    # examples/prompt-router: MiniLM + head

For each device (cpu; cuda when PyTorch sees one) and concurrency (1, 32, 64), N threads
each call `classify` on one digit image (a (1, 1, 8, 8) request) in a loop for --seconds,
after a warm-up; the router is built once per (device, mode): unbatched is
max_batch_size=1 (one model call per request, through the same worker thread), batched is
max_batch_size=64 with max_batch_delay_ms=0 (a lone call never waits; batches form while
the previous one runs). Reported: images/s, the p50 and p99 latency per call, and the
ratios. Targets: CPU batched/unbatched at concurrency 32 >= 3x, p99 at concurrency 1
within 1 ms of unbatched; on a GPU the same, plus CUDA/CPU at concurrency 64 (batched).
With --example prompt, each call is one held-out prompt (strData) through the prompt
router (sentence encoder and linear head, examples/prompt-router); the targets are the
digits CNN's, reported for comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from seldon_routers import ClassifierRouter  # noqa: E402

MODELS = {"torchscript": os.path.join(ROOT, "examples", "digits-router", "model.pt"),
          "onnx": os.path.join(ROOT, "examples", "digits-router", "model.onnx")}
SPECIALISTS = [0] * 5 + [1] * 5
CONCURRENCY = (1, 32, 64)
MODES = {"unbatched": 1, "batched": 64}
PROMPTS = os.path.join(ROOT, "examples", "prompt-router")


def images(n: int = 256) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32).reshape(-1, 1, 1, 8, 8)
    return x[:n]


def measure(router: ClassifierRouter, threads: int, seconds: float, xs: np.ndarray) -> dict:
    stop = threading.Event()
    latencies: list = [[] for _ in range(threads)]

    def worker(i: int) -> None:
        mine, k = latencies[i], i
        clock, classify = time.perf_counter, router.classify
        while not stop.is_set():
            t0 = clock()
            classify(xs[k % len(xs)])
            mine.append(clock() - t0)
            k += threads

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    time.sleep(min(1.0, seconds / 3))  # warm-up: threads running, queues filled
    for lat in latencies:
        lat.clear()
    start = router.state()["batching"]
    t0 = time.perf_counter()
    time.sleep(seconds)
    counted = [len(lat) for lat in latencies]
    elapsed = time.perf_counter() - t0
    end = router.state()["batching"]
    stop.set()
    for t in pool:
        t.join()
    done = np.concatenate([np.asarray(lat[:n]) for lat, n in zip(latencies, counted)]) * 1000
    batches = end["batches"] - start["batches"]
    return {"ips": sum(counted) / elapsed, "p50": float(np.percentile(done, 50)),
            "p99": float(np.percentile(done, 99)),
            "batch": (end["rows"] - start["rows"]) / batches if batches else 0.0}


def texts() -> list:
    """The prompt router's inputs: every prompt of prompts.jsonl, held-out ones first."""
    import json

    with open(os.path.join(PROMPTS, "prompts.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r["text"] for r in sorted(rows, key=lambda r: r["split"] != "heldout")]


def make_router(example: str, backend: str, device: str, size: int) -> ClassifierRouter:
    if example == "prompt":
        sys.path.insert(0, PROMPTS)
        from prompt_model import PromptRouter

        return PromptRouter(device=device, branch_names="code-llm:math-llm:chat-llm", max_batch_size=size)
    return ClassifierRouter(model_path=MODELS[backend], class_to_child=SPECIALISTS, device=device,
                            max_batch_size=size)


def run_device(example: str, backend: str, device: str, seconds: float, xs) -> dict:
    out = {}
    for mode, size in MODES.items():
        router = make_router(example, backend, device, size)
        router.load()
        for c in CONCURRENCY:
            out[mode, c] = measure(router, c, seconds, xs)
        router.close()
    return out


def fmt(r: dict) -> str:
    return f"{r['ips']:>9,.0f} {r['p50']:>7.3f} {r['p99']:>7.3f} {r['batch']:>6.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per row (default 3)")
    ap.add_argument("--backend", choices=sorted(MODELS), default="torchscript")
    ap.add_argument("--example", choices=("digits", "prompt"), default="digits",
                    help="digits: the digits CNN (--backend); prompt: examples/prompt-router (torch)")
    args = ap.parse_args()
    xs = texts() if args.example == "prompt" else images()
    what, unit = (("prompt router, MiniLM + head", "prompts/s") if args.example == "prompt" else
                  (f"digits CNN ({args.backend})", "images/s"))
    devices = ["cpu"]
    runtime = ""
    if args.backend == "torchscript" or args.example == "prompt":
        import torch

        runtime = f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
        if torch.cuda.is_available():
            devices.append("cuda")
            runtime += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        import onnxruntime

        runtime = f"onnxruntime {onnxruntime.__version__}"
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            devices.append("cuda")
    print(f"classifier micro-batching, {what}; {runtime}; "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); devices: {', '.join(devices)}")
    if devices == ["cpu"]:
        print("no CUDA device here: CPU rows only")
    results = {d: run_device(args.example, args.backend, d, args.seconds, xs) for d in devices}
    head = f"{unit:>9} {'p50 ms':>7} {'p99 ms':>7} {'batch':>6}"
    print(f"\n{'device':<6} {'conc':>4} | unbatched (max_batch_size=1)     | batched (max_batch_size=64)      | "
          f"{'x thru':>6} {'d p99 ms':>8}")
    print(f"{'':<6} {'':>4} | {head} | {head} |")
    for d in devices:
        for c in CONCURRENCY:
            u, b = results[d]["unbatched", c], results[d]["batched", c]
            delta = b["p99"] - u["p99"] + 0.0
            print(f"{d:<6} {c:>4} | {fmt(u)} | {fmt(b)} | {b['ips'] / u['ips']:>5.2f}x {delta:>+8.3f}")
    checks = []
    for d in devices:
        r = results[d]
        ratio = r["batched", 32]["ips"] / r["unbatched", 32]["ips"]
        checks.append((f"{d}: batched/unbatched throughput at concurrency 32 = {ratio:.2f}x (target >= 3x)",
                       ratio >= 3))
        delta = r["batched", 1]["p99"] - r["unbatched", 1]["p99"]
        checks.append((f"{d}: p99 at concurrency 1, batched - unbatched = {delta:+.3f} ms (target <= 1 ms)",
                       delta <= 1.0))
    if "cuda" in devices:
        ratio = results["cuda"]["batched", 64]["ips"] / results["cpu"]["batched", 64]["ips"]
        checks.append((f"cuda/cpu batched throughput at concurrency 64 = {ratio:.2f}x (reported)", True))
    if args.example == "prompt":  # the targets are the digits CNN's: shown, not judged
        checks = [(text.replace("(target", "(digits target"), True) for text, _ in checks]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
