"""Secrets end to end, on SQLite and PostgreSQL: a named secret (`${secret.NAME}`) and an
execution's secret variables reach the steps that use them, and show as `***` everywhere
else: the API (a read-only token's view too), the events, the execution socket, the
webhooks and the database's rows, read directly."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy.engine import make_url
from tornado.websocket import websocket_connect

from tests.api.test_events import read_all, ws_url
from tests.api.test_subscriptions import TINY_WEBHOOKS, delete_all_subscriptions, subscribe
from tests.http_target import HttpTarget
from tests.receiver import Receiver
from tests.support import (
    READ_TOKEN,
    TOKEN,
    Client,
    ServerThread,
    command,
    make_settings,
    wait_until,
)

API_SECRET = f"api-{uuid.uuid4().hex}"  # unique: the PostgreSQL database is shared
DB_SECRET = f"db-{uuid.uuid4().hex}"
MASK = "***"


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {**TINY_WEBHOOKS, "secrets": {"API": API_SECRET, "DB": DB_SECRET}}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def same_hash(variable: str, value: str) -> str:
    """A shell test that `$variable` holds `value`, without writing `value` down."""
    return f'test "$(printf %s "${variable}" | sha256sum | cut -c1-64)" = {sha256(value)}'


def database_text(url: str) -> str:
    """Every row of every table, as text, read straight from the database."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        with sqlite3.connect(str(parsed.database)) as db:
            return "\n".join(db.iterdump())
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as db:
        tables = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        return "\n".join(
            row[0]
            for (table,) in tables
            for row in db.execute(f'SELECT row_to_json(t)::text FROM "{table}" t').fetchall()
        )


def everything_shown(server: ServerThread, execution_id: str) -> str:
    """What any token can read about one execution: REST, events and its socket."""
    reader = server.client(READ_TOKEN)
    execution = reader.execution(execution_id)
    shown = [
        execution,
        reader.get(f"/api/executions/{execution_id}/variables").json,
        reader.get(f"/api/events?execution_id={execution_id}&limit=1000").json,
        *(
            reader.get(f"/api/executions/{execution_id}/steps/{step['id']}").json
            for step in execution["steps"]
        ),
    ]

    async def socket() -> list[dict[str, Any]]:
        ws = await websocket_connect(ws_url(server, f"/ws/executions/{execution_id}"))
        return await read_all(ws)

    shown.append(asyncio.run(socket()))
    return orjson.dumps(shown).decode()


def test_a_named_secret_reaches_its_steps_and_shows_nowhere(
    server: ServerThread, client: Client, target: HttpTarget, tmp_path: Path
) -> None:
    execution_id = client.create(
        [
            command(
                "use",
                # the value on the command line and in the environment; echoed to both streams
                f"{same_hash('SYNTHESIS_SECRET_API', API_SECRET)} && "
                'echo "key=${secret.API}" && echo "again $SYNTHESIS_SECRET_API" >&2',
            ),
            {
                "id": "env_only",
                "type": "command",
                "parameters": {
                    "command": f"{same_hash('KEY', API_SECRET)} && echo $KEY; exit 3",
                    "env": {"KEY": "${secret.API}"},
                },
                "continue_on_failure": True,
            },
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "url": f"{target.url}/echo",
                    "headers": {"Authorization": "Bearer ${secret.API}"},
                    "json": {"db": "${secret.DB}"},
                },
            },
            {
                "id": "copy",
                "type": "variable",
                "parameters": {"operation": "set", "name": "copied", "value": "${secret.DB}"},
            },
            {
                "id": "tell",
                "type": "notify",
                "parameters": {"message": "db is ${secret.DB}", "data": {"k": "${secret.API}"}},
            },
        ]
    )
    done = client.wait_for_status(execution_id)
    steps = {s["id"]: s for s in done["steps"]}
    assert done["status"] == "completed", done
    assert steps["use"]["output"] == f"key={MASK}\n"
    assert steps["use"]["error"] == f"again {MASK}\n"
    assert (steps["env_only"]["status"], steps["env_only"]["output"]) == ("failed", f"{MASK}\n")
    call = client.get(f"/api/executions/{execution_id}/steps/call").json
    assert call["parameters"]["headers"] == {"Authorization": f"Bearer {MASK}"}
    echoed = orjson.loads(call["output"])["body"]  # the far side echoed them: masked too
    assert (echoed["headers"]["authorization"], echoed["body"]) == (f"Bearer {MASK}", {"db": MASK})
    assert done["variables"]["copied"] == MASK
    use = client.get(f"/api/executions/{execution_id}/steps/use").json
    assert f'echo "key={MASK}"' in use["parameters"]["command"]

    shown = everything_shown(server, execution_id)
    assert MASK in shown
    for secret in (API_SECRET, DB_SECRET):
        assert secret not in shown
        assert secret not in database_text(server.settings.database)


def test_secret_variables_reach_their_steps_and_show_nowhere(
    server: ServerThread, client: Client
) -> None:
    password, deploy_key, fetched = (f"{n}-{uuid.uuid4().hex}" for n in ("pw", "dk", "tok"))
    execution_id = client.create(
        [
            command(
                "check",
                f"{same_hash('SYNTHESIS_VAR_PASSWORD', password)} && "
                f"{same_hash('SYNTHESIS_VAR_DEPLOY_KEY', deploy_key)} && "
                'echo "$SYNTHESIS_VAR_PASSWORD / $SYNTHESIS_VAR_DEPLOY_KEY"',
            ),
            command("fetch", f"printf {fetched}"),
            {
                "id": "keep",
                "type": "variable",
                "parameters": {"operation": "set", "name": "api_token", "value": "${fetch_output}"},
            },
            command("later", 'echo "token: $SYNTHESIS_VAR_API_TOKEN"'),
        ],
        variables={"password": password, "deploy_key": deploy_key, "region": "eu"},
        secret_variables=["deploy_key"],
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed", done
    assert done["steps"][0]["output"] == f"{MASK} / {MASK}\n"
    assert done["steps"][3]["output"] == f"token: {MASK}\n"
    variables = done["variables"]
    assert (variables["password"], variables["deploy_key"], variables["region"]) == (
        MASK,
        MASK,
        "eu",
    )
    assert variables["api_token"] == MASK
    shown = everything_shown(server, execution_id)
    stored = database_text(server.settings.database)
    for secret in (password, deploy_key):
        assert secret not in shown and secret not in stored
    # a value is masked from the commit that makes it secret: `fetch` printed it before
    # that, so its step keeps what it printed unless both went to the store together;
    # the variables are masked again at each change
    assert done["steps"][1]["output"] in (fetched, MASK)
    assert variables["fetch_output"] == MASK
    # `later` started in the same turn as the `variable` step that made the token secret:
    # its live output was masked too, not only what was stored of it
    events = client.get(f"/api/events?execution_id={execution_id}&limit=1000").json["events"]
    live = [e["payload"] for e in events if e["type"] == "step_output"]
    assert [p["output"] for p in live if p["step_id"] == "later"] == [f"token: {MASK}\n"]
    assert server.runtime.store.get_execution_secrets(execution_id) is None  # forgotten


def test_a_secret_split_across_output_chunks_is_still_masked(
    server: ServerThread, client: Client
) -> None:
    execution_id = client.create(
        [
            {
                "id": "split",
                "type": "command",
                "parameters": {
                    "command": 'printf %s "$KEY" | head -c 12; sleep 0.3; '
                    'printf %s "$KEY" | tail -c +13; echo " done"',
                    "env": {"KEY": "${secret.API}"},
                },
            }
        ]
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed", done
    chunks = [
        e["payload"]["output"]
        for e in client.get(f"/api/events?execution_id={execution_id}&type=step_output").json[
            "events"
        ]
    ]
    assert "".join(reversed(chunks)) == f"{MASK} done\n"
    assert all(API_SECRET[:12] not in chunk for chunk in chunks)


def test_webhooks_carry_no_secret(server: ServerThread, client: Client, receiver: Receiver) -> None:
    hook = f"hook-{uuid.uuid4().hex[:8]}"
    try:
        subscribe(client, receiver.url(hook), types=["step_output", "notification"])
        execution_id = client.create(
            [
                command("say", 'echo "${secret.API}"'),
                {"id": "n", "type": "notify", "parameters": {"message": "${secret.DB}"}},
            ]
        )
        client.wait_for_status(execution_id)
        wait_until(lambda: len([e for e in receiver.events(hook)]) >= 2)
        bodies = orjson.dumps([e for e in receiver.events(hook)]).decode()
        assert MASK in bodies
        assert API_SECRET not in bodies and DB_SECRET not in bodies
    finally:
        delete_all_subscriptions(client)


def test_a_child_plan_keeps_the_secrets_its_parent_gave_it(client: Client) -> None:
    child = client.post(
        "/api/plans",
        {
            "name": "child",
            "steps": [command("check", same_hash("SYNTHESIS_VAR_KEY", API_SECRET))],
        },
    ).json["plan_id"]
    execution_id = client.create(
        [
            {
                "id": "run",
                "type": "plan",
                "parameters": {"plan_id": child, "variables": {"key": "${secret.API}"}},
            }
        ]
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed", done
    child_id = done["variables"]["run_execution_id"]
    assert client.execution(child_id)["variables"]["key"] == MASK
    assert done["variables"]["run_output"]["key"] == MASK  # what the child gave back


def test_unknown_secrets_are_refused_naming_the_field(client: Client) -> None:
    nested = {
        "id": "when",
        "type": "condition",
        "parameters": {
            "if": "true",
            "then": [command("deep", "echo ${secret.NOPE} ${secret.API}")],
        },
    }
    response = client.post(
        "/api/executions", {"plan": {"name": "p", "steps": [nested]}, "start": True}
    )
    assert response.status == 400, response
    assert response.json["error"]["details"] == [
        {
            "field": "plan.steps[0].parameters.then[0].parameters.command",
            "message": "unknown secret 'NOPE': the server has no such secret",
        }
    ]
    stored = client.post("/api/plans", {"name": "p", "steps": [nested]})
    assert stored.status == 400
    assert (
        stored.json["error"]["details"][0]["field"]
        == "steps[0].parameters.then[0].parameters.command"
    )
    for bad in ("password", [""], [1]):
        response = client.post(
            "/api/executions",
            {"plan": {"name": "p", "steps": [command("a", "true")]}, "secret_variables": bad},
        )
        assert response.status == 400
        assert response.json["error"]["details"][0]["field"] == "secret_variables"


def test_a_read_only_token_sees_a_stored_plans_secret_defaults_masked(client: Client) -> None:
    plan_id = client.post(
        "/api/plans",
        {
            "name": "with defaults",
            "variables": {"password": "default-pw-1", "pin": "4321-1234", "user": "ana"},
            "secret_variables": ["pin"],
            "steps": [command("a", "true")],
        },
    ).json["plan_id"]
    writer_view = client.get(f"/api/plans/{plan_id}").json
    assert writer_view["variables"]["password"] == "default-pw-1"  # to edit and put back
    assert writer_view["secret_variables"] == ["pin"]
    reader_view = client.get(f"/api/plans/{plan_id}", token=READ_TOKEN).json
    assert reader_view["variables"] == {"password": MASK, "pin": MASK, "user": "ana"}


def test_secret_variables_survive_a_restart_and_are_forgotten_at_the_end(
    database_url: str, tmp_path: Path
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    first = ServerThread(make_settings(tmp_path, database_url)).start()
    try:
        execution_id = first.client().create(
            [command("check", same_hash("SYNTHESIS_VAR_PASSWORD", password))],
            start=False,
            variables={"password": password},
        )
        kept = first.runtime.store.get_execution_secrets(execution_id)
        assert kept == {"names": ["password"], "variables": {"password": password}}
        assert first.client().execution(execution_id)["variables"]["password"] == MASK
    finally:
        first.stop()
    again = ServerThread(make_settings(tmp_path, database_url)).start()
    try:
        client = again.client()
        assert client.post(f"/api/executions/{execution_id}/start").status == 200
        done = client.wait_for_status(execution_id)
        assert done["status"] == "completed", done
        assert again.runtime.store.get_execution_secrets(execution_id) is None
        assert password not in database_text(database_url)
    finally:
        again.stop()


def test_a_literal_in_a_plan_runs_as_written_when_the_execution_starts_later(
    client: Client,
) -> None:
    """A plan is stored as given (only its secret variables' defaults are masked): an
    execution created now and started later runs the command it was given."""
    script = f"printf %s '{API_SECRET}' | sha256sum | cut -c1-64"
    execution_id = client.create([command("hash", script)], start=False)
    assert client.post(f"/api/executions/{execution_id}/start").status == 200
    done = client.wait_for_status(execution_id)
    assert (done["status"], done["steps"][0]["output"]) == ("completed", sha256(API_SECRET) + "\n")


def test_an_idempotent_answer_keeps_no_secret_variable(
    server: ServerThread, client: Client
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    plan = {"name": "p", "steps": [command("a", "true")], "variables": {"password": password}}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    response = client.request(
        "POST", "/api/executions", {"plan": plan, "start": True}, headers=headers
    )
    assert response.status == 201, response
    client.wait_for_status(response.json["execution_id"])
    assert password not in database_text(server.settings.database)


def test_the_servers_tokens_never_show_in_what_a_step_prints(client: Client) -> None:
    """A step that finds a token (in /proc/<server>/cmdline, say) cannot pass it on to
    readers: the server's tokens are masked like its named secrets."""
    leak = {
        "id": "leak",
        "type": "command",
        "parameters": {"command": 'printf "%s %s" "$A" "$B"', "env": {"A": TOKEN, "B": READ_TOKEN}},
    }
    done = client.wait_for_status(client.create([leak]))
    assert done["steps"][0]["output"] == f"{MASK} {MASK}"
