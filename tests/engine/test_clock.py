from __future__ import annotations

import pytest

from synthesis.engine import clock


def test_now_is_fixed_width_utc() -> None:
    stamp = clock.now()
    assert len(stamp) == 24 and stamp.endswith("Z") and stamp[10] == "T"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2025-05-01", "2025-05-01T00:00:00.000Z"),
        ("2025-05-01T10:15:30Z", "2025-05-01T10:15:30.000Z"),
        ("2025-05-01T12:15:30+02:00", "2025-05-01T10:15:30.000Z"),
        ("2025-05-01T10:15:30.123456", "2025-05-01T10:15:30.123Z"),
    ],
)
def test_parse_time(given: str, stored: str) -> None:
    assert clock.parse_time(given) == stored


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01", ""])
def test_parse_time_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        clock.parse_time(bad)


def test_duration_ms() -> None:
    assert clock.duration_ms("2025-05-01T10:15:30.000Z", "2025-05-01T10:16:44.500Z") == 74500
    assert clock.duration_ms(None, "2025-05-01T10:16:44.500Z") is None


def test_years_before_1000_keep_four_digits() -> None:
    assert clock.parse_time("0241-09-06T20:18:53Z") == "0241-09-06T20:18:53.000Z"
