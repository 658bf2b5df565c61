"""Timestamps as the contract writes them: UTC ISO 8601, millisecond precision, ending in Z.

Stored as text of one fixed width, so text order is time order on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def now() -> str:
    return format_time(datetime.now(UTC))


def parse_time(text: str) -> str:
    """Parse a user-given ISO 8601 date or datetime into the stored form.

    A date alone means its midnight UTC; a datetime without an offset is UTC.
    Raises ValueError on anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)


def duration_ms(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
        start.replace("Z", "+00:00")
    )
    return int(delta.total_seconds() * 1000)
