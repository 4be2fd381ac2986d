"""Control API: the plan preview of a pipeline spec (`loxo pipeline plan`):
which datums a job would run, skip, or whose outputs it would remove, each
with its reason, before anything runs. Nothing is written.

The whole plan is one response (no pagination): fine for 10,000s of datums;
a paginated plan is for later.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.api.errors import ApiError, bad_request
from gateway.api.table import Call, op
from versioning.control import Control
from versioning.errors import PipelineNotFound
from versioning.pipelines.cron import effective
from versioning.pipelines.planner import PlannedItem, SpecPlan
from versioning.pipelines.spec import ReprocessSpec, SpecError, parse_spec


def _item(d: PlannedItem) -> dict[str, Any]:
    return {
        "id": d.id,
        "decision": d.decision,
        "reason": d.reason,
        "inputs": [
            {
                "name": i.name,
                "repo": i.repo,
                "branch": i.branch,
                "commit": i.commit or None,
                "path": i.path,
                "files": i.files,
                "bytes": i.bytes,
            }
            for i in d.inputs
        ],
    }


def plan_json(plan: SpecPlan) -> dict[str, Any]:
    return {
        "pipeline": plan.pipeline,
        "datums": [_item(d) for d in plan.datums],
        "totals": plan.totals,
    }


def invalid_spec(exc: SpecError) -> ApiError:
    return ApiError(400, "invalid_spec", str(exc), field=exc.field)


@op(
    "POST",
    "/pipelines/plan",
    "Plan a pipeline spec without running it: the datums a job would run now, those it "
    "would skip, and the outputs it would remove, each with its reason",
    body={
        "spec": "the pipeline spec (Pachyderm's JSON format, as `loxo pipeline validate`)",
        "reprocess": "preview an update with --reprocess: every datum runs",
    },
    required=("spec",),
    returns="PipelinePlan",
)
async def plan_pipeline(ctl: Control, call: Call) -> Any:
    raw = call.body.get("spec")
    if not isinstance(raw, dict):
        raise bad_request("the JSON body needs the field 'spec', a pipeline spec object")
    reprocess = call.field("reprocess", False)
    if reprocess is not None and not isinstance(reprocess, bool):
        raise bad_request("field 'reprocess' must be true or false")
    try:
        spec = parse_spec(raw)
    except SpecError as exc:
        raise invalid_spec(exc) from None
    # An existing pipeline (an update's preview): compare with its past datums
    # under its salt, as its next job would.
    try:
        current = await ctl.pipelines.inspect(spec.name)
    except PipelineNotFound:
        previous, salt = {}, ""
    else:
        previous, salt = await ctl.jobs.past(current.name, current.salt), current.salt
        spec = effective(spec)  # its cron inputs have repos now
    if reprocess:
        spec = dataclasses.replace(spec, reprocess_spec=ReprocessSpec.EVERY_JOB)
    try:
        plan = await ctl.pipeline_planner.plan(spec, previous, salt)
    except SpecError as exc:
        raise invalid_spec(exc) from None
    return plan_json(plan)
