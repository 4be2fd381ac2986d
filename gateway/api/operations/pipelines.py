"""Control API operations on pipelines' lifecycle: create, update (a new
spec version), list, inspect, stop, start and delete. Listing and inspecting
show each pipeline's newest job (jobs: operations/jobs.py)."""

from __future__ import annotations

from typing import Any

from gateway.api import encode
from gateway.api.errors import ApiError, bad_request
from gateway.api.table import PAGE, Call, Param, named_page, op
from versioning.control import Control

NAME = Param("name", "path", "pipeline name (also its output repo's)", True)
_SPEC = {"spec": "the pipeline spec, a JSON object (Pachyderm's format)"}


def _spec(call: Call) -> dict[str, Any]:
    spec = call.body.get("spec")
    if not isinstance(spec, dict):
        raise bad_request("the JSON body needs the field 'spec', a JSON object")
    return spec


@op(
    "POST",
    "/pipelines",
    "Create a pipeline from a spec, and its output repo (the pipeline's name)",
    body=_SPEC,
    required=("spec",),
    returns="Pipeline",
    status=201,
)
async def create_pipeline(ctl: Control, call: Call) -> Any:
    return encode.pipeline(await ctl.pipelines.create(_spec(call)))


@op("GET", "/pipelines", "List pipelines", params=PAGE, returns="list:Pipeline")
async def list_pipelines(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    after = call.q("cursor") or ""
    found = [p for p in await ctl.pipelines.list() if p.name > after]
    last = await ctl.jobs.last_jobs()
    return named_page([encode.pipeline(p, last.get(p.name)) for p in found[: limit + 1]], limit)


@op(
    "GET",
    "/pipelines/{name}",
    "Inspect a pipeline: its current spec, version, state, salt and input repos",
    params=(NAME,),
    returns="Pipeline",
)
async def inspect_pipeline(ctl: Control, call: Call) -> Any:
    found = await ctl.pipelines.inspect(call.params["name"])
    last = await ctl.jobs.last_jobs()
    return encode.pipeline(found, last.get(found.name))


@op(
    "POST",
    "/pipelines/{name}/versions",
    "Update a pipeline: a new version of its spec (the salt is kept unless reprocess)",
    params=(NAME,),
    body={**_SPEC, "reprocess": "a new salt: the next job reprocesses every datum"},
    required=("spec",),
    returns="Pipeline",
    status=201,
)
async def update_pipeline(ctl: Control, call: Call) -> Any:
    reprocess = call.field("reprocess", False)
    if reprocess is not None and not isinstance(reprocess, bool):
        raise bad_request("field 'reprocess' must be true or false")
    updated = await ctl.pipelines.update(call.params["name"], _spec(call), bool(reprocess))
    return encode.pipeline(updated)


@op(
    "POST",
    "/pipelines/{name}/stop",
    "Stop a pipeline: no new jobs until it is started",
    params=(NAME,),
    returns="Pipeline",
)
async def stop_pipeline(ctl: Control, call: Call) -> Any:
    return encode.pipeline(await ctl.pipelines.stop(call.params["name"]))


@op(
    "POST",
    "/pipelines/{name}/start",
    "Start a stopped pipeline",
    params=(NAME,),
    returns="Pipeline",
)
async def start_pipeline(ctl: Control, call: Call) -> Any:
    return encode.pipeline(await ctl.pipelines.start(call.params["name"]))


@op(
    "DELETE",
    "/pipelines/{name}",
    "Delete a pipeline and its spec versions; its output repo goes to the trash "
    "(restorable) unless keep_repo=true",
    params=(
        NAME,
        Param("confirm", "query", "must be true", True),
        Param("keep_repo", "query", "true: keep the output repo"),
    ),
    status=204,
)
async def delete_pipeline(ctl: Control, call: Call) -> Any:
    name = call.params["name"]
    if call.q("confirm") != "true":
        raise ApiError(
            400,
            "confirmation_required",
            f"deleting pipeline {name} deletes its spec versions and (unless keep_repo=true) "
            "moves its output repo to the trash; repeat with confirm=true",
        )
    keep = call.q("keep_repo", "false")
    if keep not in ("true", "false"):
        raise bad_request("keep_repo must be true or false")
    await ctl.pipelines.delete(name, keep_repo=keep == "true")
    return None
