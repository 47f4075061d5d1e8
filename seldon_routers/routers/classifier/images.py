"""Image inputs (inputs=image): one PNG or JPEG in `binData` (bytes: the codec has already
undone REST's base64) decoded with Pillow and preprocessed into one model row, as the
router's parameters declare (docs/classifier.md#image-inputs):

    decode -> convert to color_mode -> resize (plain, or shorter side + center crop, as
    torchvision's eval transform) -> float32 -> channel_order -> * scale -> - mean -> / std
    -> layout

Pillow is imported only when an image input is configured, so the core stays numpy only.
A request that is not such an image (another format, truncated bytes, more pixels than
max_image_pixels, a 16-bit or float mode) is a BadRequest naming binData; nothing is queued.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import BadRequest, ConfigError
from .._params import choice, optional, positive_int, real, reals

FORMATS = ("PNG", "JPEG")
RESAMPLE = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
# 8-bit modes Pillow converts to RGB or L without losing meaning (alpha is dropped); 16-bit
# and float modes (I;16, I, F) would make image_scale wrong, so they are refused.
MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
EXPECTED = "binData: a PNG or JPEG image"
# The base64 of PNG's and JPEG's magic bytes: early seldon-core wrappers (1.0's
# extract_request_parts_json) hand a REST binData to the router as its base64 text in bytes.
_BASE64_MAGIC = (b"iVBORw0KGgo", b"/9j/")
# 24 megapixels (a 6000x4000 photo), well under Pillow's own MAX_IMAGE_PIXELS (~89M).
MAX_PIXELS = 24_000_000
IMAGE_PARAMS = ("image_size", "image_resize_shorter", "image_resample", "image_scale", "image_mean", "image_std",
                "channel_order", "layout", "color_mode", "max_image_pixels")


@dataclass(frozen=True)
class ImageSpec:
    size: Optional[tuple]  # (H, W); None until the model tells (ImageSpec.sized)
    resize_shorter: Optional[int]  # None: resize straight to size; else shorter side, then center crop
    resample: str
    scale: float
    mean: np.ndarray  # per channel, in the order the model gets them (after channel_order)
    std: np.ndarray
    channel_order: str  # RGB or BGR
    layout: str  # NCHW or NHWC
    color_mode: str  # RGB or L
    max_pixels: int

    @property
    def channels(self) -> int:
        return 3 if self.color_mode == "RGB" else 1

    def row_shape(self, size: Optional[tuple] = None) -> tuple:
        h, w = size or self.size
        return (self.channels, h, w) if self.layout == "NCHW" else (h, w, self.channels)

    def as_dict(self) -> dict:
        """For /state: mean and std as given, not as float32 prints them."""
        return {"size": list(self.size) if self.size else None, "resize_shorter": self.resize_shorter,
                "resample": self.resample, "scale": self.scale, "mean": [round(float(v), 7) for v in self.mean],
                "std": [round(float(v), 7) for v in self.std], "channel_order": self.channel_order,
                "layout": self.layout, "color_mode": self.color_mode, "max_pixels": self.max_pixels}

    def size_from(self, model_shape: tuple) -> tuple:
        """(H, W) from the model's per-row input shape, checked against channels and layout."""
        h_w = model_shape[1:] if self.layout == "NCHW" else model_shape[:2]
        if len(model_shape) != 3 or self.row_shape(h_w) != tuple(model_shape):
            raise ConfigError(f"layout: the model takes rows of {tuple(model_shape)}, not {self.layout} with "
                              f"{self.channels} channel(s) (color_mode={self.color_mode}); set layout, color_mode "
                              "or image_size to match")
        return tuple(h_w)


def pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ConfigError(f"inputs: image needs Pillow ({exc}): pip install 'seldon-routers[images]'") from None
    return Image


def check_crop(shorter: Optional[int], size: tuple, what: str) -> None:
    """The center crop of `size` needs the image resized to `shorter` to cover it."""
    if shorter is not None and shorter < max(size):
        raise ConfigError(f"image_resize_shorter: {shorter} is smaller than {what} {size[0]}x{size[1]}; "
                          "the center crop needs the resized image to cover it")


def read_spec(size: Optional[tuple] = None, image_resize_shorter=None, image_resample=None, image_scale=None,
              image_mean=None, image_std=None, channel_order=None, layout=None, color_mode=None,
              max_image_pixels=None) -> ImageSpec:
    """The image parameters, each checked (None: its default); `size` is image_size read as a
    shape (config.shape)."""
    pillow()
    if size is not None:
        if len(size) == 1:
            size = size * 2
        elif len(size) != 2:
            raise ConfigError(f"image_size: expected H or H,W (pixels), got {','.join(map(str, size))!r}")
    color_mode = choice(color_mode or "RGB", "color_mode", ("RGB", "L"))
    channel_order = choice(channel_order or "RGB", "channel_order", ("RGB", "BGR"))
    if channel_order == "BGR" and color_mode == "L":
        raise ConfigError("channel_order: BGR needs color_mode=RGB; a grayscale image has one channel")
    shorter = optional(positive_int, image_resize_shorter, "image_resize_shorter")
    if size is not None:
        check_crop(shorter, size, "image_size")
    channels = 3 if color_mode == "RGB" else 1
    mean = _per_channel(image_mean, "image_mean", 0.0, channels)
    std = _per_channel(image_std, "image_std", 1.0, channels, positive=True)
    return ImageSpec(size, shorter, choice(image_resample or "bilinear", "image_resample", RESAMPLE),
                     real(1 / 255 if image_scale is None else image_scale, "image_scale", 0.0, lo_open=True),
                     mean, std, channel_order, choice(layout or "NCHW", "layout", ("NCHW", "NHWC")), color_mode,
                     positive_int(MAX_PIXELS if max_image_pixels is None else max_image_pixels, "max_image_pixels"))


def _per_channel(value, field: str, default: float, channels: int, positive: bool = False) -> np.ndarray:
    values = [default] if value is None else reals(value, field, 0.0 if positive else float("-inf"),
                                                   lo_open=positive)
    if len(values) not in (1, channels):
        raise ConfigError(f"{field}: {len(values)} values for {channels} channel(s); give one or {channels}")
    return np.array(values * (channels // len(values)), dtype=np.float32)


def image_row(features, kind: str, spec: ImageSpec, dtype) -> np.ndarray:
    """The request's image as a batch of one preprocessed row, (1, *spec.row_shape())."""
    if kind not in ("", "binData") or not isinstance(features, (bytes, bytearray, memoryview)):
        raise BadRequest(f"features: expected {EXPECTED}, got {kind or type(features).__name__}")
    data = bytes(features)
    if data.startswith(_BASE64_MAGIC):  # raw PNG/JPEG starts with non-ASCII bytes, so this is base64 text
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("binData: looks like base64 of a PNG or JPEG image, but is not valid base64") from None
    pixels = _decode(data, spec)
    return np.ascontiguousarray(preprocess(pixels, spec)[None], dtype=dtype)


def _decode(data: bytes, spec: ImageSpec):
    """The image, converted to color_mode and resized; a BadRequest when it is not one."""
    Image, fmt = pillow(), "PNG or JPEG"
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:  # reads the header only
            w, h = img.size
            if w * h > spec.max_pixels:
                raise BadRequest(f"binData: a {w}x{h} image is {w * h} pixels, more than max_image_pixels="
                                 f"{spec.max_pixels}")
            if img.mode not in MODES:
                raise BadRequest(f"binData: {img.format} image mode {img.mode} is not supported; send an 8-bit "
                                 "image (L, RGB, RGBA, palette)")
            fmt = img.format
            img.load()  # decodes; truncated or corrupt data fails here
            return resize(img.convert(spec.color_mode), spec)
    except Image.DecompressionBombError as exc:  # past Pillow's own limit, found while reading the header
        raise BadRequest(f"binData: image too large ({exc})") from None
    except Image.UnidentifiedImageError:
        raise BadRequest(f"binData: not a PNG or JPEG image ({_head(data)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # what Pillow's decoders raise on bad data
        raise BadRequest(f"binData: a broken or truncated {fmt} image ({exc})") from None


def _head(data: bytes) -> str:
    return f"{len(data)} bytes, starting {data[:8]!r}" if data else "no bytes"


def resize(img, spec: ImageSpec):
    """Plain resize to image_size; with image_resize_shorter, torchvision's Resize(shorter)
    then CenterCrop(image_size): the shorter side to `shorter`, the longer side
    int(shorter * long / short), then the middle HxW (offsets rounded)."""
    h, w = spec.size
    resample = getattr(pillow().Resampling, spec.resample.upper())
    if spec.resize_shorter is None:
        return img if img.size == (w, h) else img.resize((w, h), resample)
    s, (iw, ih) = spec.resize_shorter, img.size
    new = (s, int(s * ih / iw)) if iw <= ih else (int(s * iw / ih), s)
    if new != img.size:
        img = img.resize(new, resample)
    top, left = int(round((new[1] - h) / 2.0)), int(round((new[0] - w) / 2.0))
    return img.crop((left, top, left + w, top + h))


def preprocess(img, spec: ImageSpec) -> np.ndarray:
    """Pixels (a Pillow image of spec.size, or an (H, W[, C]) uint8 array) to one model row."""
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if spec.channel_order == "BGR":
        x = x[:, :, ::-1]
    x = (x * np.float32(spec.scale) - spec.mean) / spec.std
    return x.transpose(2, 0, 1) if spec.layout == "NCHW" else x
