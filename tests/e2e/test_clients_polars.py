"""polars (Rust object_store) against loxo over HTTP and HTTPS: write_parquet,
sink_parquet and write_csv to s3:// URLs, read_parquet,
scan_parquet over a glob with a pushed-down filter, scan_csv.

object_store sends UNSIGNED-PAYLOAD + x-amz-checksum-crc64nvme. It has no
CA-bundle storage option; its TLS stack reads SSL_CERT_FILE, so the HTTPS
variant sets that for the duration of the test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest


def storage_options(server: Any) -> dict[str, str]:
    return {
        "aws_access_key_id": server.access_key,
        "aws_secret_access_key": server.secret_key,
        "aws_endpoint_url": server.endpoint,
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
        "aws_virtual_hosted_style_request": "false",
    }


def test_polars_parquet_and_csv(
    loxo: Any,
    require_module: Callable[[str], Any],
    make_bucket: Callable[..., str],
    bucket_objects: Callable[..., dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pl = require_module("polars")
    if loxo.ca_bundle is not None:
        monkeypatch.setenv("SSL_CERT_FILE", str(loxo.ca_bundle))
    opts = storage_options(loxo)
    bucket = make_bucket(loxo, "polars")

    frames = [
        pl.DataFrame(
            {
                "id": list(range(n * 1000, n * 1000 + 1000)),
                "part": [n] * 1000,
                "name": [f"n\u00e9{i}" for i in range(1000)],
                "score": [i / 7 for i in range(1000)],
            }
        )
        for n in range(3)
    ]
    for n, frame in enumerate(frames):
        frame.write_parquet(f"s3://{bucket}/pq/part-{n}.parquet", storage_options=opts)
    assert sorted(bucket_objects(loxo, bucket, "pq/")) == [f"pq/part-{n}.parquet" for n in range(3)]

    one = pl.read_parquet(f"s3://{bucket}/pq/part-1.parquet", storage_options=opts)
    assert one.equals(frames[1])

    everything = pl.concat(frames)
    scanned = pl.scan_parquet(f"s3://{bucket}/pq/*.parquet", storage_options=opts)
    assert scanned.collect().sort("id").equals(everything)
    picked = scanned.filter(pl.col("part") == 2).select("id", "name").collect().sort("id")
    assert picked.equals(frames[2].select("id", "name"))

    # ~16 MiB of incompressible bytes from the streaming sink (polars 2.1 still
    # sends it in one PUT)
    big = pl.DataFrame(
        {
            "blob": [hashlib.sha512(str(i).encode()).digest() * 4 for i in range(64 * 1024)],
        }
    )
    big.lazy().sink_parquet(
        f"s3://{bucket}/big/big.parquet", storage_options=opts, compression="uncompressed"
    )
    head = loxo.client().head_object(Bucket=bucket, Key="big/big.parquet")
    assert head["ContentLength"] > 16 * 1024 * 1024
    assert pl.read_parquet(f"s3://{bucket}/big/big.parquet", storage_options=opts).equals(big)

    frames[0].write_csv(f"s3://{bucket}/csv/zero.csv", storage_options=opts)
    assert bucket_objects(loxo, bucket, "csv/")["csv/zero.csv"] == frames[0].write_csv().encode()
    back = pl.scan_csv(f"s3://{bucket}/csv/*.csv", storage_options=opts).collect()
    assert back.equals(frames[0])
