"""How hard webhook delivery tries: the retry window, capped exponential backoff with
jitter, and when a subscription is paused. Pure; the subscription actors apply it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class DeliveryPolicy:
    """A field with a `webhook_<name>` setting takes it from the settings (config.py);
    tests make them tiny."""

    retry_window_seconds: float = 24 * 3600.0  # one event is retried this long, then dead
    backoff_seconds: float = 0.5
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 60.0
    jitter: float = 0.5  # each delay is cut by up to this fraction, at random
    request_timeout_seconds: float = 10.0
    pause_after_failures: int = 3  # events in a row not delivered; 0: never pause
    max_queue: int = 1000  # live events an actor holds; past it, it replays from the store
    replay_page: int = 500

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryPolicy:
        values = {
            f.name: getattr(settings, f"webhook_{f.name}")
            for f in fields(cls)
            if getattr(settings, f"webhook_{f.name}", None) is not None
        }
        return cls(**values)

    def backoff(self, failed_attempts: int) -> float:
        """The capped delay after the `failed_attempts`-th failed attempt, before jitter."""
        exponent = min(failed_attempts - 1, 64)  # past this the cap holds anyway
        delay = self.backoff_seconds * self.backoff_multiplier**exponent
        return min(self.max_backoff_seconds, delay)

    def next_delay(self, failed_attempts: int, elapsed: float, random: float) -> float | None:
        """Seconds to wait before the next attempt, `elapsed` seconds after the first one
        (`random` uniform in [0, 1)); None when the window is over: the event is dead.
        The last attempt is made when the window ends."""
        remaining = self.retry_window_seconds - elapsed
        if remaining <= 0:
            return None
        delay = self.backoff(failed_attempts) * (1 - self.jitter * random)
        return min(delay, remaining)

    def pauses_after(self, failures: int) -> bool:
        """Whether `failures` events in a row not delivered pause the subscription."""
        return self.pause_after_failures > 0 and failures >= self.pause_after_failures
