"""`synthesis serve` as a real process: token at start, graceful SIGTERM, and nothing
accepted lost across a stop, a crash and a restart."""

from __future__ import annotations

import os
import pwd
import signal
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from synthesis.store.cluster import MAX_TAKEOVERS
from tests.receiver import Receiver
from tests.support import ServeProcess, command, free_port, process_running, wait_until


def test_generated_token_is_printed_kept_and_reused(tmp_path: Path) -> None:
    assert ServeProcess(tmp_path).stop() == 0
    token_file = tmp_path / "token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(token) >= 32

    again = ServeProcess(tmp_path)
    try:
        assert again.client(token).get("/api/executions").status == 200
        assert again.client("not-it").get("/api/executions").status == 401
    finally:
        again.stop()


def test_banner_shows_web_ui_token_and_curl_line(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path)
    server.process.send_signal(signal.SIGTERM)
    out, _ = server.process.communicate(timeout=30)
    token = (tmp_path / "token").read_text().strip()
    assert f"Synthesis web UI: http://127.0.0.1:{server.port}/ui/" in out
    assert f"Synthesis token: {token}" in out
    assert (
        f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{server.port}/api/executions"
        in out
    )
    assert server.process.returncode == 0


def test_configured_tokens_print_nothing_secret(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, env={"SYNTHESIS_TOKENS": "env-token,reader:read"})
    try:
        assert server.client("env-token").get("/api/executions").status == 200
        assert server.client("reader").post("/api/executions", {}).status == 403
    finally:
        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=30)
    assert "env-token" not in out + err
    assert not (tmp_path / "token").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_keeps_everything_and_the_restart_finishes_it(
    tmp_path: Path, signum: int
) -> None:
    marker = tmp_path / "first-run"
    flag = tmp_path / "quick-started"
    server = ServeProcess(tmp_path, "--token", "t", "--shutdown-grace", "1")
    client = server.client("t")
    # Outlives the grace period: stopped, and run again after the restart.
    slow = client.create(
        [
            command(
                "s", f"if [ -e {marker} ]; then echo second run; else touch {marker}; sleep 60; fi"
            ),
            command("after", "echo after"),
        ]
    )
    # Finishes within the grace period: completes before the server exits.
    quick = client.create([command("q", f"touch {flag}; sleep 0.3; echo quick")])
    waiting = client.create([command("w", "echo waited")], start=False)
    wait_until(lambda: marker.exists() and flag.exists())

    assert server.stop(signum) == 0

    restarted = ServeProcess(tmp_path, "--token", "t")
    client = restarted.client("t")
    try:
        done_quick = client.execution(quick)
        assert done_quick["status"] == "completed"
        assert done_quick["steps"][0]["output"] == "quick\n"
        done_slow = client.wait_for_status(slow)
        assert done_slow["status"] == "completed"
        assert [s["output"] for s in done_slow["steps"]] == ["second run\n", "after\n"]
        assert client.execution(waiting)["status"] == "created"
    finally:
        assert restarted.stop() == 0


def test_a_crash_loses_nothing_accepted(tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    server = ServeProcess(tmp_path, "--token", "t")
    client = server.client("t")
    execution_id = client.create(
        [command("s", f"if [ -e {marker} ]; then echo again; else touch {marker}; sleep 60; fi")]
    )
    wait_until(marker.exists)
    server.stop(signal.SIGKILL)

    restarted = ServeProcess(tmp_path, "--token", "t")
    try:
        done = restarted.client("t").wait_for_status(execution_id)
        assert done["status"] == "completed"
        assert done["steps"][0]["output"] == "again\n"
        assert kept_counts(tmp_path / "synthesis.db") == real_counts(tmp_path / "synthesis.db")
    finally:
        restarted.stop()


def held_plans(server: ServeProcess, receiver: Receiver, count: int) -> tuple[str, str, list[str]]:
    """A subscription (to a hook of its own) for plans of one name, then `count` such plans
    created while the receiver holds the first delivery, which has arrived: (hook,
    subscription id, plan ids in order)."""
    hook = f"crash-{uuid.uuid4().hex[:12]}"
    client = server.client("t")
    callback = {"callback_url": receiver.url(hook), "filter": {"name": hook}}
    sid = client.post("/api/events/subscriptions", callback).json["subscription_id"]
    receiver.hold(hook)
    plan = {"name": hook, "steps": [command("a", "true")]}
    ids = [client.post("/api/plans", plan).json["plan_id"] for _ in range(count)]
    wait_until(lambda: receiver.arrived[hook] == 1)
    return hook, sid, ids


def delivered_once_each(server: ServeProcess, sid: str, count: int) -> None:
    def recorded() -> list[tuple[str, int]]:
        path = f"/api/events/subscriptions/{sid}/deliveries"
        rows = server.client("t").get(path).json["deliveries"]
        return [(r["status"], r["attempts"]) for r in rows] if len(rows) == count else []

    assert wait_until(recorded) == [("delivered", 1)] * count


def test_a_webhook_delivery_cut_short_by_a_crash_is_delivered_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Killed while the callback holds the first event: after the restart it comes again,
    then the next one; each is recorded delivered once."""
    server = ServeProcess(tmp_path, "--token", "t")
    hook, sid, (first, second) = held_plans(server, receiver, 2)
    server.stop(signal.SIGKILL)
    receiver.release(hook)  # answered to a dead server

    restarted = ServeProcess(tmp_path, "--token", "t")
    try:
        wait_until(lambda: len(receiver.events(hook)) >= 3)
        got = [e["payload"]["plan_id"] for e in receiver.events(hook)]
        assert got == [first, first, second]
        delivered_once_each(restarted, sid, 2)
    finally:
        assert restarted.stop() == 0


def test_webhook_deliveries_not_yet_recorded_at_a_crash_are_delivered_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The store is held by another writer while three events are delivered, so none of
    their records (nor the position) can be stored; after kill -9 and a restart all three
    come again, in order, and are recorded once."""
    server = ServeProcess(tmp_path, "--token", "t")
    hook, sid, ids = held_plans(server, receiver, 3)
    writer = sqlite3.connect(tmp_path / "synthesis.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the server's bus now waits for the store
    try:
        receiver.release(hook)
        wait_until(lambda: len(receiver.events(hook)) == 3)
        server.stop(signal.SIGKILL)
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    restarted = ServeProcess(tmp_path, "--token", "t")
    try:
        wait_until(lambda: len(receiver.events(hook)) >= 6)
        assert [e["payload"]["plan_id"] for e in receiver.events(hook)] == ids + ids
        delivered_once_each(restarted, sid, 3)
    finally:
        assert restarted.stop() == 0


def kept_counts(db: Path) -> dict[tuple[str, str], int]:
    """The list totals the store keeps (store/counts.py), and what a COUNT finds."""
    with sqlite3.connect(db) as conn:
        return {(n, k): c for n, k, c in conn.execute("SELECT * FROM row_counts") if c}


def real_counts(db: Path) -> dict[tuple[str, str], int]:
    with sqlite3.connect(db) as conn:
        found = {
            ("executions", s): c
            for s, c in conn.execute("SELECT status, count(*) FROM executions GROUP BY 1")
        }
        found |= {
            ("events", t): c
            for t, c in conn.execute("SELECT type, count(*) FROM events GROUP BY 1")
        }
        plans = conn.execute("SELECT count(*) FROM plans").fetchone()[0]
    return found | ({("plans", ""): plans} if plans else {})


def recorded_groups(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM step_processes").fetchone()[0]
    except sqlite3.OperationalError:  # not there yet
        return 0


def test_a_crash_leaves_no_orphan_beside_the_rerun(tmp_path: Path) -> None:
    """kill -9 mid-step: on restart the old process groups are stopped before the steps run
    again (one whose leader waits, one whose leader died writing to the dead server's pipe,
    and a direct invocation's), and each step completes once."""
    dirs = [tmp_path / name for name in ("waits", "chatty", "invoked")]
    for d in dirs:
        d.mkdir()
    # The rerun says whether any process of the first run is still alive beside it.
    check = (
        'for p in $(cat {d}/pids); do s=$(cut -d" " -f3 /proc/$p/stat 2>/dev/null); '
        '[ -n "$s" ] && [ "$s" != Z ] && echo "old $p alive"; done; echo again'
    )
    first = "sleep 60 & echo $! $$ > {d}/pids.new; mv {d}/pids.new {d}/pids; "

    def step(d: Path, rest: str) -> str:
        body = first.format(d=d) + rest
        return (
            f"echo run >> {d}/runs; if [ -e {d}/pids ]; then {check.format(d=d)}; else {body}; fi"
        )

    server = ServeProcess(tmp_path, "--token", "t")
    client = server.client("t")
    waits = client.create([command("s", step(dirs[0], "wait"))])
    chatty = client.create([command("s", step(dirs[1], "while :; do echo tick; sleep 0.1; done"))])
    invoked = client.post(
        "/api/integrations/cli/capabilities/execute_command",
        {"parameters": {"command": first.format(d=dirs[2]) + "wait"}, "async": True},
    ).json["invocation_id"]
    wait_until(lambda: all((d / "pids").exists() for d in dirs))
    wait_until(lambda: recorded_groups(tmp_path / "synthesis.db") == 3)
    old = [int(pid) for d in dirs for pid in (d / "pids").read_text().split()]
    server.stop(signal.SIGKILL)
    try:
        assert all(process_running(pid) for pid in old[0::2])  # orphans now: every `sleep 60`

        restarted = ServeProcess(tmp_path, "--token", "t")
        client = restarted.client("t")
        try:
            for execution_id in (waits, chatty):
                done = client.wait_for_status(execution_id)
                assert done["status"] == "completed"
                assert done["steps"][0]["output"] == "again\n"  # nothing old alive beside it
            assert not any(process_running(pid) for pid in old)
            assert [(d / "runs").read_text() for d in dirs[:2]] == ["run\nrun\n"] * 2
            invocation = client.get(f"/api/integrations/invocations/{invoked}").json
            assert invocation["status"] == "failed"
            assert recorded_groups(tmp_path / "synthesis.db") == 0
        finally:
            restarted.stop()
    finally:  # without the fix the orphans are still there
        for pid in old:
            if process_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_after_a_crash_every_end_is_an_event_as_the_rows_show(tmp_path: Path) -> None:
    """kill -9, then a restart: the invocation the crash interrupted, and the execution
    taken over once too often (its steps skipped), end with the events that say so."""
    started = tmp_path / "started"
    server = ServeProcess(tmp_path, "--token", "t")
    client = server.client("t")
    doomed = client.create([command("runs", f"touch {started}; sleep 60"), command("then", "true")])
    invoked = client.post(
        "/api/integrations/cli/capabilities/execute_command",
        {"parameters": {"command": "sleep 60"}, "async": True},
    ).json["invocation_id"]
    wait_until(lambda: started.exists() and recorded_groups(tmp_path / "synthesis.db") == 2)
    server.stop(signal.SIGKILL)
    with sqlite3.connect(tmp_path / "synthesis.db") as db:  # its nodes died under it before
        db.execute("UPDATE executions SET claims = ? WHERE id = ?", (MAX_TAKEOVERS - 1, doomed))

    restarted = ServeProcess(tmp_path, "--token", "t")
    client = restarted.client("t")
    try:
        failed = client.wait_for_status(doomed)
        assert failed["status"] == "failed" and "taken over" in failed["error"]
        told = client.get(f"/api/events?execution_id={doomed}&limit=100").json["events"]
        ends = {
            e["payload"]["step_id"]: e["payload"]["status"]
            for e in told
            if e["type"] == "step_completed"
        }
        assert ends == {s["id"]: s["status"] for s in failed["steps"]}
        assert set(ends.values()) == {"skipped"}
        assert [e["payload"]["status"] for e in told if e["type"] == "execution_completed"] == [
            "failed"
        ]

        invocation = client.get(f"/api/integrations/invocations/{invoked}").json
        assert invocation["status"] == "failed"
        told = client.get("/api/events?type=invocation_completed").json["events"]
        assert [(e["payload"]["invocation_id"], e["payload"]["status"]) for e in told] == [
            (invoked, "failed")
        ]
        assert told[0]["payload"]["duration_ms"] == invocation["duration_ms"]
    finally:
        restarted.stop()


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """`synthesis serve` that is expected to refuse to start."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "synthesis",
            "serve",
            "--port",
            str(free_port()),
            "--token",
            "t",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_step_inherits_no_descriptor_given_to_the_server(tmp_path: Path) -> None:
    """A descriptor the server inherited (a supervisor's socket, a shell's pipe) never
    reaches a step: it sees only its stdin, stdout and stderr."""
    given = 77
    read_end, write_end = os.pipe()
    os.dup2(write_end, given)  # inheritable
    try:
        server = ServeProcess(tmp_path, env={"SYNTHESIS_TOKENS": "t"}, pass_fds=(given,))
    finally:
        for fd in (read_end, write_end, given):
            os.close(fd)
    try:
        assert os.path.exists(f"/proc/{server.process.pid}/fd/{given}")  # the server has it
        client = server.client("t")
        # the glob's expansion reads the directory on a descriptor of its own (3)
        listing = command("fds", 'for fd in /proc/$$/fd/*; do echo "${fd##*/}"; done')
        done = client.wait_for_status(client.create([listing]))
        assert done["status"] == "completed", done
        seen = set(done["steps"][0]["output"].split())
        assert str(given) not in seen
        assert seen <= {"0", "1", "2", "3"}, seen
    finally:
        server.stop()


def test_a_database_from_another_version_is_refused_clearly(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, metadata TEXT)")
    result = serve_once("--database", f"sqlite:///{tmp_path / 'old.db'}")
    assert result.returncode == 1
    assert "table 'executions' in this database lacks column" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_refused_clearly() -> None:
    result = serve_once("--database", "postgresql://nobody:secret-pw@127.0.0.1:1/none")
    assert result.returncode == 1
    assert "cannot use the database" in result.stderr
    assert "secret-pw" not in result.stderr
    assert "Traceback" not in result.stderr


def test_steps_run_as_the_step_user_who_cannot_read_the_data_dir(
    step_user: str, open_dir: Path
) -> None:
    entry = pwd.getpwnam(step_user)
    (open_dir / "public").write_text("public\n")
    (open_dir / "public").chmod(0o644)
    data = open_dir / "data"
    server = ServeProcess(data, env={"SYNTHESIS_RUN_AS": step_user})
    client = server.client((data / "token").read_text().strip())
    probe = (
        f"id -u; id -g; echo $HOME; pwd; cat {open_dir}/public; "
        f"for f in token synthesis.db; do cat {data}/$f >/dev/null 2>&1 && echo read $f; done; "
        f"ls {data} >/dev/null 2>&1 && echo listed; true"
    )
    try:
        execution_id = client.create(
            [
                command("cmd", probe),
                {"id": "script", "type": "script", "parameters": {"script": probe}},
            ]
        )
        done = client.wait_for_status(execution_id)
    finally:
        assert server.stop() == 0
    assert done["status"] == "completed", done
    expected = f"{entry.pw_uid}\n{entry.pw_gid}\n{entry.pw_dir}\n/tmp\npublic\n"
    assert [s["output"] for s in done["steps"]] == [expected, expected]
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():  # the token, the database and its WAL files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_run_as_refuses_an_unknown_user_or_a_server_that_is_not_root(step_user: str) -> None:
    unknown = serve_once("--run-as", "no-such-user-synthesis")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().endswith("--run-as no-such-user-synthesis: no such user")
    assert len(unknown.stderr.strip().splitlines()) == 1

    # A server that is not root: this one drops root itself once its modules are loaded
    # (the interpreter may live where the step user cannot read).
    entry = pwd.getpwnam(step_user)
    code = (
        "import os, sys, sysconfig; from synthesis import cli; import synthesis.runtime; "
        "import synthesis.integrations.run_as; "
        f"os.setgid({entry.pw_gid}); os.setuid({entry.pw_uid}); "
        f"sys.exit(cli.main(['serve', '--run-as', '{step_user}', '--token', 't']))"
    )
    not_root = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert not_root.returncode == 1
    assert not_root.stderr.strip().endswith("the server must run as root to switch users")
    assert "Traceback" not in not_root.stderr


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_tokens_and_secrets_from_files_stay_out_of_steps_and_the_log(tmp_path: Path) -> None:
    api_secret, db_secret = "api-value-from-the-file", "db-value-from-the-env"
    tokens = private_file(tmp_path / "tokens", "# ops\nfile-token\nfile-reader:read\n")
    secrets = private_file(tmp_path / "secrets", f"API={api_secret}\n")
    seen_env = tmp_path / "step-env"
    server = ServeProcess(
        tmp_path,
        "--token-file",
        str(tokens),
        "--secrets-file",
        str(secrets),
        "--token",
        "cli-token",
        env={"SYNTHESIS_SECRET_DB": db_secret, "SYNTHESIS_TOKENS": "env-token"},
    )
    try:
        assert server.client("file-reader").get("/api/executions").status == 200
        assert server.client("file-reader").post("/api/executions", {}).status == 403
        client = server.client("file-token")
        execution_id = client.create(
            [
                command("env", f"env > {seen_env}"),
                command("say", 'echo "${secret.API} ${secret.DB}" >&2; exit 1'),
            ]
        )
        done = client.wait_for_status(execution_id)
        assert done["steps"][1]["error"] == "*** ***\n"
        assert server.client("cli-token").get("/api/executions").status == 200
        assert server.client("env-token").get("/api/executions").status == 401  # flag wins
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert b"file-token" not in cmdline
    finally:
        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=30)
    step_env = seen_env.read_text()
    for private in ("SYNTHESIS_TOKEN_FILE", "SYNTHESIS_SECRETS_FILE", "SYNTHESIS_SECRET_DB"):
        assert private not in step_env  # a step that references no secret gets none
    assert err.count("visible to every local user in the process list") == 1
    log = out + err
    for value in (api_secret, db_secret, "file-token", "file-reader", "cli-token"):
        assert value not in log


@pytest.mark.parametrize(
    ("flag", "text", "mode", "expected"),
    [
        ("--secrets-file", "API=some-secret-value\n", 0o644, "is accessible by group or others"),
        ("--secrets-file", "API some-secret-value\n", 0o600, "line 1: expected NAME=value"),
        ("--secrets-file", "API=abc\n", 0o600, "at least 4 characters"),
        ("--token-file", "some-secret-value\n", 0o640, "chmod 600"),
    ],
)
def test_unsafe_or_malformed_secret_files_are_refused_in_one_line(
    tmp_path: Path, flag: str, text: str, mode: int, expected: str
) -> None:
    path = private_file(tmp_path / "file", text, mode)
    result = serve_once(flag, str(path), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "cannot start" in lines[-1] and expected in lines[-1]
    assert "Traceback" not in result.stderr
    assert "some-secret-value" not in result.stderr


def test_an_unknown_integration_is_refused_in_one_line(tmp_path: Path) -> None:
    result = serve_once("--integrations", "cli,shell", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "unknown integration 'shell' in --integrations" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
