"""A step's live output (`step_output` events) is capped like its stored output: at most
`output_limit_bytes` per stream, then one truncation marker, each event within 64 KiB."""

from __future__ import annotations

from collections import defaultdict

from synthesis.engine.output import EVENT_MAX_BYTES
from tests.support import Client, ServerThread, command

LIMIT = 1024 * 1024  # the default output_limit_bytes
FIFTY_MB = 50 * 1000 * 1000


def live_output(server: ServerThread, execution_id: str) -> dict[str, list[dict]]:
    """The step_output events' data, by stream, in order."""
    assert server.runtime is not None
    by_stream: dict[str, list[dict]] = defaultdict(list)
    for event in server.runtime.store.events_for(execution_id):
        if event.type == "step_output":
            by_stream[event.data["stream"]].append(dict(event.data))
    return by_stream


def test_fifty_megabytes_of_output_send_one_mebibyte_per_stream_then_a_marker(
    server: ServerThread, client: Client
) -> None:
    loud = (
        f"head -c {FIFTY_MB} /dev/zero | tr '\\0' o; head -c {FIFTY_MB} /dev/zero | tr '\\0' e >&2"
    )
    execution_id = client.create([command("loud", loud, timeout=120)])
    done = client.wait_for_status(execution_id, timeout=120)

    assert done["status"] == "completed"
    step = done["steps"][0]
    assert step["output"].startswith("o" * LIMIT)
    assert step["output"].endswith(
        f"[output truncated: {FIFTY_MB - LIMIT} more bytes not stored]\n"
    )
    streams = live_output(server, execution_id)
    assert sorted(streams) == ["stderr", "stdout"]
    for stream, events in streams.items():
        *texts, marker = events
        assert all(len(e["output"].encode()) <= EVENT_MAX_BYTES for e in events)
        assert "".join(e["output"] for e in texts) == ("o" if stream == "stdout" else "e") * LIMIT
        assert not any(e.get("truncated") for e in texts)
        assert marker["truncated"] is True
        assert f"{stream} beyond {LIMIT} bytes is not sent live" in marker["output"]
    stored = sum(len(e["output"]) for events in streams.values() for e in events)
    assert stored < 2 * LIMIT + 1000  # what the database keeps of the live output


def test_multibyte_characters_survive_reads_events_and_the_cap(
    server: ServerThread, client: Client
) -> None:
    # 'é' is two bytes: after one 'a', every 64 KiB read and event boundary falls inside one.
    script = "import sys; sys.stdout.write('a' + 'é' * 600000)"
    execution_id = client.create([command("utf8", f'python3 -c "{script}"')])
    assert client.wait_for_status(execution_id)["status"] == "completed"

    *texts, marker = live_output(server, execution_id)["stdout"]
    sent = "".join(e["output"] for e in texts)
    assert marker["truncated"] is True
    assert "\ufffd" not in sent
    assert sent == "a" + "é" * ((LIMIT - 1) // 2)  # the cap cut between characters too
    assert all(len(e["output"].encode()) <= EVENT_MAX_BYTES for e in texts)
