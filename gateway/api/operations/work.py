"""Control API: the worker protocol (docs/design/jobs.md). Workers lease
datums, heartbeat while they run them, and report each attempt's outcome;
they reach the server through this and S3 only."""

from __future__ import annotations

from typing import Any

from gateway.api.errors import bad_request
from gateway.api.table import Call, op
from versioning.control import Control
from versioning.pipelines.jobs import MAX_LEASE_BATCH, Completion

MAX_WAIT_SECONDS = 30.0
OUTCOMES = ("success", "failed", "recovered")


def _worker(call: Call) -> str:
    worker = call.text("worker")
    assert worker is not None
    if not worker or len(worker) > 200:
        raise bad_request("field 'worker' must be a name of 1 to 200 characters")
    return worker


def _number(call: Call, name: str, default: float, low: float, high: float) -> float:
    value = call.body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"field {name!r} must be a number from {low:g} to {high:g}")
    return float(value)


def _names(call: Call, name: str, what: str) -> list[str] | None:
    value = call.body.get(name)
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(x, str) for x in value)
    ):
        raise bad_request(f"field {name!r} must be a list of {what}")
    return value


@op(
    "POST",
    "/work/lease",
    "Lease datums to run (long-polls up to wait_seconds for one)",
    body={
        "worker": "the worker's name",
        "max": f"how many datums at most, 1..{MAX_LEASE_BATCH} (default 1)",
        "wait_seconds": f"wait this long for work, 0..{MAX_WAIT_SECONDS:g} (default 0)",
        "pipelines": "only datums of these pipelines (a worker dedicated to them)",
        "jobs": "only datums of these jobs (a Kubernetes pod runs its own job's datums only)",
    },
    required=("worker",),
    returns="Leases",
)
async def lease_datums(ctl: Control, call: Call) -> Any:
    worker = _worker(call)
    limit = int(_number(call, "max", 1, 1, MAX_LEASE_BATCH))
    wait = _number(call, "wait_seconds", 0, 0, MAX_WAIT_SECONDS)
    pipelines = _names(call, "pipelines", "pipeline names")
    jobs = _names(call, "jobs", "job ids")
    items = await ctl.jobs.lease(worker, limit, wait, pipelines, call.disconnected, jobs=jobs)
    return {"lease_seconds": ctl.jobs.lease_seconds, "items": items}


@op(
    "POST",
    "/work/heartbeat",
    "Extend the leases of running attempts; answers the attempts no longer held",
    body={"worker": "the worker's name", "attempts": "the attempt ids it runs"},
    required=("worker", "attempts"),
    returns="Heartbeat",
)
async def heartbeat(ctl: Control, call: Call) -> Any:
    _worker(call)
    attempts = call.body.get("attempts")
    if not isinstance(attempts, list) or not all(isinstance(a, str) for a in attempts):
        raise bad_request("field 'attempts' must be a list of attempt ids")
    if len(attempts) > 10_000:
        raise bad_request("field 'attempts' holds at most 10000 ids")
    return {"lost": await ctl.jobs.heartbeat(attempts)}


@op(
    "POST",
    "/work/complete",
    "Report an attempt's outcome (success, failed or recovered), its logs and timings",
    body={
        "attempt": "the attempt id",
        "worker": "the worker's name",
        "outcome": "success, failed or recovered",
        "exit_code": "the command's exit code",
        "stdout": "its standard output (the tail)",
        "stderr": "its standard error (the tail)",
        "error": "what went wrong, when the worker knows",
        "timings": "seconds spent: {download, process, upload}",
    },
    required=("attempt", "outcome"),
    returns="Completed",
)
async def complete_datum(ctl: Control, call: Call) -> Any:
    attempt = call.text("attempt")
    outcome = call.text("outcome")
    assert attempt is not None and outcome is not None
    if outcome not in OUTCOMES:
        raise bad_request(f"field 'outcome' must be one of {', '.join(OUTCOMES)}")
    exit_code = call.body.get("exit_code")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise bad_request("field 'exit_code' must be an integer")
    texts = {}
    for name in ("stdout", "stderr", "error"):
        value = call.body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise bad_request(f"field {name!r} must be a string")
        texts[name] = value
    timings = call.body.get("timings") or {}
    if not isinstance(timings, dict):
        raise bad_request("field 'timings' must be an object of seconds")
    seconds = {}
    for name in ("download", "process", "upload"):
        value = timings.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e7:
            raise bad_request(f"timings.{name} must be a number of seconds")
        seconds[name] = float(value)
    worker = call.body.get("worker") or call.access_key
    if not isinstance(worker, str):
        raise bad_request("field 'worker' must be a string")
    state = await ctl.jobs.complete(
        worker,
        Completion(
            attempt,
            outcome,
            exit_code,
            stdout=texts["stdout"],
            stderr=texts["stderr"],
            error=texts["error"],
            download=seconds["download"],
            process=seconds["process"],
            upload=seconds["upload"],
        ),
    )
    return {"state": state}
