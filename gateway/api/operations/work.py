"""Control API: the worker protocol (docs/design/jobs.md). Workers lease
datums, heartbeat while they run them, and report each attempt's outcome;
they reach the server through this and S3 only."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from gateway.api.errors import bad_request
from gateway.api.table import Call, op
from s3api.inputs import unstorable
from versioning.control import Control
from versioning.pipelines.jobs import (
    INLINE_FILE,
    INLINE_OUTPUTS,
    MAX_LEASE_BATCH,
    Completion,
)

MAX_WAIT_SECONDS = 30.0
OUTCOMES = ("success", "failed", "recovered")
MAX_KEY_BYTES = 1024  # S3's limit on an object key


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


def _outputs(value: Any) -> tuple[tuple[str, bytes], ...]:
    """The inline outputs of a complete call, checked: keys S3 could store,
    bodies within the lease's limits, each body's MD5 verified."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_request("field 'outputs' must be a list of {key, body, md5}")
    out: dict[str, bytes] = {}
    total = 0
    for i, item in enumerate(value):
        where = f"outputs[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise bad_request(f"{where} must be an object with a string 'key'")
        key = item["key"]
        problem = unstorable(key)
        if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            problem = f"must be 1 to {MAX_KEY_BYTES} bytes of UTF-8"
        if problem is not None:
            raise bad_request(f"{where}.key {problem}")
        if key in out:
            raise bad_request(f"{where}.key {key!r} is given twice")
        text = item.get("body")
        try:
            body = base64.b64decode(text, validate=True) if isinstance(text, str) else None
        except binascii.Error:
            body = None
        if body is None:
            raise bad_request(f"{where}.body must be base64")
        total += len(body)
        if len(body) > INLINE_FILE or total > INLINE_OUTPUTS:
            raise bad_request(
                f"inline outputs are limited to {INLINE_FILE} bytes a file and "
                f"{INLINE_OUTPUTS} in all: upload bigger ones to the output bucket"
            )
        md5 = item.get("md5")
        if md5 is not None and md5 != hashlib.md5(body).hexdigest():
            raise bad_request(f"{where}.md5 does not match its body (BadDigest): not stored")
        out[key] = body
    return tuple(out.items())


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
        "outputs": "small output files committed with a success, instead of a PUT "
        "each: [{key, body (base64), md5 (hex, checked)}], as the lease's "
        "inline_outputs allows",
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
    outputs = _outputs(call.body.get("outputs"))
    if outputs and outcome != "success":
        raise bad_request("field 'outputs' comes only with outcome 'success'")
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
            outputs=outputs,
        ),
    )
    return {"state": state}
