"""The MinIO Python SDK against loxo, over HTTP and over HTTPS (trusting the test CA
through a urllib3 PoolManager with ca_certs)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any

import pytest

MiB = 1024 * 1024


@pytest.fixture
def mc(loxo: Any) -> Iterator[Any]:
    """A Minio client for the shared HTTP server, then for the shared HTTPS server."""
    import urllib3
    from minio import Minio

    if loxo.ca_bundle is None:
        yield Minio(
            f"127.0.0.1:{loxo.port}",
            access_key=loxo.access_key,
            secret_key=loxo.secret_key,
            secure=False,
        )
        return
    http = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(loxo.ca_bundle),
        timeout=urllib3.Timeout(connect=10, read=120),
        retries=urllib3.Retry(total=3, backoff_factor=0.2),
    )
    client = Minio(
        f"127.0.0.1:{loxo.port}",
        access_key=loxo.access_key,
        secret_key=loxo.secret_key,
        secure=True,
        http_client=http,
    )
    yield client
    http.clear()


def test_minio_object_lifecycle(mc: Any) -> None:
    from minio.error import S3Error

    bucket = f"minio-{os.urandom(4).hex()}"
    assert not mc.bucket_exists(bucket)
    mc.make_bucket(bucket)
    assert mc.bucket_exists(bucket)
    assert bucket in {b.name for b in mc.list_buckets()}

    data = os.urandom(200_000)
    result = mc.put_object(
        bucket,
        "dir/obj.bin",
        io.BytesIO(data),
        len(data),
        content_type="application/x-minio",
        metadata={"color": "green"},
    )
    assert result.etag == hashlib.md5(data).hexdigest()
    assert result.version_id and len(result.version_id) == 32
    for i in range(3):
        mc.put_object(bucket, f"dir/sub/{i}.txt", io.BytesIO(b"x" * i), i)
    mc.put_object(bucket, "top.txt", io.BytesIO(b"top"), 3)

    response = mc.get_object(bucket, "dir/obj.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    response = mc.get_object(bucket, "dir/obj.bin", offset=1000, length=500)
    try:
        assert response.read() == data[1000:1500]
    finally:
        response.close()
        response.release_conn()

    stat = mc.stat_object(bucket, "dir/obj.bin")
    assert stat.size == len(data)
    assert stat.etag == hashlib.md5(data).hexdigest()
    assert stat.content_type == "application/x-minio"
    assert stat.metadata.get("x-amz-meta-color") == "green"
    assert stat.version_id == result.version_id

    # the SDK yields a page's keys before its common prefixes
    flat = sorted(o.object_name for o in mc.list_objects(bucket))
    assert flat == ["dir/", "top.txt"]
    deep = [o.object_name for o in mc.list_objects(bucket, prefix="dir/", recursive=True)]
    assert deep == ["dir/obj.bin", "dir/sub/0.txt", "dir/sub/1.txt", "dir/sub/2.txt"]
    v1 = [o.object_name for o in mc.list_objects(bucket, recursive=True, use_api_v1=True)]
    assert v1 == [*deep, "top.txt"]

    mc.remove_object(bucket, "dir/obj.bin")
    with pytest.raises(S3Error) as exc:
        mc.stat_object(bucket, "dir/obj.bin")
    assert exc.value.code in ("NoSuchKey", "ResponseCode404") or "404" in str(exc.value)
    with pytest.raises(S3Error) as exc:
        mc.get_object(bucket, "dir/obj.bin")
    assert exc.value.code == "NoSuchKey"
    # an older snapshot still has it
    snap = f"{bucket}.{result.version_id}"
    response = mc.get_object(snap, "dir/obj.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()


def test_minio_multipart_stream(mc: Any) -> None:
    bucket = f"minio-{os.urandom(4).hex()}"
    mc.make_bucket(bucket)
    data = os.urandom(11 * MiB + 5)
    # unknown length: the SDK uploads it in 5 MiB parts
    result = mc.put_object(bucket, "streamed", io.BytesIO(data), -1, part_size=5 * MiB)
    assert result.etag.endswith("-3")
    response = mc.get_object(bucket, "streamed")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    path_stat = mc.stat_object(bucket, "streamed")
    assert path_stat.size == len(data)
