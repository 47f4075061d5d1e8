"""Trains the digits CNN of the digits-router example and exports it twice:
model.pt (TorchScript) and model.onnx. scikit-learn's bundled 8x8 digits, nothing is
downloaded; seeded, so a rerun gives the same accuracy. Runs in seconds on a CPU.

    pip install torch scikit-learn onnx && python examples/digits-router/train.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT_SHAPE = [1, 8, 8]  # one image; pixel values 0..16 as load_digits gives them


def split():
    """The held-out quarter the tests and the README use too (same seed, same split)."""
    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32).reshape(-1, *INPUT_SHAPE), y, test_size=0.25,
                            random_state=0, stratify=y)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x / 16.0))  # logits over the digits 0..9


def train(epochs: int, seed: int = 0) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = split()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    return model, float(accuracy)


def export(model: nn.Module, out: str) -> None:
    example = torch.zeros(1, *INPUT_SHAPE)
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript and the legacy ONNX exporter
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.trace(model, example)
        # The router reads the input shape from this extra file (no input_shape parameter needed).
        torch.jit.save(scripted, os.path.join(out, "model.pt"),
                       _extra_files={"seldon_routers.json": json.dumps({"input_shape": INPUT_SHAPE})})
        # The legacy (TorchScript-based) exporter: it needs the onnx package only, not onnxscript.
        torch.onnx.export(model, (example,), os.path.join(out, "model.onnx"), input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default=HERE, help="where model.pt and model.onnx go (default: beside this script)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # a model this small trains as fast on one thread, and never oversubscribes
    start = time.perf_counter()
    model, accuracy = train(args.epochs)
    export(model, args.out)
    print(f"held-out accuracy {accuracy:.4f} after {args.epochs} epochs in {time.perf_counter() - start:.1f}s; "
          f"wrote {args.out}/model.pt and model.onnx")


if __name__ == "__main__":
    main()
