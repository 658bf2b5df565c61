"""Live output: what of a step's output streams goes out as `step_output` events.

Each stream sends at most the same number of bytes the stored output keeps
(`output_limit_bytes`), then one truncation marker and nothing more; each event carries at
most EVENT_MAX_BYTES of UTF-8, cut between characters, never inside one.
"""

from __future__ import annotations

EVENT_MAX_BYTES = 64 * 1024


def truncation_marker(stream: str, limit: int) -> str:
    return f"\n[output truncated: {stream} beyond {limit} bytes is not sent live]\n"


class LiveOutput:
    """One stream's live output budget."""

    def __init__(self, limit: int) -> None:
        self._room = limit
        self.truncated = False

    def admit(self, text: str) -> tuple[str, bool]:
        """The part of `text` that may still go out, and whether the budget ran out just
        now (the caller sends the marker once, after that part)."""
        if self.truncated or not text:
            return "", False
        data = text.encode()
        if len(data) <= self._room:
            self._room -= len(data)
            return text, False
        kept = data[: self._room].decode("utf-8", errors="ignore")
        self._room, self.truncated = 0, True
        return kept, True


def pieces(text: str, max_bytes: int = EVENT_MAX_BYTES) -> list[str]:
    """`text` cut into pieces of at most `max_bytes` of UTF-8 each, between characters."""
    data = text.encode()
    if len(data) <= max_bytes:
        return [text] if text else []
    out, start = [], 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        out.append(data[start:end].decode())
        start = end
    return out
