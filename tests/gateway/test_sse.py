"""The SSE splitter: events passed on whole and in order, the usage chunk read (and left out
when the client did not ask for it), whatever the pod's chunk boundaries."""

import json
import random

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


def test_crlf_and_cr_framing_stream_event_by_event_whatever_the_chunks():
    for eol in (b"\r\n", b"\r"):
        stream = STREAM.replace(b"\n", eol)
        usage = USAGE.replace(b"\n", eol)
        for size in (1, 2, 5, len(stream)):
            events = sse.Events(strip_usage=True)
            parts = [events.feed(part) for part in split(stream, size)]
            assert b"".join(parts) + events.rest() == stream.replace(usage, b"")
            assert events.usage["total_tokens"] == 8 and events.chunks == 4
        events = sse.Events(strip_usage=False)
        assert events.feed(TOKENS[0].replace(b"\n", eol)) == TOKENS[0].replace(b"\n", eol)  # sent at once


def test_an_event_ended_by_a_cr_goes_on_at_once():
    events = sse.Events(strip_usage=False)
    assert events.feed(b"data: 1\r\n\r") == b"data: 1\r\n\r"  # not held for a LF that may follow
    assert events.feed(b"\ndata: 2") == b""
    assert events.rest() == b"\ndata: 2"


def test_usage_in_an_event_with_other_fields_and_split_data_lines_is_read():
    chunk = b'event: message\nid: 7\ndata: {"choices": [],\ndata:  "usage": {"total_tokens": 9}}\n\n'
    events = sse.Events(strip_usage=True)
    assert events.feed(TOKENS[0] + chunk) == TOKENS[0]
    assert events.usage == {"total_tokens": 9}


def test_random_chunkings_of_every_framing_give_the_pods_bytes_less_only_the_usage_chunk():
    rng = random.Random(7)
    for _ in range(500):
        eol = rng.choice([b"\n", b"\r\n", b"\r"])
        stream, usage = STREAM.replace(b"\n", eol), USAGE.replace(b"\n", eol)
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 30)))
        parts = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        for strip in (False, True):
            events = sse.Events(strip)
            out = b"".join(events.feed(part) for part in parts) + events.rest()
            assert out == (stream.replace(usage, b"") if strip else stream), (eol, cuts, strip)
            assert events.usage["total_tokens"] == 8
