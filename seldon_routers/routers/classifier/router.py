"""`classifier`: model as a router. A classifier (TorchScript, ONNX or a Python callable)
names a class for the request (tensor rows, texts with inputs=text, or a PNG/JPEG image with
inputs=image), and the class names the child; below `min_confidence` the request goes to
`fallback`. Concurrent calls are micro-batched into one model call."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Callable, Optional, Union

import numpy as np

from ...errors import BadRequest, ConfigError, NoRoute, NotReady, RouterFailed
from ...request import Request
from ...router import Decision, Router
from .._params import arguments
from . import backends, config, images, inputs
from .batcher import Batcher

log = logging.getLogger("seldon_routers")
_INT = re.compile(r"^-?\d+$")
_WARMUP_TEXT = "Hello! How are you today?"  # what a text model answers at load


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class ClassifierRouter(Router):
    """Routes each request by the class a classifier predicts for it (docs/classifier.md).

    model_path: a local .pt (TorchScript) or .onnx file; pickles only with trust_pickle.
    model: (Python only) a callable taking a float32 batch (inputs=text: a list of str) and
      returning (N, C) scores.
    inputs: tensor (ndarray/tensor/tftensor rows of input_shape), text (strData, an
      OpenAI-style jsonData body, or an ndarray of strings; see inputs.text_rows) or image
      (a PNG or JPEG in binData, preprocessed by the image_* parameters below; images.py).
    backend: auto (from the extension), torchscript, onnx, pickle or callable.
    device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N.
    input_shape: the shape of one row without the batch dim, '1,8,8'; read from the model
      when it tells (ONNX, or a TorchScript file exported with seldon_routers.json); tensors only.
    labels: class names, 'a:b:c' or a JSON list (else the model's, else indices).
    class_to_child: class index or label -> child index or name, a JSON object or list
      (default: class i -> child i). A class without a child goes to fallback.
    branch_names, n_branches: the children, as for the other routers.
    min_confidence: below this top-class probability the request goes to fallback.
    fallback: a child (index or name), -1 (all children) or -2 (none).
    output: what the model returns: logits (softmax applied) or probabilities.
    max_batch_size, max_batch_delay_ms: micro-batching (1 row: no batching; delay 0: a
      lone call never waits, batches form while the previous one runs). An ONNX model with
      a fixed batch size caps max_batch_size to it.
    max_request_rows: the most rows (texts) one request may carry; more is a 400.
    trust_pickle: allow pickled models (unpickling runs code from the file).
    warmup: run the model once at load; /ready waits for that answer.
    image_size: inputs=image: H or H,W the model takes (default: from the model's input).
    image_resize_shorter: resize the shorter side to this, then center-crop image_size
      (torchvision's Resize + CenterCrop); unset: resize straight to image_size.
    image_resample: Pillow's filter: nearest, box, bilinear (default), hamming, bicubic, lanczos.
    image_scale: pixels (0..255) times this, '1/255' by default; image_mean, image_std: then
      per channel (in the model's channel order) x = (x - mean) / std, '0.485,0.456,0.406'.
    channel_order: RGB or BGR; layout: NCHW or NHWC; color_mode: RGB or L (grayscale).
    max_image_pixels: a bigger image (width x height, from its header) is a 400.
    """

    name = "classifier"

    def __init__(self, model_path: Optional[str] = None, model: Optional[Callable] = None, backend: str = "auto",
                 device: str = "auto", input_shape: Union[str, list, None] = None,
                 labels: Union[str, list, None] = None, class_to_child: Union[str, dict, list, None] = None,
                 branch_names: Union[str, list, None] = None, n_branches: Optional[int] = None,
                 min_confidence: float = 0.0, fallback: Union[int, str, None] = None, output: str = "logits",
                 max_batch_size: int = 32, max_batch_delay_ms: float = 0.0, trust_pickle: bool = False,
                 warmup: bool = True, inputs: str = "tensor", max_request_rows: int = 1024,
                 image_size: Union[str, int, None] = None, image_resize_shorter: Optional[int] = None,
                 image_resample: Optional[str] = None, image_scale: Union[float, str, None] = None,
                 image_mean: Union[str, list, None] = None, image_std: Union[str, list, None] = None,
                 channel_order: Optional[str] = None, layout: Optional[str] = None,
                 color_mode: Optional[str] = None, max_image_pixels: Optional[int] = None):
        settings = config.read(**arguments(locals()))
        self.model_path, self.model, self.backend, self.device = (settings.model_path, settings.model,
                                                                  settings.backend, settings.device)
        self.inputs, self.input_shape, self.labels = settings.inputs, settings.input_shape, settings.labels
        self.class_to_child, self.fallback = settings.class_to_child, settings.fallback
        self.branch_names = settings.branch_names
        self.n_children = len(self.branch_names) if self.branch_names is not None else None
        self.min_confidence, self.output = settings.min_confidence, settings.output
        self.max_batch_size, self.max_batch_delay_ms = settings.max_batch_size, settings.max_batch_delay_ms
        self.max_request_rows = settings.max_request_rows
        self.trust_pickle, self.warmup = settings.trust_pickle, settings.warmup
        self.image: Optional[images.ImageSpec] = settings.image
        self._loaded: Optional[backends.Loaded] = None
        self._batcher: Optional[Batcher] = None
        self._table: Optional[list] = None  # per class: its child, or None (none: the fallback's)
        self._observer: Optional[Callable] = None  # per batch (rows, seconds): the server's Prometheus histograms

    # --- loading ------------------------------------------------------------------------

    def load(self) -> None:
        """Loads the model, checks its input against input_shape, warms it up: the server
        turns /ready on once this returns, i.e. once the model has answered."""
        if self._batcher is not None:
            return
        loaded = backends.load(self.backend, self.model_path, self.model, self.device)
        if loaded.max_rows is not None and self.max_batch_size > loaded.max_rows:
            log.info("router %s: max_batch_size %d capped to %d, the model's fixed batch size", self.describe(),
                     self.max_batch_size, loaded.max_rows)
            self.max_batch_size = loaded.max_rows
        if self.inputs == "tensor":
            self.input_shape = self._tensor_shape(loaded)
        elif self.inputs == "image":
            self.input_shape = self._image_shape(loaded)
        self._loaded, self.device = loaded, loaded.device
        self.labels = self.labels or loaded.labels
        if self.output == "logits" and loaded.info.get("probabilities"):
            self.output = "probabilities"  # predict_proba already returns probabilities
        if self.warmup:
            for rows in sorted({1, self.max_batch_size}):
                batch = (np.array([_WARMUP_TEXT] * rows, dtype=object) if self.inputs == "text" else
                         np.zeros((rows, *self.input_shape), loaded.dtype))
                self._build_table(self._probabilities(batch))
        self._batcher = Batcher(self._probabilities, self.max_batch_size, self.max_batch_delay_ms,
                                finish=self._decision, on_batch=self._observe, name=f"router {self.describe()}")

    def _tensor_shape(self, loaded: backends.Loaded) -> tuple:
        shape = self.input_shape or loaded.input_shape
        if shape is None:
            raise ConfigError(f"input_shape: the {loaded.backend} model does not say what one row looks like; "
                              "set input_shape (e.g. 1,8,8)")
        if self.input_shape and loaded.input_shape and self.input_shape != loaded.input_shape:
            raise ConfigError(f"input_shape: {self.input_shape} given, but the model takes {loaded.input_shape}")
        return tuple(shape)

    def _image_shape(self, loaded: backends.Loaded) -> tuple:
        """The row an image becomes: image_size, else the size the model's input declares."""
        spec = self.image
        if loaded.input_shape is not None:
            size = spec.size_from(loaded.input_shape)
            if spec.size is not None and spec.size != size:
                raise ConfigError(f"image_size: {spec.size[0]}x{spec.size[1]} given, but the model takes "
                                  f"{loaded.input_shape} ({size[0]}x{size[1]} in {spec.layout})")
        elif spec.size is None:
            raise ConfigError(f"image_size: the {loaded.backend} model does not say what size of image it takes; "
                              "set image_size (e.g. 224)")
        else:
            size = spec.size
        images.check_crop(spec.resize_shorter, size, "the model's image size")
        self.image = dataclasses.replace(spec, size=size)
        return self.image.row_shape()

    def _build_table(self, probs: np.ndarray) -> None:
        if self._table is not None:
            return
        n_classes = probs.shape[1]
        labels = self.labels or [str(i) for i in range(n_classes)]
        if len(labels) != n_classes:
            raise ConfigError(f"labels: {len(labels)} given, but the model scores {n_classes} classes")
        if self.class_to_child is None:
            mapping = {k: k for k in range(n_classes) if self.n_children is None or k < self.n_children}
        else:
            mapping = {}
            for key, child in self.class_to_child.items():
                index = key if isinstance(key, int) else labels.index(key) if key in labels else None
                if index is None or not 0 <= index < n_classes:
                    raise ConfigError(f"class_to_child: {key!r} is not a class of the model "
                                      f"(0..{n_classes - 1}: {', '.join(labels)})")
                mapping[index] = child
        if self.branch_names is None:  # identity, or a mapping to -1/-2 only: the children are those named
            top = max([*mapping.values(), -1 if self.fallback is None else self.fallback])
            self.branch_names = [str(i) for i in range(top + 1)]
            self.n_children = len(self.branch_names)
        config.check_children(self.fallback, self.class_to_child, self.branch_names)
        unmapped = [labels[k] for k in range(n_classes) if k not in mapping]
        if unmapped and self.fallback is None:
            raise ConfigError(f"class_to_child: classes {', '.join(unmapped)} have no child and there is no "
                              "fallback; map them or set fallback")
        self._classes = list(self.labels) if self.labels else list(range(n_classes))  # what tags say
        self._table = [mapping.get(k) for k in range(n_classes)]

    def register_metrics(self, metrics) -> None:
        """The server's hook: batch sizes and inference time per batch, as histograms."""
        sizes = metrics.histogram("seldon_router_classifier_batch_size", "Rows per model call (micro-batch size).",
                                  buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        seconds = metrics.histogram("seldon_router_classifier_inference_seconds", "Model time per batch.",
                                    buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
        # One hook, the latest registry's: a router registered again (a new DataPlane) does not pile them up.
        self._observer = lambda rows, secs: (sizes.observe(rows), seconds.observe(secs))

    def _observe(self, rows: int, seconds: float) -> None:
        if self._observer is not None:
            self._observer(rows, seconds)

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    # --- one batch, in the batcher's thread ------------------------------------------------

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        scores = self._loaded.predict(batch.tolist() if self.inputs == "text" else batch)  # texts: a list of str
        if scores.ndim != 2 or len(scores) != len(batch):
            raise RouterFailed(f"model: expected ({len(batch)}, C) scores for {len(batch)} rows, got shape "
                               f"{scores.shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite scores: _decision's to handle
            scores = scores.astype(np.float32, copy=self.output == "logits")
            return _softmax(scores) if self.output == "logits" else scores

    def _decision(self, probs: np.ndarray) -> Decision:
        """One caller's rows: the argmax of the rows' mean probabilities names the class."""
        if self._table is None:  # warmup=false: the first batch tells how many classes there are
            self._build_table(probs)
        if not np.isfinite(probs).all():  # NaN's argmax is 0 and NaN < min_confidence is False
            return self._not_finite()
        mean = probs[0] if len(probs) == 1 else probs.mean(axis=0)
        k = int(mean.argmax())
        p = float(mean[k])
        child, fallback = self._table[k], False
        if p < self.min_confidence or child is None:
            child, fallback = self.fallback, True
            if child is None:
                raise NoRoute(f"router {self.describe()}: class {self._classes[k]!r} has no child and there is "
                              "no fallback")
        return self._routed(child, self._classes[k], p, fallback)

    def _routed(self, child: int, label, probability: Optional[float], fallback: bool) -> Decision:
        branch = self.branch_names[child] if child >= 0 else None
        return Decision(child, {"class": label, "probability": probability, "route": child, "branch": branch,
                                "fallback": fallback})

    def _not_finite(self) -> Decision:
        """NaN or infinite scores (features the model overflows on, say) name no class: the
        fallback, with no class and no probability in the tags (JSON has no NaN)."""
        if self.fallback is None:
            raise BadRequest("features: the model's scores for these features are not finite (NaN or infinity), "
                             "and there is no fallback")
        return self._routed(self.fallback, None, None, True)

    # --- requests -----------------------------------------------------------------------

    def _submit(self, features, kind: str = ""):
        if self._batcher is None:
            raise NotReady(f"router {self.describe()}: the model is not loaded yet (call load())")
        if self.inputs == "text":
            return self._batcher.submit(inputs.text_rows(features, kind, self.max_request_rows))
        if self.inputs == "image":
            return self._batcher.submit(images.image_row(features, kind, self.image, self._loaded.dtype))
        rows = inputs.tensor_rows(features, kind, self.input_shape, self._loaded.dtype, self.max_request_rows)
        fixed = self._loaded.max_rows
        if fixed is not None and len(rows) > fixed:
            raise BadRequest(f"features: {len(rows)} rows in one request, but the model's fixed batch size is "
                             f"{fixed} (its input's first dimension): send at most {fixed} rows per request")
        return self._batcher.submit(rows)

    def decide(self, request: Request):
        """On the server's event loop: an awaitable, so the loop serves others meanwhile."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._submit(request.features, request.kind).result()
        if self.inputs == "image":  # decoding a photo takes milliseconds: off the loop (Pillow frees the GIL)
            return self._decoded_then_batched(loop, request)
        return asyncio.wrap_future(self._submit(request.features, request.kind), loop=loop)

    async def _decoded_then_batched(self, loop, request: Request) -> Decision:
        future = await loop.run_in_executor(None, self._submit, request.features, request.kind)
        return await asyncio.wrap_future(future, loop=loop)

    def classify(self, features) -> Decision:
        """The decision with its tags, from any thread (tests, the bench)."""
        return self._submit(features).result()

    # --- introspection -----------------------------------------------------------------

    def state(self) -> dict:
        loaded = self._loaded
        return {"backend": self.backend, "device": self.device, "model_path": self.model_path, "inputs": self.inputs,
                **({"image": self.image.as_dict()} if self.image else {}),
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "labels": self.labels, "children": self.branch_names,
                "class_to_child": None if self._table is None else
                {str(c): child for c, child in zip(self._classes, self._table)},
                "fallback": self.fallback, "min_confidence": self.min_confidence, "output": self.output,
                "max_request_rows": self.max_request_rows,
                "batching": {"max_batch_size": self.max_batch_size, "max_batch_delay_ms": self.max_batch_delay_ms,
                             **(self._batcher.stats.as_dict() if self._batcher else {})},
                "runtime": loaded.info if loaded else {}}
