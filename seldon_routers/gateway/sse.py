"""Server-sent events as OpenAI servers stream them: `data: {json}\\n\\n` per chunk, then
`data: [DONE]`. The gateway passes each complete event on as soon as it has it, reads the
`usage` chunk (asked for with stream_options.include_usage) and, when the client did not
ask for it, leaves that chunk out, so the client sees what the pod would have sent it."""

from __future__ import annotations

from typing import Optional

import orjson

_SEP = b"\n\n"


class Events:
    """Splits a byte stream into whole events; `usage` is the last usage seen."""

    __slots__ = ("_tail", "usage", "strip_usage", "chunks")

    def __init__(self, strip_usage: bool):
        self._tail = b""
        self.usage: Optional[dict] = None
        self.strip_usage = strip_usage
        self.chunks = 0  # events with content (TTFT is the first's arrival)

    def feed(self, data: bytes) -> bytes:
        """The complete events in `data` (with what came before), to send on now."""
        buf = self._tail + data if self._tail else data
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
        out = []
        for event in whole.split(_SEP)[:-1]:
            if self._usage_only(event):
                continue
            self.chunks += 1
            out.append(event + _SEP)
        return b"".join(out)

    def _usage_only(self, event: bytes) -> bool:
        """Reads an event's usage; True when it is the usage chunk the client must not see."""
        line = event.strip()
        if not line.startswith(b"data:"):
            return False
        try:
            chunk = orjson.loads(line[5:])
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


def with_usage(body: dict) -> Optional[dict]:
    """The body asking for the usage chunk, or None when it already does."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
