"""Shared by the pipeline end-to-end tests (test_pipelines_*.py): a loxo
server with real worker processes, the control client, user code written as
small Python scripts, and polls with deadlines (never bare sleeps).

Not a test module: imported as `pipeline_helpers` (tests/e2e is on sys.path,
like `hostile`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from gateway.client import Client

T = TypeVar("T")
DONE_TIMEOUT = 120.0


def control(server: Any) -> Client:
    """The control API client of a LoxoServer (close it when done)."""
    return Client(server.endpoint, server.access_key or "", server.secret_key or "")


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """`check()` until it returns something truthy; AssertionError naming
    `what` (and the last value) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {last!r}")
        time.sleep(every)


def write_script(folder: Path, name: str, source: str) -> Path:
    """User code: `source` (dedented) as folder/name; its absolute path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip(), "utf-8")
    return path.resolve()


def python_cmd(script: Path, *args: str) -> list[str]:
    """A transform.cmd running `script` with this interpreter (numpy, pandas,
    scikit-learn, boto3, s3fs and pyspark are importable there)."""
    return [sys.executable, str(script), *args]


def commit_files(loxo: Client, s3: Any, repo: str, files: Mapping[str, bytes | None]) -> str:
    """ONE commit on repo@main writing (or, for None, deleting) `files`,
    through an open commit's S3 bucket; the commit id."""
    opened = loxo.start_commit(repo, "main")
    for key, body in files.items():
        if body is None:
            s3.delete_object(Bucket=opened.bucket, Key=key)
        else:
            s3.put_object(Bucket=opened.bucket, Key=key, Body=body)
    commit = loxo.finish_commit(repo, opened.id, f"{len(files)} file(s)")
    assert commit is not None, "the open commit changed nothing"
    return commit


def head(loxo: Client, repo: str, branch: str = "main") -> str | None:
    return loxo.get_branch(repo, branch).head


def wait_done(
    loxo: Client, repo: str, commit: str, timeout: float = DONE_TIMEOUT
) -> dict[str, Any]:
    """`loxo wait`: poll until every job downstream of repo@commit has ended;
    the final status ({"done", "jobs": [summary...], "waiting_for"})."""
    status: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal status
        status = loxo.wait_status(repo, commit)
        return status if status["done"] else None

    try:
        return poll(check, timeout, f"the jobs downstream of {repo}@{commit[:12]}", 0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast status: {status}") from None


def jobs_in(status: Mapping[str, Any], pipeline: str) -> list[dict[str, Any]]:
    """The job summaries of `pipeline` in a wait status. A pipeline reading two
    moving repos (evaluate reads train and preprocess) may have run once per
    upstream: loxo starts a job whenever any input head moves."""
    return [dict(j) for j in status["jobs"] if j["pipeline"] == pipeline]


def job_of(status: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """The job summary of `pipeline` in a wait status (exactly one)."""
    found = jobs_in(status, pipeline)
    assert len(found) == 1, f"{pipeline}: {status}"
    return found[0]


def wait_job(loxo: Client, job: str, timeout: float = DONE_TIMEOUT) -> dict[str, Any]:
    """Poll a job until it has ended; its final state (inspect_job)."""

    def ended() -> dict[str, Any] | None:
        doc = loxo.inspect_job(job)
        return doc if doc["state"] not in ("created", "running") else None

    return poll(ended, timeout, f"job {job} to end", 0.2)


def datums(loxo: Client, job: str, state: str | None = None) -> list[dict[str, Any]]:
    return list(loxo.list_datums(job, state))


def job_logs(loxo: Client, job: str) -> list[dict[str, Any]]:
    """Every log record of a job, following the cursor to the end."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = loxo.logs(job=job, cursor=cursor)
        out.extend(page["items"])
        if not page["items"] or not page.get("next_cursor") or page["next_cursor"] == cursor:
            return out
        cursor = page["next_cursor"]


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of a bucket (or under `prefix`): key -> bytes."""
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(item["Key"] for item in page.get("Contents", []))
    return found


def start_worker(
    server: Any,
    scratch: Path,
    name: str,
    cwd: Path | None = None,
    home: Path | None = None,
    log: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m workers --endpoint URL` as a separate process reaching the
    server only over HTTP, keys in its environment (LOXO_ACCESS_KEY/_SECRET_KEY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env.update(
        LOXO_ACCESS_KEY=server.access_key or "",
        LOXO_SECRET_KEY=server.secret_key or "",
        PYTHONUNBUFFERED="1",
    )
    # Our checkout's packages, wherever the worker's cwd is.
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra_env or {})
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers",
                "--endpoint",
                server.endpoint,
                "--scratch",
                str(scratch),
                "--name",
                name,
                "--wait-seconds",
                "1",
            ],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it lingers (only this process, by its pid)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def walk_provenance(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every node of a provenance tree (the answer of `provenance`), depth first."""
    yield node
    for child in node.get("inputs", []):
        up = child.get("provenance")
        if up is not None:
            yield from walk_provenance(up)


def walk_subvenance(items: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every derived file of a subvenance answer's `derived` list, depth first."""
    for item in items:
        yield item
        yield from walk_subvenance(item.get("derived", []))
