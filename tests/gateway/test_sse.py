"""The SSE splitter: events passed on whole and in order, the usage chunk read (and left out
when the client did not ask for it), whatever the pod's chunk boundaries."""

import json

from seldon_routers.gateway import sse


def event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


TOKENS = [event({"choices": [{"delta": {"content": f"t{i}"}}], "usage": None}) for i in range(3)]
USAGE = event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
STREAM = b"".join(TOKENS) + USAGE + b"data: [DONE]\n\n"


def split(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_any_chunking_gives_the_same_events_and_usage():
    for size in (1, 7, 64, len(STREAM)):
        events = sse.Events(strip_usage=False)
        out = b"".join(events.feed(part) for part in split(STREAM, size)) + events.rest()
        assert out == STREAM
        assert events.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_the_usage_chunk_is_left_out_when_the_client_did_not_ask():
    events = sse.Events(strip_usage=True)
    out = b"".join(events.feed(part) for part in split(STREAM, 5)) + events.rest()
    assert out == b"".join(TOKENS) + b"data: [DONE]\n\n"
    assert events.usage["total_tokens"] == 8


def test_a_partial_event_waits_for_its_end():
    events = sse.Events(strip_usage=False)
    assert events.feed(TOKENS[0][:10]) == b""
    assert events.feed(TOKENS[0][10:]) == TOKENS[0]


def test_with_usage_adds_include_usage_keeping_other_options():
    assert sse.with_usage({"stream": True}) == {"stream": True, "stream_options": {"include_usage": True}}
    assert sse.with_usage({"stream_options": {"x": 1}})["stream_options"] == {"x": 1, "include_usage": True}
    assert sse.with_usage({"stream_options": {"include_usage": True}}) is None
