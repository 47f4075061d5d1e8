"""inputs=image on the router itself: a real ONNX colour model routes PNG and JPEG images;
preprocessing (resize or shorter side + center crop, scale, mean/std, channel order, layout,
grayscale) matches a numpy reference; bad parameters stop start-up naming the parameter;
bad images are a BadRequest naming binData and leave the router as it was; concurrent image
calls share a model call."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import threading

import numpy as np
import pytest

from classifier_cases import need
from image_cases import BLUE, RED, colour_onnx, encode, solid, with_size
from seldon_routers import ClassifierRouter
from seldon_routers.errors import BadRequest, ConfigError
from seldon_routers.request import Request
from seldon_routers.routers.classifier import images
from support import wait_until

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    need("onnxruntime", "onnx")
    return colour_onnx(tmp_path_factory.mktemp("models") / "colour.onnx")


def colour_router(model_path, **kwargs) -> ClassifierRouter:
    router = ClassifierRouter(model_path=model_path, inputs="image", branch_names="reds:blues", **kwargs)
    router.load()
    return router


# --- routing ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_red_and_blue_images_go_to_their_children(model_path, fmt):
    router = colour_router(model_path, labels="red:blue")
    assert router.input_shape == (3, 32, 32) and router.image.size == (32, 32)  # read from the model
    for colour, child in ((RED, 0), (BLUE, 1)):
        for width, height in ((40, 30), (32, 32), (7, 300)):
            d = router.classify(solid(colour, width, height, fmt))
            assert (d.child, d.tags["branch"], d.tags["class"]) == (child, ["reds", "blues"][child],
                                                                   ["red", "blue"][child])
            assert d.tags["probability"] > 0.99


def test_other_modes_are_converted(model_path):
    router = colour_router(model_path)
    Image = need("PIL.Image", "images")
    rgba = np.dstack([np.broadcast_to(np.array(BLUE, np.uint8), (20, 20, 3)), np.full((20, 20), 9, np.uint8)])
    assert router.classify(encode(rgba)).child == 1  # alpha dropped
    palette = Image.new("RGB", (20, 20), RED).convert("P")
    assert router.classify(encode(palette)).child == 0
    grey = router.classify(encode(np.full((20, 20), 128, np.uint8)))  # L to RGB: R == B, an even call
    assert grey.tags["probability"] == pytest.approx(0.5)


def test_as_seldons_wrapper_calls_it_with_bare_bytes(model_path):
    router = colour_router(model_path)
    assert router.route(solid(BLUE), []) == 1 and type(router.route(solid(RED), [])) is int
    for data in (solid(BLUE), solid(BLUE, fmt="JPEG")):  # seldon-core 1.0's REST: the base64 text, as bytes
        assert router.route(base64.b64encode(data), []) == 1
    with pytest.raises(BadRequest, match="binData: looks like base64 of a PNG or JPEG image, but is not valid"):
        router.route(base64.b64encode(solid(BLUE)) + b"*", [])


# --- preprocessing against a numpy reference ----------------------------------------------

def reference(pixels: np.ndarray, scale=1 / 255, mean=0.0, std=1.0, bgr=False, layout="NCHW") -> np.ndarray:
    """The straightforward float64 version: channel order, scale, normalize, layout."""
    x = pixels.astype(np.float64)
    x = x[:, :, None] if x.ndim == 2 else x
    x = x[:, :, ::-1] if bgr else x
    x = (x * scale - np.asarray(mean)) / np.asarray(std)
    return x.transpose(2, 0, 1) if layout == "NCHW" else x


def box_halve(x: np.ndarray) -> np.ndarray:
    """Pillow's box filter halving an 8-bit image: a horizontal then a vertical pass, each the
    mean of two pixels rounded half up to 8 bits."""
    x = x.astype(np.float64)
    x = np.floor((x[:, 0::2] + x[:, 1::2]) / 2 + 0.5)
    return np.floor((x[0::2] + x[1::2]) / 2 + 0.5)


def row(router, data: bytes) -> np.ndarray:
    return images.image_row(data, "binData", router.image, router._loaded.dtype)[0]


IMAGENET = {"image_mean": "0.485,0.456,0.406", "image_std": "0.229,0.224,0.225"}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bgr", [False, True])
def test_resize_scale_normalize_order_and_layout(tmp_path, layout, bgr):
    path = colour_onnx(tmp_path / "m.onnx", (12, 16), layout)
    pixels = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)  # twice the model's 12x16
    kwargs = {"image_resample": "box", "channel_order": "BGR" if bgr else None, "layout": layout, **IMAGENET}
    router = colour_router(path, **kwargs)
    got = row(router, encode(pixels))
    want = reference(box_halve(pixels), mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], bgr=bgr,
                     layout=layout)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_shorter_side_then_center_crop_as_torchvision(tmp_path):
    path = colour_onnx(tmp_path / "m.onnx", size=None)
    pixels = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)  # H 30, W 40
    router = colour_router(path, image_size="12", image_resize_shorter=15, image_resample="nearest",
                           image_scale="1/128", image_mean=1)
    # shorter side 30 -> 15: 20x15 (W x H) by nearest, which takes pixel 2i+1; then the middle
    # 12x12: top round(1.5) = 2 (not 1), left 4
    want = reference(pixels[1::2, 1::2][2:14, 4:16], scale=1 / 128, mean=1.0)
    np.testing.assert_allclose(row(router, encode(pixels)), want, rtol=0, atol=1e-6)
    tall = RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8)  # the other way round
    np.testing.assert_allclose(row(router, encode(tall)), reference(tall[1::2, 1::2][4:16, 2:14], 1 / 128, 1.0),
                               rtol=0, atol=1e-6)


def test_the_imagenet_eval_transform_by_default_filter(tmp_path):
    """image_size=224 image_resize_shorter=256 is torchvision's Resize(256) + CenterCrop(224)
    on a PIL image: Pillow's BILINEAR resize of the shorter side to 256, then the middle."""
    Image = need("PIL.Image", "images")
    router = colour_router(colour_onnx(tmp_path / "m.onnx", (224, 224)), image_resize_shorter=256, **IMAGENET)
    pixels = RNG.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(pixels).resize((384, 256), Image.Resampling.BILINEAR))
    want = reference(resized[16:240, 80:304], mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    np.testing.assert_allclose(row(router, encode(pixels)), want, rtol=0, atol=1e-5)


def test_grayscale_models_get_one_channel(tmp_path):
    onnx = need("onnx", "onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["scores"])], "grey",  # 1x1x2: 2 "classes"
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 1, 2])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "grey.onnx"))
    router = ClassifierRouter(model_path=str(tmp_path / "grey.onnx"), inputs="image", color_mode="L",
                              output="probabilities")
    router.load()
    assert router.input_shape == (1, 1, 2)
    pixels = np.array([[51, 204]], np.uint8)  # L: the model's "probabilities" are the pixels / 255
    np.testing.assert_allclose(row(router, encode(pixels)), reference(pixels), atol=1e-6)
    d = router.classify(encode(pixels))
    assert d.child == 1 and d.tags["probability"] == pytest.approx(0.8)


def test_the_model_gets_the_preprocessed_rows(model_path):
    seen = []

    def mean_colour(batch):  # a real callable model: the router's own path into it
        seen.append(batch.copy())
        m = batch.mean(axis=(2, 3))
        return np.stack([m[:, 0] - m[:, 2], m[:, 2] - m[:, 0]], axis=1) * 10

    router = ClassifierRouter(model=mean_colour, inputs="image", image_size="8,6", image_resample="nearest",
                              warmup=False)
    router.load()
    pixels = RNG.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    router.classify(encode(pixels))
    np.testing.assert_allclose(seen[0][0], reference(pixels[1::2, 1::2]), atol=1e-6)


# --- configuration ------------------------------------------------------------------------

def test_pillow_is_imported_only_for_image_inputs():
    code = ("import sys, numpy as np; from seldon_routers import ClassifierRouter; "
            "r = ClassifierRouter(model=lambda b: b, input_shape='2'); r.load(); print('PIL' in sys.modules); "
            "ClassifierRouter(model=lambda b: b, inputs='image', image_size=4); print('PIL' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": "0"}, "image_size: expected positive integers"),
    ({"image_size": "2,3,4"}, r"image_size: expected H or H,W \(pixels\), got '2,3,4'"),
    ({"image_scale": "abc"}, "image_scale: expected a number or a ratio like 1/255, got 'abc'"),
    ({"image_scale": "1/0"}, "image_scale: expected a number or a ratio"),
    ({"image_scale": 0}, r"image_scale: must be a number > 0, got 0"),
    ({"image_mean": "0.5,0.5"}, r"image_mean: 2 values for 3 channel\(s\); give one or 3"),
    ({"image_std": "0.2,0,0.2"}, r"image_std: must be a number > 0, got 0"),
    ({"image_mean": "[1, \"x\"]"}, r"image_mean: expected a number or a ratio like 1/255, got 'x'"),
    ({"channel_order": "RGBA"}, "channel_order: expected RGB or BGR, got 'RGBA'"),
    ({"layout": "CHW"}, "layout: expected NCHW or NHWC, got 'CHW'"),
    ({"color_mode": "CMYK"}, "color_mode: expected RGB or L, got 'CMYK'"),
    ({"color_mode": "L", "channel_order": "BGR"}, "channel_order: BGR needs color_mode=RGB"),
    ({"image_resample": "cubic"}, "image_resample: expected nearest, box, bilinear, hamming, bicubic or lanczos"),
    ({"image_size": "224", "image_resize_shorter": 200}, "image_resize_shorter: 200 is smaller than image_size"),
    ({"max_image_pixels": 0}, "max_image_pixels: must be an integer >= 1, got 0"),
    ({"input_shape": "3,32,32"}, "input_shape: only for inputs=tensor; an image's row shape is image_size"),
])
def test_bad_image_parameters_stop_start_up(model_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassifierRouter(model_path=model_path, inputs="image", **kwargs)


def test_image_parameters_need_inputs_image(model_path):
    with pytest.raises(ConfigError, match=r"image_size: only for inputs=image \(inputs is tensor\)"):
        ClassifierRouter(model_path=model_path, image_size="32")


def test_string_parameters_as_seldon_gives_them(model_path):
    from seldon_routers import params

    router = params.build(ClassifierRouter, params.from_pairs([
        f"model_path={model_path}", "inputs=image", "image_scale=1/255", "image_mean=[0.485, 0.456, 0.406]",
        "image_std=0.229:0.224:0.225", "image_resize_shorter=36", "layout=NCHW"]))
    spec = router.image
    assert spec.scale == 1 / 255 and spec.resize_shorter == 36 and spec.mean.tolist() == pytest.approx(
        [0.485, 0.456, 0.406]) and spec.std.tolist() == pytest.approx([0.229, 0.224, 0.225])


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": "28"}, r"image_size: 28x28 given, but the model takes \(3, 32, 32\)"),
    ({"layout": "NHWC"}, r"layout: the model takes rows of \(3, 32, 32\), not NHWC with 3 channel"),
    ({"color_mode": "L"}, r"layout: the model takes rows of \(3, 32, 32\), not NCHW with 1 channel"),
    ({"image_resize_shorter": 20}, "image_resize_shorter: 20 is smaller than the model's image size 32x32"),
])
def test_image_settings_must_fit_the_model(model_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassifierRouter(model_path=model_path, inputs="image", **kwargs).load()


def test_a_model_of_any_size_needs_image_size(tmp_path):
    path = colour_onnx(tmp_path / "any.onnx", size=None)
    with pytest.raises(ConfigError, match="image_size: the onnx model does not say what size of image it takes"):
        ClassifierRouter(model_path=path, inputs="image").load()
    assert colour_router(path, image_size="5,9").input_shape == (3, 5, 9)
    assert colour_router(path, image_size=7).input_shape == (3, 7, 7)  # an INT parameter: square


# --- bad images ---------------------------------------------------------------------------

def bad_images():
    png, jpeg = solid(RED), encode(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
    return [
        (b"hello", r"binData: not a PNG or JPEG image \(5 bytes, starting b'hello'\)"),
        (b"", r"binData: not a PNG or JPEG image \(no bytes\)"),
        (encode(np.zeros((4, 4, 3), np.uint8), "GIF"), "binData: not a PNG or JPEG image .*GIF8"),
        (png[:len(png) // 2], r"binData: a broken or truncated PNG image \(image file is truncated"),
        (jpeg[:len(jpeg) * 3 // 4], r"binData: a broken or truncated JPEG image \(image file is truncated"),
        (with_size(png, 100_000, 100_000), r"binData: image too large \(Image size \(10000000000 pixels\) exceeds"),
        (with_size(png, 6000, 5000), "binData: a 6000x5000 image is 30000000 pixels, more than max_image_pixels"),
        (encode(np.full((4, 4), 1000, np.uint16)), "binData: PNG image mode I;16 is not supported; send an 8-bit"),
    ]


@pytest.mark.parametrize("data, message", bad_images(), ids=["text", "empty", "gif", "truncated-png",
                                                              "truncated-jpeg", "bomb", "too-many-pixels", "16-bit"])
def test_a_bad_image_is_a_bad_request_and_changes_nothing(model_path, data, message):
    router = colour_router(model_path)
    before = router.state()["batching"]
    with pytest.raises(BadRequest, match=message):
        router.classify(data)
    assert router.state()["batching"] == before  # refused before anything was queued
    assert router.classify(solid(BLUE)).child == 1


@pytest.mark.parametrize("features, kind, got", [(np.ones((1, 3, 32, 32)), "ndarray", "ndarray"),
                                                 ("a red car", "strData", "strData"), ("abc", "", "str")])
def test_other_data_is_a_bad_request(model_path, features, kind, got):
    router = colour_router(model_path)
    with pytest.raises(BadRequest, match=f"features: expected binData: a PNG or JPEG image, got {got}"):
        router._submit(features, kind)


def test_a_smaller_max_image_pixels(model_path):
    router = colour_router(model_path, max_image_pixels=40 * 30 - 1)
    with pytest.raises(BadRequest, match="a 40x30 image is 1200 pixels, more than max_image_pixels=1199"):
        router.classify(solid(RED, 40, 30))
    assert router.classify(solid(RED, 39, 30)).child == 0


# --- batching -----------------------------------------------------------------------------

def test_concurrent_image_calls_share_a_model_call(model_path):
    """While the model runs one call, eight more are decoded (off the event loop) and queued;
    the next model call takes all eight."""
    started, release, sizes = threading.Event(), threading.Event(), []

    def gated(batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            started.set()
            release.wait(30)
        m = batch.mean(axis=(2, 3))
        return np.stack([m[:, 0] - m[:, 2], m[:, 2] - m[:, 0]], axis=1)

    router = ClassifierRouter(model=gated, inputs="image", image_size="16", max_batch_size=16, warmup=False,
                              n_branches=2)
    router.load()
    colours = [RED if i % 2 else BLUE for i in range(8)]

    async def calls():
        first = asyncio.ensure_future(router.decide(Request(solid(RED), kind="binData")))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        rest = [asyncio.ensure_future(router.decide(Request(solid(c), kind="binData"))) for c in colours]
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_until(lambda: router._batcher._queue.qsize() == 8, what="eight queued calls"))
        release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(calls())
    assert sizes == [1, 8] and first.child == 0 and [d.child for d in rest] == [0 if c == RED else 1 for c in colours]
    assert router.state()["batching"]["batches"] == 2 and router.state()["batching"]["max_rows"] == 8
