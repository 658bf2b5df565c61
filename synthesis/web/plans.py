"""/api/plans: create, list, get, replace, delete, execute; and the checks, shared with
inline plans, that every `plan` step names a stored plan without recursion and that the
plan keeps to the operator's policy (its secrets exist, its integrations are on)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from synthesis.actors.messages import Commit
from synthesis.engine import clock
from synthesis.engine import events as ev
from synthesis.engine.errors import FieldError, not_found, validation_error
from synthesis.engine.events import Event, new_event_id
from synthesis.engine.plan import (
    MAX_CHILD_DEPTH,
    NESTED_STEP_LISTS,
    Plan,
    check_metadata,
    check_names,
    child_plan_ids,
    raw_steps,
    require_object,
    validate_plan,
)
from synthesis.engine.secrets import NO_MASK, SecretScope, unknown_references
from synthesis.engine.transitions import RUNNING
from synthesis.integrations import STEP_INTEGRATIONS, STEP_SCHEMAS, disabled_message
from synthesis.store import PlanDeleted, PlanFilter, PlanSaved
from synthesis.web.base import ApiHandler
from synthesis.web.declare import (
    OBJECT,
    PAGE,
    TEXT,
    TEXT_OR_NULL,
    TIME_OR_NULL,
    TIMESTAMP,
    Body,
    Endpoint,
    dates,
    or_null,
    page,
    paging,
    path_param,
    ref,
    shape,
    text,
)
from synthesis.web.idempotency import Remember, create_execution, create_once
from synthesis.web.plan_schema import SECRET_VARIABLES, plan_schema

PLAN_ID = path_param("plan_id", "A plan id")
TAG = text("tag", "Only those with this tag")
CREATED_BY = text("created_by", "Only those made by this creator")
PLAN = Body("Plan", plan_schema())
EXECUTE = Body(
    "PlanExecute",
    {
        "type": "object",
        "properties": {
            "variables": {"type": ["object", "null"]},
            "secret_variables": SECRET_VARIABLES,
            "metadata": or_null(ref("Metadata")),
        },
        "additionalProperties": False,
    },
    required=False,
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "PlanSummary": shape(
        {
            "plan_id": TEXT,
            "name": TEXT,
            "description": TEXT_OR_NULL,
            "created_at": TIMESTAMP,
            "updated_at": TIME_OR_NULL,
            "created_by": TEXT_OR_NULL,
            "tags": {"type": "array", "items": TEXT},
        }
    ),
    "PlanList": page("plans", "PlanSummary"),
    "StoredPlan": shape(
        {
            "plan_id": TEXT,
            "name": TEXT,
            "description": TEXT_OR_NULL,
            "created_at": TIMESTAMP,
            "updated_at": TIME_OR_NULL,
            "steps": {"type": "array", "items": ref("Step")},
            "variables": OBJECT,
            "secret_variables": {"type": "array", "items": TEXT},
            "metadata": ref("Metadata"),
        },
        optional=("secret_variables",),
    ),
    EXECUTE.name: EXECUTE.schema,
    "PlanExecution": shape(
        {
            "execution_id": TEXT,
            "status": {"const": RUNNING},
            "created_at": TIMESTAMP,
            "started_at": TIMESTAMP,
            "plan_id": TEXT,
        }
    ),
    "Deleted": shape({"success": {"const": True}, "message": TEXT}),
}
INLINE_STEPS = 200  # plans up to this size are checked on the IOLoop, bigger ones off it


def _nests(steps: list[Any]) -> bool:
    """Does any top-level step carry nested steps (a condition's branches, a loop body)?"""
    return any(
        isinstance(step, dict)
        and isinstance(params := step.get("parameters"), dict)
        and any(k in params for k in _NESTED)
        for step in steps
    )


async def checked(handler: ApiHandler, document: Any, field: str) -> Plan:
    """validate_plan with the server's limits, then its policy (`check_policy`). Checking
    10,000 steps takes a third of a second: a big plan is checked on the read pool, so the
    IOLoop goes on serving."""
    limits = handler.runtime.settings.plan_limits

    def check() -> Plan:  # pure: on the IOLoop for a small plan, else on the read pool
        plan = validate_plan(document, STEP_SCHEMAS, field, limits)
        check_policy(handler, plan, f"{field}.steps" if field else "steps")
        return plan

    steps = document.get("steps") if isinstance(document, dict) else None
    if isinstance(steps, list) and len(steps) <= INLINE_STEPS and not _nests(steps):
        return check()
    return await handler.read(check)


async def check_child_plans(
    handler: ApiHandler, plan: Plan, own_id: str | None = None, field: str = "steps"
) -> None:
    """Every plan a `plan` step names must exist, and following them must neither come
    back to `own_id` nor nest deeper than MAX_CHILD_DEPTH."""
    store = handler.runtime.store
    frontier = child_plan_ids(plan.document.get("steps"))
    errors: list[FieldError] = []
    seen: set[str] = set()
    depth = 1
    while frontier and not errors:
        if own_id in frontier:
            errors.append(
                FieldError(field, "a plan cannot run itself, directly or through its child plans")
            )
            break
        if depth > MAX_CHILD_DEPTH:
            errors.append(FieldError(field, f"child plans nest deeper than {MAX_CHILD_DEPTH}"))
            break
        documents = await handler.read(store.plan_documents, frontier)
        if depth == 1:
            errors.extend(
                FieldError(field, f"unknown child plan {missing!r}")
                for missing in sorted(frontier - documents.keys())
            )
        seen |= frontier
        frontier = set().union(*(child_plan_ids(d.get("steps")) for d in documents.values()))
        if own_id is None:
            frontier -= seen  # without an id of its own, a new plan only meets old loops
        depth += 1
    if errors:
        raise validation_error(errors)


def check_policy(handler: ApiHandler, plan: Plan, field: str = "steps") -> None:
    """Every `${secret.NAME}` names one of the server's secrets, and no step needs an
    integration the operator turned off (`--integrations`)."""
    runtime = handler.runtime
    errors: list[FieldError] = []
    for where, raw in raw_steps(plan.document.get("steps"), field):
        integration = STEP_INTEGRATIONS.get(raw.get("type", ""))
        if integration in runtime.disabled:
            errors.append(FieldError(f"{where}.type", disabled_message(raw["type"], integration)))
        params = {k: v for k, v in (raw.get("parameters") or {}).items() if k not in _NESTED}
        errors.extend(
            FieldError(path, f"unknown secret {name!r}: the server has no such secret")
            for path, name in unknown_references(
                params, runtime.settings.secrets, f"{where}.parameters"
            )
        )
    if errors:
        raise validation_error(errors)


_NESTED = (*NESTED_STEP_LISTS, "if", "while")  # step lists and expressions: no ${...}


def plan_view(row: dict[str, Any], masked: bool = False) -> dict[str, Any]:
    """A stored plan; `masked` (a read-only token's view) shows the defaults of its secret
    variables as `***`."""
    document = row["document"]
    variables = document.get("variables", {})
    secret = document.get("secret_variables")
    if masked:
        scope = SecretScope(set(secret or ()))
        scope.declare((), variables)
        variables = scope.view(variables, NO_MASK)
    view = {
        "plan_id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "steps": document["steps"],
        "variables": variables,
        "metadata": row["meta"],
    }
    if secret is not None:
        view["secret_variables"] = secret
    return view


class PlanWriter(ApiHandler):
    """What create and replace share: validate the body, record it through the bus."""

    async def checked_plan(self, own_id: str | None = None) -> Plan:
        body = self.json_body()
        plan = await checked(self, body, "")
        await check_child_plans(self, plan, own_id)
        return plan

    def plan_row(self, plan_id: str, plan: Plan, created_at: str) -> dict[str, Any]:
        metadata = dict(plan.metadata)
        if "created_by" not in metadata and self.principal.subject:
            metadata["created_by"] = self.principal.subject
        return {
            "id": plan_id,
            "name": plan.name,
            "description": plan.description,
            "document": dict(plan.document),
            "meta": metadata,
            "created_by": metadata.get("created_by"),
            "created_at": created_at,
        }

    async def record(self, change: Any, kind: str, plan_id: str, name: str, *also: Any) -> None:
        """Store `change` and its event (and `also`, changes of the same commit)."""
        event = Event(kind, {"plan_id": plan_id, "name": name})
        await self.runtime.bridge.ask(
            self.runtime.bus,
            lambda reply: Commit(changes=(change, *also), events=(event,), on_stored=reply),
        )


class PlansHandler(PlanWriter):
    endpoints = (
        Endpoint(
            "get",
            "/api/plans",
            "listPlans",
            "Plans",
            "List stored plans, newest first",
            ok=(200, "A page of plans", "PlanList"),
            query=(TAG, CREATED_BY, *dates("Created"), *PAGE),
        ),
        Endpoint(
            "post",
            "/api/plans",
            "createPlan",
            "Plans",
            "Store a plan",
            ok=(201, "Stored", "StoredPlan"),
            errors=(409, 503),
            body=PLAN,
            idempotent=True,
        ),
    )

    async def get(self) -> None:
        q = self.query()
        flt = PlanFilter(
            **vars(paging(q)),
            tag=q["tag"],
            created_by=q["created_by"],
            from_date=q["from_date"],
            to_date=q["to_date"],
        )
        page = await self.read_page(self.runtime.store.list_plans, flt)
        plans = [
            {
                "plan_id": r["id"],
                "name": r["name"],
                "description": r["description"],
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
                "created_by": r["created_by"],
                "tags": r["meta"].get("tags") or [],
            }
            for r in page.rows
        ]
        self.send_page(page, "plans", plans)

    async def post(self) -> None:
        await create_once(self, self.json_body(), self._create)

    async def _create(self, remember: Remember | None) -> tuple[int, Any]:
        plan = await self.checked_plan()
        row = self.plan_row(str(uuid.uuid4()), plan, clock.now())
        tags = tuple(row["meta"].get("tags") or ())
        answer = plan_view({**row, "updated_at": None})
        also = (remember.saved(201, answer),) if remember else ()
        saved = PlanSaved(row, tags, created=True)
        await self.record(saved, ev.PLAN_CREATED, row["id"], plan.name, *also)
        return 201, answer


class PlanHandler(PlanWriter):
    endpoints = (
        Endpoint(
            "get",
            "/api/plans/{plan_id}",
            "getPlan",
            "Plans",
            "A stored plan",
            ok=(200, "The plan", "StoredPlan"),
            errors=(404,),
            params=(PLAN_ID,),
        ),
        Endpoint(
            "put",
            "/api/plans/{plan_id}",
            "replacePlan",
            "Plans",
            "Replace a stored plan",
            ok=(200, "Replaced", "StoredPlan"),
            errors=(404, 503),
            params=(PLAN_ID,),
            body=PLAN,
        ),
        Endpoint(
            "delete",
            "/api/plans/{plan_id}",
            "deletePlan",
            "Plans",
            "Delete a stored plan",
            ok=(200, "Deleted", "Deleted"),
            errors=(404, 503),
            params=(PLAN_ID,),
        ),
    )

    async def get(self, plan_id: str) -> None:
        self.query()
        row = await self.read(self.runtime.store.get_plan, plan_id)
        if row is None:
            raise not_found("plan", plan_id)
        self.send(plan_view(row, masked="write" not in self.principal.scopes))

    async def put(self, plan_id: str) -> None:
        existing = await self.read(self.runtime.store.get_plan, plan_id)
        if existing is None:
            raise not_found("plan", plan_id)
        plan = await self.checked_plan(own_id=plan_id)
        row = {**self.plan_row(plan_id, plan, existing["created_at"]), "updated_at": clock.now()}
        tags = tuple(row["meta"].get("tags") or ())
        await self.record(PlanSaved(row, tags, created=False), ev.PLAN_UPDATED, plan_id, plan.name)
        self.send(plan_view(row))

    async def delete(self, plan_id: str) -> None:
        existing = await self.read(self.runtime.store.get_plan, plan_id)
        if existing is None:
            raise not_found("plan", plan_id)
        await self.record(PlanDeleted(plan_id), ev.PLAN_DELETED, plan_id, existing["name"])
        self.send({"success": True, "message": "Plan deleted successfully"})


class PlanExecuteHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "post",
            "/api/plans/{plan_id}/execute",
            "executePlan",
            "Plans",
            "Create and start an execution of a stored plan",
            ok=(201, "Started", "PlanExecution"),
            errors=(404, 409, 503),
            params=(PLAN_ID,),
            body=EXECUTE,
            idempotent=True,
        ),
    )

    async def post(self, plan_id: str) -> None:
        body = self.json_body()
        await create_once(self, body, lambda remember: self._start_plan(plan_id, body, remember))

    async def _start_plan(
        self, plan_id: str, body: dict[str, Any], remember: Remember | None
    ) -> tuple[int, Any]:
        variables = require_object(body.get("variables"), "variables")
        errors = check_metadata(body.get("metadata"), "metadata")
        errors += check_names(body.get("secret_variables"), "secret_variables")
        if errors:
            raise validation_error(errors)
        row = await self.read(self.runtime.store.get_plan, plan_id)
        if row is None:
            raise not_found("plan", plan_id)
        plan = await checked(self, row["document"], "")
        metadata = {**row["meta"], **require_object(body.get("metadata"), "metadata")}
        if "created_by" not in (body.get("metadata") or {}) and self.principal.subject:
            metadata["created_by"] = self.principal.subject
        execution_id = new_event_id()  # a v4 UUID, from pooled random bytes

        def answer(result: Mapping[str, Any]) -> dict[str, Any]:
            return {"execution_id": execution_id, **result, "plan_id": plan_id}

        fields = (execution_id, plan, variables, metadata, True, plan_id)
        secret = tuple(body.get("secret_variables") or ())
        return await create_execution(self, remember, answer, *fields, secret_variables=secret)


_ID = r"([^/]+)"
default_handlers = [
    (r"/api/plans", PlansHandler),
    (rf"/api/plans/{_ID}", PlanHandler),
    (rf"/api/plans/{_ID}/execute", PlanExecuteHandler),
]
