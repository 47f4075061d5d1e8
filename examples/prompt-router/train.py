"""Fits the prompt router's head: multinomial logistic regression (numpy) over the
all-MiniLM-L6-v2 embeddings of the labelled prompts in prompts.jsonl, then prints the
held-out accuracy per class and writes head.npz (W, b, labels: plain arrays, no pickle).

    python examples/prompt-router/train.py            # seconds on a CPU; nothing is downloaded

Deterministic: full-batch gradient descent from zeros (no random draws), the encoder on one
CPU thread, so a rerun on the same machine rewrites the same head.npz.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from prompt_model import HEAD, Encoder, write_head  # noqa: E402

LABELS = ["code", "math", "chat"]  # class i -> child i by default: branch_names code-llm:math-llm:chat-llm


def read_prompts(path: str) -> dict:
    """{"train": (texts, label indices), "heldout": (...)} from the JSON lines file."""
    out: dict = {"train": ([], []), "heldout": ([], [])}
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts, ys = out[row["split"]]
                texts.append(row["text"])
                ys.append(LABELS.index(row["label"]))
    return {k: (texts, np.array(ys)) for k, (texts, ys) in out.items()}


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 800, lr: float = 4.0, l2: float = 1e-3):
    """Softmax regression by full-batch gradient descent: W (D, C), b (C,)."""
    w = np.zeros((x.shape[1], n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        w -= lr * (x.T @ grad + l2 * w)
        b -= lr * grad.sum(axis=0)
    return w, b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(HERE, "prompts.jsonl"))
    ap.add_argument("--out", default=HEAD)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the same sums in the same order on every run
    start = time.perf_counter()
    data = read_prompts(args.data)
    encoder = Encoder("cpu")
    x_train, x_test = (encoder(data[k][0]).astype(np.float64) for k in ("train", "heldout"))
    (_, y_train), (_, y_test) = data["train"], data["heldout"]
    w, b = fit(x_train, y_train, len(LABELS))
    predicted = (x_test @ w + b).argmax(axis=1)
    train_acc = float(((x_train @ w + b).argmax(axis=1) == y_train).mean())
    per_class = {label: float((predicted[y_test == k] == k).mean()) for k, label in enumerate(LABELS)}
    print(f"{len(y_train)} training prompts (accuracy {train_acc:.3f}), {len(y_test)} held out: accuracy "
          f"{(predicted == y_test).mean():.3f} (" + ", ".join(f"{k} {v:.3f}" for k, v in per_class.items())
          + f") in {time.perf_counter() - start:.1f}s")
    write_head(args.out, w, b, LABELS)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
