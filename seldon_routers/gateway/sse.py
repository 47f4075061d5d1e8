"""Server-sent events as OpenAI servers stream them: `data: {json}\\n\\n` per chunk, then
`data: [DONE]` (or with the spec's other line ends, CRLF and CR). The gateway passes each
complete event on as soon as it has it, reads the `usage` chunk (asked for with
stream_options.include_usage) and, when the client did not ask for it, leaves that chunk
out, so the client sees what the pod would have sent it."""

from __future__ import annotations

import re
from typing import Optional

import orjson

_SEP = b"\n\n"
# An event ends at a blank line; a line ends at CRLF, LF or CR (the SSE spec). vLLM and
# OpenAI send LF only (the fast path); sse-starlette servers send CRLF.
_BLANK = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class Events:
    """Splits a byte stream into whole events; `usage` is the last usage seen."""

    __slots__ = ("_tail", "usage", "strip_usage", "chunks", "_lf")

    def __init__(self, strip_usage: bool):
        self._tail = b""
        self.usage: Optional[dict] = None
        self.strip_usage = strip_usage
        self.chunks = 0  # events with content (TTFT is the first's arrival)
        self._lf = False  # a left-out event ended at a CR: the LF of its CRLF goes with it

    def feed(self, data: bytes) -> bytes:
        """The complete events in `data` (with what came before), to send on now."""
        buf = self._tail + data if self._tail else data
        if self._lf:
            self._lf = False
            buf = buf[1:] if buf.startswith(b"\n") else buf
        if b"\r" in buf:
            return self._feed_cr(buf)
        end = buf.rfind(_SEP)
        if end < 0:
            self._tail = buf
            return b""
        end += 2
        self._tail = buf[end:]
        whole = buf[:end]
        if b'"usage"' not in whole:  # the common chunk: nothing to read, sent as it came
            self.chunks += whole.count(_SEP)
            return whole
        return self._events(whole, [m + 2 for m in _finds(whole, _SEP)])

    def _feed_cr(self, buf: bytes) -> bytes:
        # A CR last may be half a CRLF: cut there anyway (the bytes go on unchanged, and a stray
        # LF first in the next event is an empty line, which an SSE parser skips).
        ends = [m.end() for m in _BLANK.finditer(buf)]
        if not ends:
            self._tail = buf
            return b""
        self._tail = buf[ends[-1]:]
        return self._events(buf[:ends[-1]], ends)

    def _events(self, whole: bytes, ends: list) -> bytes:
        out, start = [], 0
        for end in ends:
            event = whole[start:end]
            start = end
            if b'"usage"' in event and self._usage_only(event):
                if event.startswith(b"\n"):  # the LF of the CRLF before it, cut at its CR
                    out.append(b"\n")
                self._lf = end == len(whole) and event.endswith(b"\r")
                continue
            self.chunks += 1
            out.append(event)
        return b"".join(out)

    def _usage_only(self, event: bytes) -> bool:
        """Reads an event's usage; True when it is the usage chunk the client must not see."""
        data = [line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")]
        if not data:
            return False
        try:
            chunk = orjson.loads(b"\n".join(data))
        except orjson.JSONDecodeError:
            return False
        if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
            return False
        self.usage = chunk["usage"]
        return self.strip_usage and not chunk.get("choices")

    def rest(self) -> bytes:
        """What is left when the stream ends (an unterminated last event), sent as it is."""
        tail, self._tail = self._tail, b""
        return tail


def _finds(buf: bytes, sep: bytes) -> list:
    out, i = [], buf.find(sep)
    while i >= 0:
        out.append(i)
        i = buf.find(sep, i + len(sep))
    return out


def with_usage(body: dict) -> Optional[dict]:
    """The body asking for the usage chunk, or None when it already does."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
