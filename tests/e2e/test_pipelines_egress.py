"""Egress: a successful job's output commit is copied to an S3 URL, here a
moto_server bucket. The first copy is a full sync (stray objects under the
prefix go); later ones follow the change: a deleted input's output is
deleted there too, and a body larger than one part goes up in parts."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from gateway.client import Client
from tests.conftest import s3_client

pytestmark = pytest.mark.slow


def _wait_job(api: Client, pipeline: str, count: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(api.list_jobs(pipeline=pipeline))
        if len(jobs) >= count and jobs[0]["state"] in ("success", "failure", "killed"):
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"{pipeline} did not finish job {count}: {jobs}")


def _egressed(api: Client, job: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = api.inspect_job(job)["stats"]
        if "egress" in stats or "egress_error" in stats:
            return dict(stats)
        time.sleep(0.1)
    raise AssertionError(f"job {job} was never egressed")


def test_egress_to_an_s3_url(make_server: Any, moto_s3: str) -> None:
    remote = boto3.client(
        "s3", endpoint_url=moto_s3, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    remote.create_bucket(Bucket="egress-target")
    remote.put_object(Bucket="egress-target", Key="results/stray", Body=b"old")
    remote.put_object(Bucket="egress-target", Key="elsewhere", Body=b"kept")
    srv = make_server(extra_args=["--workers", "1"])
    api = Client(srv.endpoint, srv.access_key, srv.secret_key)
    s3 = s3_client(srv)
    api.create_repo("egress-in")
    big = bytes(range(256)) * (9 * 4096 + 7)  # 9 MiB and a bit: more than one part
    s3.put_object(Bucket="egress-in", Key="a.txt", Body=b"alpha")
    s3.put_object(Bucket="egress-in", Key="b.bin", Body=big)
    url = f"s3://egress-target/results?endpoint={moto_s3}&region=us-east-1"
    api.create_pipeline(
        {
            "pipeline": {"name": "egress-out"},
            "input": {"pfs": {"repo": "egress-in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/egress-in/* /pfs/out/"]},
            "egress": {"URL": url},
        }
    )
    first = _wait_job(api, "egress-out", 1)
    assert first["state"] == "success", first
    stats = _egressed(api, first["id"])
    assert stats["egress"]["full"] == 1 and stats["egress"]["put"] == 2, stats
    keys = sorted(o["Key"] for o in remote.list_objects_v2(Bucket="egress-target")["Contents"])
    assert keys == ["elsewhere", "results/a.txt", "results/b.bin"]
    assert remote.get_object(Bucket="egress-target", Key="results/b.bin")["Body"].read() == big
    head = remote.head_object(Bucket="egress-target", Key="results/a.txt")
    assert head["Metadata"]["loxo-job"] == first["id"]

    s3.delete_object(Bucket="egress-in", Key="a.txt")
    second = _wait_job(api, "egress-out", 2)
    assert second["state"] == "success", second
    stats = _egressed(api, second["id"])
    assert (stats["egress"]["full"], stats["egress"]["put"], stats["egress"]["deleted"]) == (
        0,
        0,
        1,
    )
    keys = sorted(o["Key"] for o in remote.list_objects_v2(Bucket="egress-target")["Contents"])
    assert keys == ["elsewhere", "results/b.bin"]
