"""What the LLM routers read of a request: its OpenAI body, and of that body the prompt
text, the model, the user and the expected token counts. Defined once here, so every
strategy (and the rate limits) keys on the same text.

An OpenAI body arrives as a SeldonMessage's `jsonData` (an object), as `strData` (its JSON
text), or bare: a JSON object posted to /route with none of SeldonMessage's fields is read
as the `jsonData` of one (codec/from_json.py), so `curl -d '{"model":..., "messages":...}'`
routes as it would at an OpenAI endpoint.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ...errors import BadRequest, quote
from ...request import Request

# Characters per token where no tokenizer is at hand: OpenAI's rule of thumb for English.
CHARS_PER_TOKEN = 4
# The most tokens one request may ask for (and be charged for): beyond any model's context,
# and within Redis' 64-bit counters however many requests a window holds.
MAX_TOKENS = 2 ** 31 - 1
MAX_N = 128  # OpenAI's bound on `n`

# Output tokens assumed for a request that sets no max_tokens (rate-limit estimate only:
# reconciled with the response's usage when it arrives).
DEFAULT_MAX_TOKENS = 256


def whole(value: Any) -> Optional[int]:
    """An integer count as JSON gives it, or as protobuf's Value does (a gRPC jsonData has
    every number as a float: 10.0); None for anything else (bools, fractions, text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def openai_json(message: Optional[Request], field: str, what: str):
    """A message's OpenAI JSON: its jsonData, or its strData parsed (invalid JSON there is a
    BadRequest naming `field`.strData); None for a message with neither."""
    if message is None or message.kind not in ("jsonData", "strData"):
        return None
    if message.kind == "jsonData":
        return message.features
    try:
        return json.loads(message.features)
    except ValueError:
        raise BadRequest(f"{field}strData: not an OpenAI {what} (invalid JSON)") from None


def body_of(request: Request) -> dict:
    """The request's OpenAI body; a request with none is a BadRequest naming the field."""
    payload = openai_json(request, "", "request body")
    if not isinstance(payload, dict):
        got = request.kind or "no data"
        raise BadRequest(f"jsonData: an LLM router needs an OpenAI request body (chat/completions, "
                         f"completions or embeddings) as jsonData, strData or a bare JSON body; got {got}")
    return payload


def _content_text(content: Any, field: str) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts in order; an
    image or audio part counts by its URL or data, which is what a prefix cache sees)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequest(f"{field}: expected a string or a list of content parts, got {type(content).__name__}")
    out = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, dict):
            raise BadRequest(f"{field}[{i}]: expected a content part object, got {quote(part)}")
        kind = part.get("type", "text")
        if not isinstance(kind, str):
            raise BadRequest(f"{field}[{i}].type: expected a string, got {quote(kind)}")
        value = part.get(kind) if kind != "text" else part.get("text")
        if isinstance(value, dict):  # {"image_url": {"url": ...}}, {"input_audio": {"data": ...}}
            value = value.get("url") or value.get("data")
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{field}[{i}].{kind}: expected a string, got {quote(value)}")
        out.append(value or "")
    return "".join(out)


def prompt_text(body: dict) -> str:
    """The text a prompt-keyed strategy reads: every message in order (system ones too),
    each as `role: content` on its own line, or the `prompt` of a completion (a string, or
    the strings of a list joined by newlines), or the `input` of an embedding."""
    messages = body.get("messages")
    if messages is not None:
        if not isinstance(messages, list):
            raise BadRequest(f"messages: expected a list, got {type(messages).__name__}")
        parts = []  # joined once: a long system prompt is copied once, not per line
        for i, message in enumerate(messages):
            if type(message) is not dict:
                raise BadRequest(f"messages[{i}]: expected a message object, got {quote(message)}")
            role = message.get("role", "")
            content = message.get("content")
            if type(role) is not str:
                raise BadRequest(f"messages[{i}].role: expected a string, got {quote(role)}")
            if type(content) is not str:
                content = _content_text(content, f"messages[{i}].content")
            parts += (role, ": ", content, "\n")
            if message.get("tool_calls") is not None:  # the assistant's calls are part of the context
                parts += (json.dumps(message["tool_calls"], sort_keys=True, separators=(",", ":")), "\n")
        return "".join(parts[:-1])
    for field in ("prompt", "input"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n".join(value)
        if isinstance(value, list) and all(whole(v) is not None for v in value):
            return _token_ids(value)
        if isinstance(value, list) and all(isinstance(v, list) and all(whole(t) is not None for t in v)
                                           for v in value):
            return "\n".join(map(_token_ids, value))  # a batch of token-id prompts
        raise BadRequest(f"{field}: expected a string, a list of strings or of token ids, got {quote(value)}")
    raise BadRequest("body: no messages, prompt or input: not an OpenAI chat/completions, completions or "
                     "embeddings request")


def _token_ids(ids: list) -> str:
    """Token ids keyed as text, one token per number."""
    return " ".join(str(whole(v)) for v in ids)


def model_of(body: dict) -> Optional[str]:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise BadRequest(f"model: expected a model name, got {quote(model)}")
    return model


def max_tokens_of(body: dict) -> int:
    """The output tokens the request may generate (max_completion_tokens, max_tokens); an
    embedding generates none."""
    if "messages" not in body and "prompt" not in body:
        return 0
    raw_n = body.get("n")
    n = 1 if raw_n is None else whole(raw_n)
    if n is None or not 1 <= n <= MAX_N:
        raise BadRequest(f"n: expected an integer within [1, {MAX_N}], got {quote(raw_n)}")
    for field in ("max_completion_tokens", "max_tokens"):
        raw = body.get(field)
        if raw is not None:
            value = whole(raw)
            if value is None or not 0 <= value <= MAX_TOKENS:
                raise BadRequest(f"{field}: expected an integer within [0, {MAX_TOKENS}], got {quote(raw)}")
            return value * n
    return DEFAULT_MAX_TOKENS * n


def estimate_tokens(text: str) -> int:
    """Prompt tokens estimated from the text (no tokenizer in the core)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def usage_of(value: Any) -> Optional[dict]:
    """The `usage` of an OpenAI response (a feedback's response jsonData, or a completion
    report), as {prompt_tokens, completion_tokens, total_tokens}; None when it has none.
    A malformed one is a BadRequest naming the field."""
    if not isinstance(value, dict) or value.get("usage") is None:
        return None
    usage = value["usage"]
    if not isinstance(usage, dict):
        raise BadRequest(f"usage: expected an object, got {quote(usage)}")
    out = {}
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        raw = usage.get(field)
        if raw is None:
            continue
        v = whole(raw)
        if v is None or v < 0:
            raise BadRequest(f"usage.{field}: expected an integer >= 0, got {quote(raw)}")
        out[field] = v
    if "total_tokens" not in out:
        if "prompt_tokens" not in out and "completion_tokens" not in out:
            raise BadRequest("usage: needs total_tokens (or prompt_tokens and completion_tokens)")
        out["total_tokens"] = out.get("prompt_tokens", 0) + out.get("completion_tokens", 0)
    return out
