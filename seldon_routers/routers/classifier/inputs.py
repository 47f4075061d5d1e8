"""What the classifier reads from a request: a batch of tensor rows of the model's input
shape, or (inputs=text) a batch of texts. Either way one request gives N >= 1 rows, and a
malformed request is a BadRequest naming the field and what was expected, raised before
anything is queued for the model."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...errors import BadRequest

_NUMERIC = "biuf"  # numpy dtype kinds the classifier takes: bool, int, uint, float
_TENSOR_KINDS = ("ndarray", "tensor", "tftensor")
TEXT_EXPECTED = "text: strData, an OpenAI-style jsonData body (messages, prompt or input) or an ndarray of strings"
BODY_EXPECTED = "an OpenAI-style body with messages, prompt or input"
_TEXT_PARTS = ("text", "input_text")  # content part types that carry text (chat completions, responses)


def check_count(rows: int, max_rows: Optional[int]) -> None:
    """One request's rows within max_request_rows: a bigger one would hold the model (and
    every other caller) for as long as it takes, and its memory."""
    if max_rows is not None and rows > max_rows:
        raise BadRequest(f"features: {rows} rows in one request, more than max_request_rows={max_rows}; "
                         "split them over several requests")


def tensor_rows(features, kind: str, shape: tuple, dtype, max_rows: Optional[int] = None) -> np.ndarray:
    """The request's features as a contiguous batch of rows of `shape` and `dtype`; flat rows
    of as many values are reshaped. More than `max_rows` rows is a BadRequest."""
    flat = int(np.prod(shape))
    expected = f"(N, {', '.join(map(str, shape))})" + (f" (or (N, {flat}))" if len(shape) > 1 else "")
    if features is None or isinstance(features, (str, bytes, dict)) or not hasattr(features, "__len__"):
        got = kind or type(features).__name__
        raise BadRequest(f"features: expected numeric tensor data of shape {expected}, got {got}")
    try:
        arr = np.asarray(features)
    except (ValueError, TypeError, RecursionError):  # a ragged jsonData list, or one nested past numpy's 64 dims
        raise BadRequest(f"features: expected numbers of shape {expected}, got a {kind or 'list'} that is not a "
                         "rectangular array") from None
    if arr.dtype.kind not in _NUMERIC:
        raise BadRequest(f"features: expected numbers of shape {expected}, got dtype {arr.dtype}")
    if arr.shape[1:] != shape:
        if arr.ndim == 2 and arr.shape[1] == flat:
            arr = arr.reshape((len(arr), *shape))
        else:
            raise BadRequest(f"features: expected shape {expected}, got {arr.shape}")
    if len(arr) == 0:
        raise BadRequest(f"features: expected shape {expected} with N >= 1, got {arr.shape}")
    check_count(len(arr), max_rows)
    with np.errstate(over="ignore"):  # a value too large for float32 becomes inf: refused below
        rows = np.ascontiguousarray(arr, dtype=dtype)
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():  # also what float32 overflowed
        bad = int(np.flatnonzero(~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1))[0])
        raise BadRequest(f"features: NaN or infinity at row {bad}; the classifier takes finite numbers")
    return rows


def text_rows(features, kind: str = "", max_rows: Optional[int] = None) -> np.ndarray:
    """The request's texts as a 1-D object array of str, one row per text.

    strData: one row. jsonData: an OpenAI-style body: chat completions `messages` (the last
    user message; list content joins its text parts with newlines), completions `prompt`
    (a string, or a list of strings: one row each), embeddings/responses `input` (a string,
    a list of strings, or responses' list of messages). An ndarray of strings (one column):
    its rows. Without a kind (Seldon's wrapper passes bare features) the type tells. More
    than `max_rows` texts is a BadRequest."""
    if kind == "strData" or (not kind and isinstance(features, str)):
        texts = [_text(features, "strData")]
    elif kind == "jsonData" or (not kind and isinstance(features, dict)):
        texts = openai_texts(features)
    elif kind in _TENSOR_KINDS or (not kind and isinstance(features, (list, tuple, np.ndarray))):
        texts = _array_texts(features, kind or "features")
    else:
        raise BadRequest(f"features: expected {TEXT_EXPECTED}, got {kind or type(features).__name__}")
    check_count(len(texts), max_rows)
    rows = np.empty(len(texts), dtype=object)
    rows[:] = texts
    return rows


def openai_texts(body) -> list:
    """The texts an OpenAI-style request body asks about (see text_rows)."""
    if not isinstance(body, dict):
        raise BadRequest(f"jsonData: expected {BODY_EXPECTED}, got a JSON {type(body).__name__}")
    if "messages" in body:
        return [_last_user(body["messages"], "jsonData.messages")]
    if "prompt" in body:
        return _strings(body["prompt"], "jsonData.prompt")
    if "input" in body:
        value = body["input"]
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            return [_last_user(value, "jsonData.input")]  # the responses API's list of messages
        return _strings(value, "jsonData.input")
    keys = ", ".join(sorted(map(str, body))) or "none"
    raise BadRequest(f"jsonData: expected {BODY_EXPECTED}, got keys: {keys}")


def _last_user(messages, field: str) -> str:
    if not isinstance(messages, list):
        raise BadRequest(f"{field}: expected a list of messages, got {type(messages).__name__}")
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "user":
            return _content(message.get("content"), f"{field}[{i}].content")
    raise BadRequest(f"{field}: no message with role user")


def _content(content, field: str) -> str:
    """A message's content: a string, or a list of parts whose text parts are joined."""
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
                if not isinstance(part.get("text"), str):
                    raise BadRequest(f"{field}[{j}].text: expected a string")
                texts.append(part["text"])
            elif not isinstance(part, dict):
                raise BadRequest(f"{field}[{j}]: expected a content part object, got {type(part).__name__}")
        content = "\n".join(texts)
    elif not isinstance(content, str):
        raise BadRequest(f"{field}: expected a string or a list of content parts, got {type(content).__name__}")
    return _text(content, field)


def _strings(value, field: str) -> list:
    if isinstance(value, str):
        return [_text(value, field)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [_text(v, f"{field}[{i}]") for i, v in enumerate(value)]
    got = "an empty list" if value == [] else type(value).__name__
    raise BadRequest(f"{field}: expected a string or a non-empty list of strings (token ids are not text), got {got}")


def _array_texts(features, field: str) -> list:
    try:
        arr = np.asarray(features, dtype=object)
    except ValueError as exc:  # ragged nesting
        raise BadRequest(f"{field}: expected one column of strings: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) == 0:
        raise BadRequest(f"{field}: expected one column of strings (N or (N, 1), N >= 1), got shape {arr.shape}")
    for i, value in enumerate(arr):
        if not isinstance(value, str):
            raise BadRequest(f"{field}: expected {TEXT_EXPECTED}; row {i} is {type(value).__name__}")
    return [_text(v, f"{field}[{i}]") for i, v in enumerate(arr)]


def _text(value: Optional[str], field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field}: empty text" if isinstance(value, str) else
                         f"{field}: expected a string, got {type(value).__name__}")
    return value
