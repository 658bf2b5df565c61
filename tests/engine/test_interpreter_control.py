"""Retries, timeouts, pause/resume/cancel and their races, child plans, recovery and a
shutdown's drain, against the interpreter alone with a fake clock (docs/plans.md)."""

from __future__ import annotations

from synthesis.engine import interpreter as run
from synthesis.engine.errors import ApiError
from tests.engine.interpreter_harness import Run, command

RETRY = {"max_attempts": 3, "backoff_seconds": 2, "backoff_multiplier": 3}


def test_a_failed_step_is_retried_after_its_backoff_and_lists_its_attempts() -> None:
    r = Run([command("a", retry=RETRY)])
    r.end("a", "failed", error="boom")
    assert r.of(run.SetTimer)[-1] == run.SetTimer(run.Retry("a"), 2.0)
    assert [a["status"] for a in r.of(run.AttemptFailed)[-1].attempts] == ["failed"]
    r.tick(1.9)
    assert r.started() == ["a"]
    r.tick(0.1)
    assert r.started() == ["a", "a"]
    r.end("a", "failed")
    assert r.of(run.SetTimer)[-1].delay == 6.0  # 2 * 3
    r.tick(6)
    r.end("a")
    done = r.finished()["a"]
    assert done.result.status == "completed"
    assert [a["attempt"] for a in done.attempts or []] == [1, 2, 3]
    assert r.of(run.StepStarted)[0].step_id == "a" and len(r.of(run.StepStarted)) == 1


def test_retries_give_up_after_max_attempts() -> None:
    r = Run([command("a", retry={"max_attempts": 2, "backoff_seconds": 0})])
    r.end("a", "failed")
    r.tick(0)
    r.end("a", "failed")
    assert r.status("a") == "failed" and len(r.finished()["a"].attempts or []) == 2


def test_jitter_moves_the_delay_by_the_random_draw() -> None:
    retry = {"max_attempts": 2, "backoff_seconds": 10, "jitter": 0.5}
    low = Run([command("a", retry=retry)], jitter=0.0)
    low.end("a", "failed")
    high = Run([command("a", retry=retry)], jitter=0.999)
    high.end("a", "failed")
    assert low.of(run.SetTimer)[-1].delay == 5.0
    assert 14.9 < high.of(run.SetTimer)[-1].delay < 15.0


def test_a_retry_due_while_paused_waits_for_resume() -> None:
    r = Run([command("a", retry={"max_attempts": 2, "backoff_seconds": 1})])
    r.end("a", "failed")
    r.control("pause")
    r.tick(5)
    assert r.started() == ["a"]  # due, but paused
    r.control("resume")
    assert r.started() == ["a", "a"]


def test_a_timeout_stops_the_step_and_fails_it() -> None:
    r = Run([command("a", timeout=5)])
    r.tick(5)
    assert r.of(run.StopStep) == [run.StopStep("a")]
    r.end("a", "cancelled")
    assert r.status("a") == "failed"
    assert r.error("a") == "timed out after 5 seconds"


def test_a_step_that_ends_in_time_cancels_its_timer() -> None:
    r = Run([command("a", timeout=5)])
    r.end("a")
    assert r.of(run.CancelTimer) == [run.CancelTimer(run.Timeout("a", 1))]
    assert not r.timers


def test_a_timeout_is_retried_like_any_failure() -> None:
    r = Run([command("a", timeout=5, retry={"max_attempts": 2, "backoff_seconds": 0})])
    r.tick(5)
    r.end("a", "cancelled")
    r.tick(0)
    assert r.started() == ["a", "a"] and run.Timeout("a", 2) in r.timers
    r.end("a")
    assert r.status("a") == "completed"


def test_a_loop_that_times_out_drops_what_it_started() -> None:
    body = [command("s"), command("t")]
    r = Run([{"id": "n", "type": "loop", "timeout": 3, "parameters": {"count": 2, "steps": body}}])
    assert r.running() == ["n[0].s"]
    r.tick(3)
    assert r.of(run.StopStep) == [run.StopStep("n[0].s")]
    assert r.status("n[0].t") == "cancelled"
    assert (r.status("n"), r.error("n")) == ("failed", "timed out after 3 seconds")
    r.end("n[0].s", "cancelled")
    assert r.outcome is not None and r.outcome.status == "failed"


def test_pause_stops_new_steps_and_resume_goes_on() -> None:
    r = Run([command("a"), command("b")])
    assert r.control("pause")[0].status == "paused"
    r.end("a")  # a running step finishes while paused
    assert r.running() == [] and r.outcome is None
    r.control("resume")
    assert r.running() == ["b"]


def test_cancel_cancels_the_pending_stops_the_running_and_ends_at_the_cancel() -> None:
    r = Run([command("a", depends_on=[]), command("b", depends_on=[]), command("c")])
    r.clock.t = 1
    answer = r.control("cancel")[0]
    assert answer.status == "cancelled"
    assert r.of(run.StepsCancelled) == [run.StepsCancelled(["c"])]
    assert {s.step_id for s in r.of(run.StopStep)} == {"a", "b"}
    r.clock.t = 4
    r.end("a", "cancelled")
    r.end("b", "completed")  # the race: it ended before the stop reached it
    assert r.outcome is not None
    assert (r.outcome.status, r.outcome.at) == ("cancelled", answer.at)
    assert r.status("b") == "completed"


def test_a_second_cancel_and_a_pause_after_the_end_are_refused() -> None:
    r = Run([command("a")])
    r.control("cancel")
    assert isinstance(r.control("cancel")[0], ApiError)
    assert isinstance(r.control("resume")[0], ApiError)
    r.end("a", "cancelled")
    refused = r.control("pause")[0]
    assert isinstance(refused, ApiError) and refused.code == "invalid_state"


def test_cancel_while_a_retry_waits_ends_the_step_cancelled() -> None:
    r = Run([command("a", retry={"max_attempts": 3, "backoff_seconds": 10})])
    r.end("a", "failed")
    r.control("cancel")
    assert r.status("a") == "cancelled"
    r.tick(10)
    assert r.started() == ["a"]  # the retry that came due found nothing to run


def test_pause_and_cancel_reach_a_running_child() -> None:
    r = Run([{"id": "c", "type": "plan", "parameters": {"plan_id": "p1", "variables": {"v": 1}}}])
    assert r.of(run.StartChild) == [run.StartChild("c", "p1", {"v": 1}, 1)]
    r.feed(run.ChildBegan("c", "child-1"))
    r.control("pause")
    r.control("resume")
    r.control("cancel")
    assert [(c.child_id, c.action) for c in r.of(run.ControlChild)] == [
        ("child-1", "pause"),
        ("child-1", "resume"),
        ("child-1", "cancel"),
    ]
    r.feed(run.ChildDone("c", "child-1", "cancelled", {}))
    assert r.status("c") == "cancelled" and r.outcome is not None


def test_a_child_ends_its_step_with_its_variables() -> None:
    r = Run([{"id": "c", "type": "plan", "parameters": {"plan_id": "p1"}}, command("after")])
    r.feed(run.ChildBegan("c", "child-1"))
    r.feed(run.ChildDone("c", "child-2", "completed", {"x": 9}))  # not ours: ignored
    assert r.running() == []
    r.feed(run.ChildDone("c", "child-1", "completed", {"x": 1}))
    assert r.machine.variables["c_output"] == {"x": 1}
    assert r.machine.variables["c_execution_id"] == "child-1"
    assert r.running() == ["after"]


def test_a_cancelled_child_fails_its_step_when_the_parent_was_not_cancelled() -> None:
    r = Run([{"id": "c", "type": "plan", "parameters": {"plan_id": "p1"}}])
    r.feed(run.ChildBegan("c", "child-1"))
    r.feed(run.ChildDone("c", "child-1", "cancelled", {}))
    assert (r.status("c"), r.error("c")) == ("failed", "the child execution was cancelled")


def test_a_child_step_timeout_cancels_the_child() -> None:
    step = {"id": "c", "type": "plan", "timeout": 2, "parameters": {"plan_id": "p1"}}
    r = Run([step])
    r.feed(run.ChildBegan("c", "child-1"))
    r.tick(2)
    assert r.of(run.ControlChild) == [run.ControlChild("child-1", "cancel")]
    assert (r.status("c"), r.error("c")) == ("failed", "timed out after 2 seconds")


def test_recovery_goes_on_from_the_stored_statuses() -> None:
    r = Run([command("a"), command("b"), command("c")], statuses={"a": "completed"})
    assert r.running() == ["b"]


def test_a_step_recovered_skipped_by_its_condition_lets_its_dependents_run() -> None:
    r = Run([command("a", condition="false"), command("b")], statuses={"a": "skipped"})
    assert r.running() == ["b"]


def test_a_run_recovered_after_an_untolerated_failure_stays_halted() -> None:
    r = Run([command("a"), command("b")], statuses={"a": "failed"})
    assert r.running() == [] and r.status("b") == "skipped"
    assert r.outcome is not None and r.outcome.status == "failed"


def test_a_run_recovered_paused_waits_for_resume() -> None:
    r = Run([command("a")], status="paused")
    assert r.running() == []
    r.control("resume")
    assert r.running() == ["a"]


def test_a_shutdown_drains_interrupts_after_the_grace_and_resets_the_step() -> None:
    r = Run([command("a"), command("b")])
    r.feed(run.ShutdownRequested(grace=3))
    assert r.of(run.Ended) == []
    r.tick(3)
    assert r.of(run.StopStep) == [run.StopStep("a", interrupted=True)]
    r.feed(run.StepInterrupted("a"))
    assert r.of(run.StepReset) == [run.StepReset("a")]
    assert r.of(run.Ended) == [run.Ended()]  # drained, not ended
    assert r.outcome is None
    assert isinstance(r.control("pause")[0], ApiError)  # the server is shutting down


def test_a_step_a_cancel_was_stopping_ends_cancelled_when_the_grace_interrupts_it() -> None:
    """Cancel, then a shutdown whose grace runs out before the step stopped: the step
    ends cancelled and the run ends, rather than going back to pending unended."""
    r = Run([command("a"), command("b")])
    r.control("cancel")
    r.feed(run.ShutdownRequested(grace=3))
    r.tick(3)
    r.feed(run.StepInterrupted("a"))
    assert r.of(run.StepReset) == []
    assert r.status("a") == "cancelled"
    assert r.outcome is not None and r.outcome.status == "cancelled"
