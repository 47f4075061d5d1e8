"""The classifier with inputs=text and a Python callable model (no sentence-transformers):
which texts a request carries (strData, OpenAI-style jsonData bodies, ndarrays of strings),
bad bodies as BadRequest naming the field, configuration, and 64 concurrent callers with
distinct texts each getting their own answer through the batcher."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from support import wait_until
from seldon_routers import ClassifierRouter, Request, params
from seldon_routers.errors import BadRequest, ConfigError
from seldon_routers.routers.classifier.inputs import text_rows

LABELS = ["code", "math", "chat"]


class KeywordModel:
    """Scores class k by how often its label appears in the text; records what it was given."""

    labels = LABELS

    def __init__(self, gate: threading.Event | None = None):
        self.gate, self.calls, self.entered = gate, [], threading.Event()

    def __call__(self, texts):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
        self.calls.append(len(texts))
        return np.array([[2.0 * t.lower().count(label) for label in LABELS] for t in texts])


def text_router(**kwargs) -> ClassifierRouter:
    kwargs.setdefault("model", KeywordModel())
    router = ClassifierRouter(inputs="text", branch_names="code-llm:math-llm:chat-llm", **kwargs)
    router.load()
    return router


CHAT = [{"role": "system", "content": "You are helpful; code and math welcome."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "the last one"}]


@pytest.mark.parametrize("kind, features, texts", [
    ("strData", "fix my code", ["fix my code"]),
    ("jsonData", {"model": "m", "messages": CHAT}, ["the last one"]),
    ("jsonData", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what does"}, {"type": "image_url", "image_url": {"url": "data:,"}},
        {"type": "text", "text": "this mean"}]}]}, ["what does\nthis mean"]),
    ("jsonData", {"prompt": "complete this"}, ["complete this"]),
    ("jsonData", {"prompt": ["one", "two", "three"]}, ["one", "two", "three"]),
    ("jsonData", {"input": "embed me"}, ["embed me"]),
    ("jsonData", {"input": ["a", "b"]}, ["a", "b"]),
    ("jsonData", {"input": [{"role": "user", "content": [{"type": "input_text", "text": "responses api"}]},
                            {"role": "assistant", "content": "ok"}]}, ["responses api"]),
    ("ndarray", np.array(["x", "y"], dtype=object), ["x", "y"]),
    ("ndarray", np.array([["x"], ["y"]], dtype=object), ["x", "y"]),
    ("", "bare str (Seldon's wrapper)", ["bare str (Seldon's wrapper)"]),
    ("", {"prompt": "bare dict"}, ["bare dict"]),
    ("", ["a list", "from Python"], ["a list", "from Python"]),
])
def test_the_texts_a_request_carries(kind, features, texts):
    rows = text_rows(features, kind)
    assert rows.dtype == object and rows.ndim == 1 and rows.tolist() == texts


@pytest.mark.parametrize("kind, features, message", [
    ("strData", "", "strData: empty text"),
    ("strData", "  \n", "strData: empty text"),
    ("jsonData", {"model": "m"},
     "jsonData: expected an OpenAI-style body with messages, prompt or input, got keys: model"),
    ("jsonData", [1, 2], "jsonData: expected an OpenAI-style body with messages, prompt or input, got a JSON list"),
    ("jsonData", {"messages": "hi"}, "jsonData.messages: expected a list of messages"),
    ("jsonData", {"messages": [{"role": "system", "content": "x"}]}, "jsonData.messages: no message with role user"),
    ("jsonData", {"messages": [{"role": "user", "content": ""}]}, r"jsonData.messages\[0\].content: empty text"),
    ("jsonData", {"messages": [{"role": "user"}]}, r"jsonData.messages\[0\].content: expected a string or a list"),
    ("jsonData", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     r"jsonData.messages\[0\].content: empty text"),
    ("jsonData", {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
     r"jsonData.messages\[0\].content\[0\].text: expected a string"),
    ("jsonData", {"prompt": [[1, 2, 3]]}, "jsonData.prompt: expected a string or a non-empty list of strings"),
    ("jsonData", {"prompt": []}, "jsonData.prompt: .* got an empty list"),
    ("jsonData", {"prompt": ["ok", " "]}, r"jsonData.prompt\[1\]: empty text"),
    ("jsonData", {"input": 7}, "jsonData.input: expected a string or a non-empty list of strings"),
    ("ndarray", np.array([[1.0, 2.0]]), r"ndarray: expected one column of strings .* got shape \(1, 2\)"),
    ("ndarray", np.array([[1.0], [2.0]]), "ndarray: expected text: strData, .*; row 0 is float"),
    ("ndarray", np.zeros((0,), dtype=object), r"got shape \(0,\)"),
    ("binData", b"bytes", "features: expected text: strData, an OpenAI-style jsonData body .* got binData"),
    ("", None, "features: expected text: .* got NoneType"),
])
def test_a_request_without_usable_text_is_a_bad_request(kind, features, message):
    with pytest.raises(BadRequest, match=message):
        text_rows(features, kind)


def test_texts_route_by_the_class_the_model_names():
    router = text_router()
    assert router.decide(Request("please review this code", kind="strData")).tags["branch"] == "code-llm"
    d = router.decide(Request({"messages": [{"role": "user", "content": "math, math"}]}, kind="jsonData"))
    assert (d.child, d.tags["class"], d.tags["branch"], d.tags["fallback"]) == (1, "math", "math-llm", False)
    assert router.route("let us chat", []) == 2  # Seldon's wrapper: bare strData
    assert router.state()["inputs"] == "text" and router.state()["input_shape"] is None


def test_several_texts_go_by_the_mean_probability():
    router, texts = text_router(), ["math math math math", "chat", "chat"]
    d = router.classify({"prompt": texts})  # one row per prompt, one route for the request
    scores = KeywordModel()(texts)
    mean = (np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)).mean(axis=0)
    assert mean.argmax() == 2 and mean[1] > 1 / 3  # chat, with math in the mean too
    assert d.tags["class"] == "chat" and d.tags["probability"] == pytest.approx(mean.max())


def test_the_warm_up_is_a_short_text_and_reports_the_number_of_classes():
    model = KeywordModel()
    ClassifierRouter(model=model, inputs="text", max_batch_size=4).load()
    assert model.calls == [1, 4]
    with pytest.raises(ConfigError, match="class_to_child: classes chat have no child"):
        ClassifierRouter(model=KeywordModel(), inputs="text", class_to_child={"code": 0, "math": 1}).load()


@pytest.mark.parametrize("features, kind", [
    ({"prompt": ["code"] * 4}, "jsonData"), ({"input": ["math"] * 4}, "jsonData"),
    (np.array(["chat"] * 4, dtype=object), "ndarray")])
def test_more_texts_than_max_request_rows_is_a_bad_request_before_the_model_runs(features, kind):
    model = KeywordModel()
    router = text_router(model=model, max_request_rows=3)
    calls = len(model.calls)
    with pytest.raises(BadRequest, match="features: 4 rows in one request, more than max_request_rows=3"):
        router.decide(Request(features, kind=kind))
    assert len(model.calls) == calls  # refused before anything was queued
    assert router.classify({"prompt": ["code"] * 3}).tags["class"] == "code"


def test_numbers_are_not_text():
    with pytest.raises(BadRequest, match="row 0 is float"):
        text_router().decide(Request(np.array([[1.0]]), kind="ndarray"))


@pytest.mark.parametrize("kwargs, message", [
    ({"inputs": "audio"}, "inputs: expected tensor, text or image, got 'audio'"),
    ({"inputs": "text", "input_shape": "4"}, "input_shape: only for inputs=tensor"),
])
def test_invalid_text_configuration_names_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassifierRouter(model=KeywordModel(), **kwargs)


def test_a_tensor_model_file_cannot_take_text(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not read")
    with pytest.raises(ConfigError, match="inputs: text needs a model that takes strings .* a onnx model"):
        params.build(ClassifierRouter, params.from_pairs([f"model_path={path}", "inputs=text"]))


def test_64_threads_with_distinct_texts_each_get_their_own_answer():
    texts = [" ".join([LABELS[i % 3]] * (1 + i % 7) + [LABELS[(i + 1) % 3]] * (i % 4) + [f"#{i}"])
             for i in range(64)]
    bodies = [t if i % 2 else {"messages": [{"role": "user", "content": t}]} for i, t in enumerate(texts)]
    reference = text_router(max_batch_size=1)
    expected = [reference.classify(t) for t in texts]  # unbatched, one at a time
    gate = threading.Event()
    gate.set()  # open for the warm-up
    model = KeywordModel(gate)
    router = text_router(model=model, max_batch_size=16)
    for event in (gate, model.entered):
        event.clear()
    model.calls.clear()
    results: list = [None] * len(texts)
    futures = [None] * len(texts)

    def call(i):
        futures[i] = router._submit(bodies[i])
        results[i] = futures[i].result(30)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    model.entered.wait(30)  # the worker holds one batch; the other callers queue behind it
    wait_until(lambda: all(f is not None for f in futures), interval=0.001, what="every caller submitted")
    gate.set()
    for t in threads:
        t.join(30)
    for i, (got, want) in enumerate(zip(results, expected)):
        assert got == want or (got.child == want.child and got.tags["class"] == want.tags["class"]
                               and got.tags["probability"] == pytest.approx(want.tags["probability"])), i
    assert sum(model.calls) == 64 and max(model.calls) > 1  # batches really formed
    assert all(n <= 16 for n in model.calls)
