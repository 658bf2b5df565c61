"""/api/executions: create, list, get, start/pause/resume/cancel, steps, variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from synthesis.actors.messages import Control
from synthesis.actors.recording import control_answer
from synthesis.engine import clock
from synthesis.engine.errors import FieldError, not_found, validation_error
from synthesis.engine.events import new_event_id
from synthesis.engine.plan import check_metadata, check_names, require_object
from synthesis.engine.transitions import (
    ACTIONS,
    CREATED,
    EXECUTION_STATUSES,
    RUNNING,
    STEP_STATUSES,
)
from synthesis.store import ExecutionFilter
from synthesis.web.base import ApiHandler, dumps
from synthesis.web.declare import (
    EMPTY,
    MS_OR_NULL,
    OBJECT,
    PAGE,
    TEXT,
    TEXT_OR_NULL,
    TIME_OR_NULL,
    TIMESTAMP,
    Body,
    Endpoint,
    choice,
    dates,
    or_null,
    page,
    paging,
    path_param,
    ref,
    shape,
)
from synthesis.web.idempotency import Remember, create_execution, create_once
from synthesis.web.plan_schema import SECRET_VARIABLES, STEP_TYPES
from synthesis.web.plans import CREATED_BY, TAG, check_child_plans, checked

_NESTED = re.compile(r"^(.*)(?:\.(?:then|else)|\[\d+\])\.[A-Za-z0-9_-]+$")


EXECUTION_ID = path_param("execution_id", "An execution id")
LANE_STEPS = 100  # a get by id of more steps (about 1 ms a hundred) is read on the read pool
NODE_ID = {
    **TEXT_OR_NULL,
    "description": "The node running it now (GET /api/nodes); null when none",
}


def transition_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """Per action, the name and schema of its answer (actors/recording.control_answer)."""
    result = {}
    for action, (_, target) in ACTIONS.items():
        done = control_answer("", action, target, "")
        (moment,) = (name for name in done if name not in ("execution_id", "status"))
        properties = {name: TIMESTAMP for name in done}
        properties.update(execution_id={"type": "string"}, status={"const": target})
        result[action] = (f"Execution{moment.removesuffix('_at').capitalize()}", shape(properties))
    return result


CREATE = Body(
    "ExecutionCreate",
    {
        "type": "object",
        "properties": {
            "plan": ref("Plan"),
            "variables": {"type": ["object", "null"]},
            "secret_variables": SECRET_VARIABLES,
            "metadata": or_null(ref("Metadata")),
            "start": {
                "type": "boolean",
                "default": False,
                "description": "Create and start in one call",
            },
        },
        "required": ["plan"],
        "additionalProperties": False,
    },
)
STEP_STATE = shape(
    {
        "id": {
            "type": "string",
            "description": "The step id; steps run by a branch or loop iteration "
            "are named after it (`check.then.fix`, `each[2].build`)",
        },
        "type": {"enum": list(STEP_TYPES)},
        "status": {"enum": list(STEP_STATUSES)},
        "started_at": TIME_OR_NULL,
        "completed_at": TIME_OR_NULL,
        "duration_ms": MS_OR_NULL,
        "output": {"description": "A command's stdout, an HTTP response, ..."},
        "error": TEXT_OR_NULL,
        "exit_code": {"type": ["integer", "null"]},
        "attempts": {
            "type": "array",
            "description": "A step with `retry`: each attempt so far",
            "items": shape(
                {
                    "attempt": {"type": "integer", "minimum": 1},
                    "status": {"enum": list(STEP_STATUSES)},
                    "error": TEXT_OR_NULL,
                    "exit_code": {"type": ["integer", "null"]},
                    "started_at": TIME_OR_NULL,
                    "completed_at": TIMESTAMP,
                }
            ),
        },
    },
    optional=("attempts",),
)
SCHEMAS: dict[str, dict[str, Any]] = {
    CREATE.name: CREATE.schema,
    "ExecutionCreated": shape(
        {
            "execution_id": TEXT,
            "status": {"enum": [CREATED, RUNNING]},
            "created_at": TIMESTAMP,
            "started_at": TIMESTAMP,
            "plan": ref("Plan"),
        },
        optional=("started_at",),
    ),
    "ExecutionSummary": shape(
        {
            "execution_id": TEXT,
            "name": TEXT,
            "status": {"enum": list(EXECUTION_STATUSES)},
            "created_at": TIMESTAMP,
            "started_at": TIME_OR_NULL,
            "completed_at": TIME_OR_NULL,
            "created_by": TEXT_OR_NULL,
            "tags": {"type": "array", "items": TEXT},
            "node_id": NODE_ID,
        }
    ),
    "ExecutionList": page("executions", "ExecutionSummary"),
    "StepState": STEP_STATE,
    "StepDetail": {"allOf": [ref("StepState"), shape({"parameters": OBJECT})]},
    "Execution": shape(
        {
            "execution_id": TEXT,
            "status": {"enum": list(EXECUTION_STATUSES)},
            "plan_id": TEXT_OR_NULL,
            "created_at": TIMESTAMP,
            "started_at": TIME_OR_NULL,
            "paused_at": TIME_OR_NULL,
            "completed_at": TIME_OR_NULL,
            "duration_ms": MS_OR_NULL,
            "error": TEXT_OR_NULL,
            "plan": ref("Plan"),
            "steps": {"type": "array", "items": ref("StepState")},
            "variables": OBJECT,
            "metadata": ref("Metadata"),
            "node_id": NODE_ID,
        }
    ),
    "ExecutionSteps": shape(
        {"execution_id": TEXT, "steps": {"type": "array", "items": ref("StepState")}}
    ),
    "ExecutionVariables": shape({"execution_id": TEXT, "variables": OBJECT}),
    **dict(transition_schemas().values()),
}


def in_tree_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps as the plan reads: each control step followed by the steps it ran
    (`each`, `each[0].build`, `each[1].build`, then the step after the loop)."""
    position = {row["step_id"]: row["position"] for row in rows}
    keys: dict[str, tuple[int, ...]] = {}

    def key(step_id: str) -> tuple[int, ...]:
        if step_id not in keys:
            nested = _NESTED.match(step_id)
            parent = nested.group(1) if nested and nested.group(1) in position else None
            keys[step_id] = (key(parent) if parent else ()) + (position[step_id],)
        return keys[step_id]

    return sorted(rows, key=lambda row: key(row["step_id"]))


def step_view(row: dict[str, Any], with_parameters: bool = False) -> dict[str, Any]:
    view = {
        "id": row["step_id"],
        "type": row["type"],
        "status": row["status"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": row["duration_ms"],
    }
    if with_parameters:
        view["parameters"] = row["parameters"]
    view.update(output=row["output"], error=row["error"], exit_code=row["exit_code"])
    if row["attempts"] is not None:
        view["attempts"] = row["attempts"]
    return view


def execution_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "execution_id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "created_by": row["created_by"],
        "tags": row["meta"].get("tags") or [],
        "node_id": row["node_id"],
    }


def execution_detail(row: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "execution_id": row["id"],
        "status": row["status"],
        "plan_id": row["plan_id"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "paused_at": row["paused_at"],
        "completed_at": row["completed_at"],
        "duration_ms": clock.duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
        "plan": row["plan"],
        "steps": [step_view(s) for s in in_tree_order(steps)],
        "variables": row["variables"],
        "metadata": row["meta"],
        "node_id": row["node_id"],
    }


class ExecutionsHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/executions",
            "listExecutions",
            "Executions",
            "List executions, newest first",
            ok=(200, "A page of executions", "ExecutionList"),
            query=(
                choice("status", EXECUTION_STATUSES, "Only this status"),
                TAG,
                CREATED_BY,
                *dates("Created"),
                *PAGE,
            ),
        ),
        Endpoint(
            "post",
            "/api/executions",
            "createExecution",
            "Executions",
            "Create an execution of an inline plan (and start it with `start: true`)",
            ok=(201, "Created", "ExecutionCreated"),
            errors=(409, 503),
            body=CREATE,
            idempotent=True,
        ),
    )

    async def get(self) -> None:
        q = self.query()
        flt = ExecutionFilter(
            **vars(paging(q)),
            tag=q["tag"],
            created_by=q["created_by"],
            from_date=q["from_date"],
            to_date=q["to_date"],
            status=q["status"],
        )
        page = await self.read_page(self.runtime.store.list_executions, flt)
        self.send_page(page, "executions", [execution_summary(r) for r in page.rows])

    async def post(self) -> None:
        body = self.json_body()
        await create_once(self, body, lambda remember: self._create(body, remember))

    async def _create(self, body: dict[str, Any], remember: Remember | None) -> tuple[int, Any]:
        if "plan" not in body:
            raise validation_error([FieldError("plan", "is required")])
        errors = check_metadata(body.get("metadata"), "metadata")
        errors += check_names(body.get("secret_variables"), "secret_variables")
        if not isinstance(body.get("start", False), bool):
            errors.append(FieldError("start", "must be a boolean"))
        if errors:
            raise validation_error(errors)
        plan = await checked(self, body["plan"], "plan")
        await check_child_plans(self, plan, field="plan.steps")
        variables = require_object(body.get("variables"), "variables")
        metadata = {**plan.metadata, **require_object(body.get("metadata"), "metadata")}
        if "created_by" not in metadata and self.principal.subject:
            metadata["created_by"] = self.principal.subject
        execution_id = new_event_id()  # a v4 UUID, from pooled random bytes
        start = body.get("start", False)

        def answer(result: Mapping[str, Any]) -> dict[str, Any]:
            return {"execution_id": execution_id, **result, "plan": plan.document}

        fields = (execution_id, plan, variables, metadata, start)
        secret = tuple(body.get("secret_variables") or ())
        return await create_execution(self, remember, answer, *fields, secret_variables=secret)


class ExecutionHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/executions/{execution_id}",
            "getExecution",
            "Executions",
            "An execution with its plan, steps, variables and metadata",
            ok=(200, "The execution", "Execution"),
            errors=(404,),
            params=(EXECUTION_ID,),
        ),
    )

    async def get(self, execution_id: str) -> None:
        """Read on the read lane, unless the execution has more than LANE_STEPS steps:
        then read and encoded on the read pool, so that a big one asked again and again
        holds up neither the lane's quick reads nor the IOLoop."""
        self.query()
        read = self.runtime.store.execution_and_steps
        row, steps = await self.runtime.read_quick(read, execution_id, LANE_STEPS)
        if row is None:
            raise not_found("execution", execution_id)
        if steps is not None:
            self.send(execution_detail(row, steps))
            return

        def big() -> bytes | None:
            """A read pool thread."""
            row, steps = read(execution_id)
            return None if row is None else dumps(execution_detail(row, steps or []))

        body = await self.runtime.read(big)
        if body is None:
            raise not_found("execution", execution_id)
        self.send_encoded(body)


class ExecutionActionHandler(ApiHandler):
    endpoints = tuple(
        Endpoint(
            "post",
            f"/api/executions/{{execution_id}}/{action}",
            f"{action}Execution",
            "Executions",
            f"{action.capitalize()} an execution that is {' or '.join(sorted(allowed))}",
            ok=(200, "Done", transition_schemas()[action][0]),
            errors=(404, 409, 503),
            params=(EXECUTION_ID,),
            body=EMPTY,
        )
        for action, (allowed, _) in ACTIONS.items()
    )

    async def post(self, execution_id: str, action: str) -> None:
        self.json_body()
        result = await self.runtime.ask_supervisor(
            lambda reply: Control(execution_id, action, reply)
        )
        self.send(result)


class ExecutionStepsHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/executions/{execution_id}/steps",
            "listExecutionSteps",
            "Executions",
            "An execution's steps, each control step followed by the steps it ran",
            ok=(200, "The steps", "ExecutionSteps"),
            errors=(404,),
            params=(EXECUTION_ID,),
        ),
    )

    async def get(self, execution_id: str) -> None:
        self.query()
        store = self.runtime.store
        row, steps = await self.read(
            lambda: (store.execution_status(execution_id), store.list_steps(execution_id))
        )
        if row is None:
            raise not_found("execution", execution_id)
        self.send(
            {"execution_id": execution_id, "steps": [step_view(s) for s in in_tree_order(steps)]}
        )


class ExecutionStepHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/executions/{execution_id}/steps/{step_id}",
            "getExecutionStep",
            "Executions",
            "One step of an execution, with its parameters",
            ok=(200, "The step", "StepDetail"),
            errors=(404,),
            params=(EXECUTION_ID, path_param("step_id", "A step id")),
        ),
    )

    async def get(self, execution_id: str, step_id: str) -> None:
        self.query()
        step = await self.read(self.runtime.store.get_step, execution_id, step_id)
        if step is None:
            exists = await self.read(self.runtime.store.execution_status, execution_id)
            if exists is None:
                raise not_found("execution", execution_id)
            raise not_found("step", step_id)
        self.send(step_view(step, with_parameters=True))


class ExecutionVariablesHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/executions/{execution_id}/variables",
            "getExecutionVariables",
            "Executions",
            "An execution's variables",
            ok=(200, "The variables", "ExecutionVariables"),
            errors=(404,),
            params=(EXECUTION_ID,),
        ),
    )

    async def get(self, execution_id: str) -> None:
        self.query()
        row = await self.read(self.runtime.store.get_execution, execution_id)
        if row is None:
            raise not_found("execution", execution_id)
        self.send({"execution_id": execution_id, "variables": row["variables"]})


_ID = r"([^/]+)"
default_handlers = [
    (r"/api/executions", ExecutionsHandler),
    (rf"/api/executions/{_ID}", ExecutionHandler),
    (rf"/api/executions/{_ID}/(start|pause|resume|cancel)", ExecutionActionHandler),
    (rf"/api/executions/{_ID}/steps", ExecutionStepsHandler),
    (rf"/api/executions/{_ID}/steps/{_ID}", ExecutionStepHandler),
    (rf"/api/executions/{_ID}/variables", ExecutionVariablesHandler),
]
