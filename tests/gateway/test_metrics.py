"""/_loxo/metrics end to end: a real server with one local worker and a
background gc every second serves S3 writes and reads (boto3), control-API
calls and a small pipeline; its scrape, parsed as Prometheus text, counts
them: requests by action and status (with histograms), bytes both ways,
commits, chunk writes and deduplication, chunk-store calls, gc runs, jobs
and datums by state, datum durations and workers."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from gateway.client import Client
from tests.conftest import LoxoServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

COPY = """
import os, shutil
for folder, _, names in os.walk("/pfs/data"):
    for name in names:
        shutil.copy(os.path.join(folder, name), os.path.join("/pfs/out", name + ".copy"))
"""


def scrape(server: LoxoServer) -> Samples:
    """Every sample of the server's metrics: (name, labels) -> value."""
    answer = httpx.get(f"{server.endpoint}/_loxo/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-amz-request-id"]
    out: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every label set that includes `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def eventually(check: Callable[[], Samples | None], what: str, seconds: float = 60) -> Samples:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_a_scrape_counts_requests_bytes_commits_gc_jobs_and_datums(
    make_server: Callable[..., LoxoServer],
) -> None:
    # gc every ~1 s (0.0003 h): its passes free nothing younger than the
    # 5-minute grace, so they run beside the writes harmlessly.
    server = make_server(extra_args=["--workers", "1", "--gc-interval-hours", "0.0003"])
    s3: Any = server.client()
    bucket = f"m{uuid.uuid4().hex[:10]}"
    body = os.urandom(2 * 1024 * 1024)  # chunked (over --inline-max): 1 to 3 chunks
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="one", Body=body)
    s3.put_object(Bucket=bucket, Key="two", Body=body)  # the same chunks: deduplicated
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == body
    try:
        s3.head_object(Bucket=bucket, Key="missing")
        raise AssertionError("HeadObject of a missing key succeeded")
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    pipeline = f"copy{uuid.uuid4().hex[:8]}"
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        source = f"src{uuid.uuid4().hex[:8]}"
        api.create_repo(source)
        s3.put_object(Bucket=source, Key="a.txt", Body=b"alpha")
        s3.put_object(Bucket=source, Key="b.txt", Body=b"beta")
        api.create_pipeline(
            {
                "pipeline": {"name": pipeline},
                "input": {"pfs": {"repo": source, "name": "data", "glob": "/*"}},
                "transform": {"cmd": [sys.executable, "-c", COPY]},
            }
        )
        deadline = time.monotonic() + 120
        jobs: list[dict[str, Any]] = []
        while not (jobs and jobs[0]["state"] in ("success", "failure", "killed")):
            assert time.monotonic() < deadline, f"the job did not end: {jobs}"
            time.sleep(0.2)
            jobs = list(api.list_jobs(pipeline=pipeline))
        assert jobs[0]["state"] == "success", (jobs[0], server.log_text()[-3000:])

    def settled() -> Samples | None:
        # Datum durations are read a couple of seconds after datums end, and
        # gc must have run at least once.
        samples = scrape(server)
        done = (
            value(samples, "loxo_datums", pipeline=pipeline, state="success") == 2
            and value(samples, "loxo_datum_duration_seconds_count", state="success") >= 2
            and value(samples, "loxo_gc_runs_total", result="success") >= 1
        )
        return samples if done else None

    m = eventually(settled, "the job's datums and a gc pass in the metrics")
    try:
        check(m, pipeline, len(body))
    except AssertionError as exc:
        tail = server.log_text()[-4000:]
        raise AssertionError(f"{exc}\n--- server log (tail) ---\n{tail}") from None


def check(m: Samples, pipeline: str, size: int) -> None:
    """What the scrape must say after the flow above."""
    # Requests by S3 action and status, with a histogram each.
    put = value(m, "loxo_requests_total", api="s3", action="PutObject", status="200")
    assert put >= 4
    assert value(m, "loxo_requests_total", api="s3", action="GetObject", status="200") >= 1
    assert value(m, "loxo_requests_total", api="s3", action="HeadObject", status="404") == 1
    assert value(m, "loxo_requests_total", api="s3", action="CreateBucket", status="200") == 1
    hist = {"api": "s3", "action": "PutObject", "status": "200"}
    assert value(m, "loxo_request_duration_seconds_count", **hist) == put
    assert value(m, "loxo_request_duration_seconds_sum", **hist) > 0
    assert value(m, "loxo_request_duration_seconds_bucket", **hist, le="+Inf") == put
    buckets = sorted(
        (float(dict(ls)["le"]), v)
        for (n, ls), v in m.items()
        if n == "loxo_request_duration_seconds_bucket" and set(hist.items()) <= ls
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    # ... and by control-API operation (the workers' protocol included).
    assert value(m, "loxo_requests_total", api="control", action="create_repo", status="201") == 1
    assert total(m, "loxo_requests_total", api="control", action="lease_datums") >= 1
    assert total(m, "loxo_requests_total", api="control", action="complete_datum") >= 2

    # Bytes in and out.
    assert value(m, "loxo_request_received_bytes_total", api="s3", action="PutObject") >= 2 * size
    assert value(m, "loxo_request_sent_bytes_total", api="s3", action="GetObject") >= size

    # Commits: the two puts, the pipeline's inputs and its output at least.
    assert value(m, "loxo_commits_total") >= 5

    # Chunks: the second body's were all there already.
    new = value(m, "loxo_chunk_write_bytes_total", result="new")
    dedup = value(m, "loxo_chunk_write_bytes_total", result="deduplicated")
    assert new >= size and dedup >= size
    assert value(m, "loxo_chunk_writes_total", result="deduplicated") >= 1
    assert value(m, "loxo_dedup_ratio") > 1.5
    assert value(m, "loxo_chunk_store_operations_total", op="put_many") >= 2
    assert value(m, "loxo_chunk_store_operations_total", op="get") >= 1
    assert value(m, "loxo_chunk_store_errors_total", op="get") == 0
    assert value(m, "loxo_chunk_read_bytes_total") >= size

    # Garbage collection ran, and freed nothing within its grace period.
    assert value(m, "loxo_gc_runs_total", result="failure") == 0
    assert value(m, "loxo_gc_last_success_timestamp_seconds") > 0

    # Jobs and datums by state; workers; datum durations.
    assert value(m, "loxo_jobs", pipeline=pipeline, state="success") == 1
    assert value(m, "loxo_jobs", pipeline=pipeline, state="running") == 0
    assert value(m, "loxo_datums", pipeline=pipeline, state="pending") == 0
    assert value(m, "loxo_local_workers") == 1
    assert value(m, "loxo_workers", activity="seen") == 1
    assert value(m, "loxo_datum_duration_seconds_sum", state="success") > 0
    assert value(m, "loxo_datum_phase_seconds_total", phase="process") > 0
    assert value(m, "loxo_database_up") == 1

    # The process's own numbers come along.
    assert value(m, "process_resident_memory_bytes") > 0
    assert total(m, "loxo_build_info") == 1
