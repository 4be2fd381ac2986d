"""Bad credentials, bad signatures and bad digests: the right S3 error, nothing
stored, no commit, and the keep-alive connection still usable afterwards."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_wrong_secret_key(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    bad = server.client(secret_key="not-the-secret", retries={"max_attempts": 1})
    for call, kwargs in (
        (bad.list_buckets, {}),
        (bad.put_object, {"Bucket": bucket, "Key": "k", "Body": b"x" * 1000}),
        (bad.list_objects_v2, {"Bucket": bucket}),
    ):
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert code_of(exc) == ("SignatureDoesNotMatch", 403)
    # nothing was written (test_raw_errors_keep_the_connection checks that the
    # connection survives a bad signature)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    assert code_of(exc)[1] == 404


def test_unknown_access_key(server: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    bad = server.client(access_key="AKIDONTKNOWYOU", retries={"max_attempts": 1})
    for call, kwargs in (
        (bad.list_buckets, {}),
        (bad.get_object, {"Bucket": bucket, "Key": "k"}),
    ):
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert code_of(exc) == ("InvalidAccessKeyId", 403)


def test_anonymous_requests_are_denied(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="secret", Body=b"private")
    with httpx.Client(base_url=server.endpoint) as client:
        for method, path in (
            ("GET", "/"),
            ("GET", f"/{bucket}"),
            ("GET", f"/{bucket}/secret"),
            ("PUT", f"/{bucket}/new"),
            ("DELETE", f"/{bucket}/secret"),
        ):
            resp = client.request(method, path, content=b"data" if method == "PUT" else None)
            assert resp.status_code == 403, (method, path, resp.text)
            assert resp.headers["content-type"].startswith("application/xml")
            assert "<Code>AccessDenied</Code>" in resp.text
            assert "<RequestId>" in resp.text
        head = client.head(f"/{bucket}/secret")
        assert head.status_code == 403
        assert client.get(f"/{bucket}/secret").status_code == 403  # same connection
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"private"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["secret"]


def test_bad_content_md5_stores_nothing(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="existing", Body=b"before")
    head_before = db.branch_head(bucket)
    commits_before = db.commit_count(bucket)

    wrong = b64(hashlib.md5(b"something else").digest())
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"the body", ContentMD5=wrong)
    assert code_of(exc) == ("BadDigest", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="existing", Body=b"overwrite", ContentMD5=wrong)
    assert code_of(exc) == ("BadDigest", 400)

    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert code_of(exc) == ("NoSuchKey", 404)
    assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"before"
    assert db.branch_head(bucket) == head_before
    assert db.commit_count(bucket) == commits_before
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["existing"]


@pytest.mark.parametrize("value", ["not base64!!", b64(b"short"), b64(b"x" * 17), ""])
def test_malformed_content_md5(s3: Any, db: Any, new_bucket: Any, value: str) -> None:
    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"body", ContentMD5=value)
    assert code_of(exc) == ("InvalidDigest", 400)
    assert db.commit_count(bucket) == 0


def test_wrong_crc32_checksum(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = b"checksummed body"
    wrong = b64((zlib.crc32(body) ^ 1).to_bytes(4, "big"))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumCRC32=wrong)
    assert code_of(exc) == ("BadDigest", 400)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    assert code_of(exc)[1] == 404
    assert db.commit_count(bucket) == 0

    right = b64(zlib.crc32(body).to_bytes(4, "big"))
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumCRC32=right)
    assert put["ChecksumCRC32"] == right
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == right


def test_wrong_sha256_checksum(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"abc", ChecksumSHA256=b64(hashlib.sha256(b"x").digest())
        )
    assert code_of(exc) == ("BadDigest", 400)


def test_raw_errors_keep_the_connection(raw_s3: Any, s3: Any, db: Any, new_bucket: Any) -> None:
    """Each bad request gets its error, and the next request on the SAME
    keep-alive connection succeeds (no leftover body bytes, no forced close)."""
    bucket = new_bucket()
    status, headers, _ = raw_s3.request("PUT", bucket, "ok", body=b"fine")
    assert status == 200
    sock = raw_s3.sock_id()
    assert sock is not None
    commits = db.commit_count(bucket)

    body = b"the real body, 32 bytes long...."
    cases: list[tuple[str, dict[str, Any], str, int]] = [
        # signed for another payload of the same length
        ("hash mismatch", {"sign_body": b"X" * len(body)}, "XAmzContentSHA256Mismatch", 400),
        (
            "bad md5",
            {"headers": {"Content-MD5": b64(hashlib.md5(b"no").digest())}},
            "BadDigest",
            400,
        ),
        ("malformed md5", {"headers": {"Content-MD5": "%%%"}}, "InvalidDigest", 400),
        ("bad crc32", {"headers": {"x-amz-checksum-crc32": "AAAAAA=="}}, "BadDigest", 400),
        ("unknown checksum", {"headers": {"x-amz-checksum-md17": "AAAA"}}, "InvalidRequest", 400),
        ("wrong secret", {"secret_key": "wrong"}, "SignatureDoesNotMatch", 403),
    ]
    for label, kwargs, code, expected_status in cases:
        status, headers, data = raw_s3.request("PUT", bucket, "bad", body=body, **kwargs)
        assert (status, _code(data)) == (expected_status, code), (label, data)
        assert headers.get("connection", "").lower() != "close", label
        assert raw_s3.sock_id() == sock, f"{label}: the connection was closed"
        status, _, data = raw_s3.request("GET", bucket, "ok")
        assert (status, data) == (200, b"fine"), label
        assert raw_s3.sock_id() == sock, label

    # errors without a body, and a missing object, on the same connection
    for method, key, expected in (
        ("GET", "missing", 404),
        ("HEAD", "missing", 404),
        ("GET", None, 200),
        ("DELETE", "missing", 204),
    ):
        status, _, _ = raw_s3.request(method, bucket, key)
        assert status == expected, (method, key)
        assert raw_s3.sock_id() == sock
    status, _, data = raw_s3.request("GET", bucket, "bad")
    assert status == 404 and _code(data) == "NoSuchKey"
    assert db.commit_count(bucket) == commits
    status, _, _ = raw_s3.request(
        "PUT", bucket, "good", body=body, headers={"Content-MD5": b64(hashlib.md5(body).digest())}
    )
    assert status == 200
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == body


def test_content_sha256_mismatch_on_a_larger_body(raw_s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = bytes(range(256)) * 8192  # 2 MiB: streamed through the chunker
    status, _, data = raw_s3.request("PUT", bucket, "big", body=body, sign_body=body[::-1])
    assert (status, _code(data)) == (400, "XAmzContentSHA256Mismatch")
    status, _, data = raw_s3.request("GET", bucket, "big")
    assert (status, _code(data)) == (404, "NoSuchKey")
    assert db.commit_count(bucket) == 0


def test_boto3_client_survives_errors(s3: Any, new_bucket: Any) -> None:
    """One boto3 client: every error is followed by a successful call."""
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    failing = [
        lambda: s3.get_object(Bucket=bucket, Key="nope"),
        lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"b", ContentMD5="bad"),
        lambda: s3.get_object(Bucket=bucket, Key="k", Range="bytes=5-"),
        lambda: s3.create_bucket(Bucket="Invalid_Name"),
        lambda: s3.list_objects_v2(Bucket=f"{bucket}-missing"),
        lambda: s3.get_bucket_policy(Bucket=bucket),
        # bodies too large to drain: the server may close, the client must not notice
        lambda: s3.put_object(Bucket=f"{bucket}-missing", Key="k", Body=os.urandom(3 << 20)),
        lambda: s3.put_object(
            Bucket=bucket,
            Key="k",
            Body=os.urandom(3 << 20),
            ContentMD5=b64(hashlib.md5(b"").digest()),
        ),
    ]
    for call in failing:
        with pytest.raises(ClientError):
            call()
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_unsupported_subresource_is_not_implemented(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert code_of(exc) == ("NotImplemented", 501)


def _code(data: bytes) -> str | None:
    import xml.etree.ElementTree as ET

    try:
        node = ET.fromstring(data).find("Code")
    except ET.ParseError:
        return None
    return node.text if node is not None else None
