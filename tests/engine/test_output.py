"""Live output budgets and event-sized pieces, cut between UTF-8 characters."""

from __future__ import annotations

from synthesis.engine.output import LiveOutput, pieces


def test_a_stream_sends_up_to_its_limit_then_runs_out_once() -> None:
    live = LiveOutput(10)
    assert live.admit("12345") == ("12345", False)
    assert live.admit("67890") == ("67890", False)  # exactly at the limit: not cut yet
    assert live.admit("x") == ("", True)
    assert live.admit("more") == ("", False)  # the marker is owed once only
    assert live.truncated


def test_the_limit_never_cuts_a_character_in_half() -> None:
    live = LiveOutput(5)
    assert live.admit("ab😀") == ("ab", True)  # the 4-byte emoji does not fit in 3 bytes


def test_pieces_hold_at_most_max_bytes_and_join_back_whole() -> None:
    text = "a" + "😀" * 10 + "é" * 7
    parts = pieces(text, 6)
    assert "".join(parts) == text
    assert all(0 < len(p.encode()) <= 6 for p in parts)
    assert pieces("", 6) == [] and pieces("short", 6) == ["short"]
