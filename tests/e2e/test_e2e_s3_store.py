"""loxo on an S3 chunk store (`--store s3://bucket/prefix --store-endpoint`),
against a real moto_server: objects round-trip, chunks land in the bucket,
the local cache serves hot chunks, and gc / fsck work on the remote store."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from tests.conftest import LoxoServer

MiB = 1024 * 1024


def stored(backing: Any, bucket: str, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in backing.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["Size"]
    return out


@pytest.fixture
def setup(moto_s3: str, make_server: Callable[..., LoxoServer]) -> tuple[LoxoServer, Any, str]:
    backing = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    bucket = f"chunks-{random.randrange(10**9)}"
    backing.create_bucket(Bucket=bucket)
    store_args = ["--store", f"s3://{bucket}/loxo", "--store-endpoint", moto_s3]
    # (--trash-days 0: the gc test frees a deleted repo at once)
    srv = make_server(extra_args=[*store_args, "--gc-interval-hours", "0", "--trash-days", "0"])
    return srv, backing, bucket


def test_objects_round_trip_through_the_s3_store(
    setup: tuple[LoxoServer, Any, str], tmp_path: Any
) -> None:
    srv, backing, bucket = setup
    s3 = srv.client()
    s3.create_bucket(Bucket="data")
    rng = random.Random(3)
    small = b"tiny body"
    medium = rng.randbytes(3 * MiB)
    big = rng.randbytes(24 * MiB)
    s3.put_object(Bucket="data", Key="small", Body=small)
    s3.put_object(Bucket="data", Key="medium", Body=medium)
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    s3.upload_file(str(src), "data", "big", Config=TransferConfig(multipart_chunksize=8 * MiB))
    keys = stored(backing, bucket, "loxo/")
    assert keys and all(k.startswith("loxo/") for k in keys)
    assert sum(keys.values()) >= len(medium) + len(big)  # random data: stored raw

    assert s3.get_object(Bucket="data", Key="small")["Body"].read() == small
    assert s3.get_object(Bucket="data", Key="medium")["Body"].read() == medium
    ranged = s3.get_object(Bucket="data", Key="big", Range="bytes=5000000-17000000")
    assert ranged["Body"].read() == big[5_000_000:17_000_001]

    # A restart with an empty cache reads everything back from the bucket.
    srv.stop()
    assert srv.data_dir is not None
    shutil.rmtree(srv.data_dir / "cache", ignore_errors=True)
    srv.start()
    s3 = srv.client()
    assert s3.get_object(Bucket="data", Key="big")["Body"].read() == big
    assert any((srv.data_dir / "cache").rglob("*")), "reads did not fill the local cache"


def test_gc_and_fsck_on_the_s3_store(setup: tuple[LoxoServer, Any, str]) -> None:
    srv, backing, bucket = setup
    s3 = srv.client()
    s3.create_bucket(Bucket="keep")
    s3.create_bucket(Bucket="gone")
    keep = random.Random(1).randbytes(2 * MiB)
    s3.put_object(Bucket="keep", Key="k", Body=keep)
    before = sum(stored(backing, bucket, "loxo/").values())
    for i in range(4):
        s3.put_object(Bucket="gone", Key=f"g{i}", Body=random.Random(10 + i).randbytes(3 * MiB))
        s3.delete_object(Bucket="gone", Key=f"g{i}")
    s3.delete_bucket(Bucket="gone")
    held = sum(stored(backing, bucket, "loxo/").values()) - before
    assert held >= 12 * MiB

    done = srv.maintenance("gc", "--grace-minutes", "0", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chunks"] >= 4
    left = sum(stored(backing, bucket, "loxo/").values()) - before
    assert left <= 0.01 * held, f"{left} of {held} bytes left after gc"
    assert s3.get_object(Bucket="keep", Key="k")["Body"].read() == keep
    assert srv.maintenance("fsck").returncode == 0

    # Damage the one chunk left behind the store's back: fsck finds it.
    key = next(iter(stored(backing, bucket, "loxo/")))
    raw = bytearray(backing.get_object(Bucket=bucket, Key=key)["Body"].read())
    raw[-1] ^= 0x01
    backing.put_object(Bucket=bucket, Key=key, Body=bytes(raw))
    shutil.rmtree(srv.data_dir / "cache", ignore_errors=True)  # type: ignore[operator]
    done = srv.maintenance("fsck")
    assert done.returncode == 1
    assert "corrupt-chunk" in done.stdout and "keep@" in done.stdout and ":k" in done.stdout
