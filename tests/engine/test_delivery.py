"""The webhook delivery policy: capped exponential backoff with jitter inside a retry
window, and when a subscription pauses."""

from __future__ import annotations

from synthesis.config import Settings
from synthesis.engine.delivery import DeliveryPolicy


def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it() -> None:
    policy = DeliveryPolicy(backoff_seconds=0.5, max_backoff_seconds=3, jitter=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 9, 10_000)] == [0.5, 1, 2, 3, 3, 3]
    assert policy.next_delay(3, elapsed=0, random=0.0) == 2.0
    assert policy.next_delay(3, elapsed=0, random=0.999) > 1.0
    assert policy.next_delay(10_000, elapsed=0, random=0.5) == 2.25


def test_the_window_bounds_the_retries_and_its_end_gets_a_last_attempt() -> None:
    policy = DeliveryPolicy(retry_window_seconds=10, backoff_seconds=4, jitter=0)
    assert policy.next_delay(1, elapsed=1, random=0) == 4
    assert policy.next_delay(2, elapsed=5, random=0) == 5  # not 8: the window ends first
    assert policy.next_delay(3, elapsed=10, random=0) is None  # dead
    assert DeliveryPolicy(retry_window_seconds=0).next_delay(1, elapsed=0, random=0) is None


def test_pausing_after_failures_in_a_row() -> None:
    assert not DeliveryPolicy(pause_after_failures=3).pauses_after(2)
    assert DeliveryPolicy(pause_after_failures=3).pauses_after(3)
    assert not DeliveryPolicy(pause_after_failures=0).pauses_after(10_000)


def test_the_policy_comes_from_the_settings() -> None:
    settings = Settings(
        webhook_retry_window_seconds=5,
        webhook_request_timeout_seconds=2.5,
        webhook_pause_after_failures=7,
    )
    policy = DeliveryPolicy.from_settings(settings)
    assert (policy.retry_window_seconds, policy.request_timeout_seconds) == (5, 2.5)
    assert policy.pause_after_failures == 7
    assert DeliveryPolicy.from_settings(Settings()) == DeliveryPolicy()
