"""/api/executions: create, list, get, start/pause/resume/cancel, steps, variables."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from synthesis.actors.messages import Control
from synthesis.engine import clock
from synthesis.engine.errors import FieldError, not_found, validation_error
from synthesis.engine.plan import check_metadata, check_names, require_object
from synthesis.engine.transitions import EXECUTION_STATUSES
from synthesis.store import ExecutionFilter
from synthesis.web.base import ApiHandler, choice_param, date_params, page_params
from synthesis.web.idempotency import Remember, create_execution, create_once
from synthesis.web.plans import check_child_plans, checked

_NESTED = re.compile(r"^(.*)(?:\.(?:then|else)|\[\d+\])\.[A-Za-z0-9_-]+$")


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
    async def get(self) -> None:
        query = self.query(
            ("status", "tag", "created_by", "from_date", "to_date", "limit", "offset")
        )
        errors: list[FieldError] = []
        limit, offset = page_params(query, errors)
        from_date, to_date = date_params(query, errors)
        status = choice_param(query, "status", EXECUTION_STATUSES, errors)
        if errors:
            raise validation_error(errors)
        flt = ExecutionFilter(
            query.get("tag"), query.get("created_by"), from_date, to_date, limit, offset, status
        )
        total, rows = await self.read(self.runtime.store.list_executions, flt)
        self.send(
            {
                "total": total,
                "offset": offset,
                "limit": limit,
                "executions": [execution_summary(r) for r in rows],
            }
        )

    async def post(self) -> None:
        body = self.json_body(("plan", "variables", "secret_variables", "metadata", "start"))
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
        execution_id = str(uuid.uuid4())
        start = body.get("start", False)

        def answer(result: Mapping[str, Any]) -> dict[str, Any]:
            return {"execution_id": execution_id, **result, "plan": plan.document}

        fields = (execution_id, plan, variables, metadata, start)
        secret = tuple(body.get("secret_variables") or ())
        return await create_execution(self, remember, answer, *fields, secret_variables=secret)


class ExecutionHandler(ApiHandler):
    async def get(self, execution_id: str) -> None:
        self.query(())
        store = self.runtime.store
        row, steps = await self.read(
            lambda: (store.get_execution(execution_id), store.list_steps(execution_id))
        )
        if row is None:
            raise not_found("execution", execution_id)
        self.send(execution_detail(row, steps))


class ExecutionActionHandler(ApiHandler):
    async def post(self, execution_id: str, action: str) -> None:
        self.json_body(())
        result = await self.runtime.ask_supervisor(
            lambda reply: Control(execution_id, action, reply)
        )
        self.send(result)


class ExecutionStepsHandler(ApiHandler):
    async def get(self, execution_id: str) -> None:
        self.query(())
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
    async def get(self, execution_id: str, step_id: str) -> None:
        self.query(())
        step = await self.read(self.runtime.store.get_step, execution_id, step_id)
        if step is None:
            exists = await self.read(self.runtime.store.execution_status, execution_id)
            if exists is None:
                raise not_found("execution", execution_id)
            raise not_found("step", step_id)
        self.send(step_view(step, with_parameters=True))


class ExecutionVariablesHandler(ApiHandler):
    async def get(self, execution_id: str) -> None:
        self.query(())
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
