"""loxo over HTTPS (`--tls-cert/--tls-key`), driven by boto3 and the aws CLI.

The server certificate comes from a test CA made at session start (conftest
`tls_files`); clients trust exactly that CA. boto3 >= 1.36 over HTTPS sends
object bodies aws-chunked (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`): the PUT tests
that use boto3's defaults exercise that framing; the `unframed` client turns
flexible checksums down to `when_required` so that the body goes unframed
(its SHA-256 signed) and the read tests do not depend on the framing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, SSLError
from conftest import LoxoServer, unique_name


@pytest.fixture(scope="module")
def s3s(https_server: LoxoServer) -> Any:
    """boto3 with its defaults over HTTPS (aws-chunked bodies with a CRC trailer)."""
    return https_server.client()


@pytest.fixture(scope="module")
def unframed(https_server: LoxoServer) -> Any:
    """boto3 over HTTPS sending unframed bodies (no aws-chunked)."""
    return https_server.client(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@pytest.fixture(scope="module")
def bucket(unframed: Any) -> str:
    name = unique_name("https")
    unframed.create_bucket(Bucket=name)
    return name


def record_payload_hashes(client: Any) -> list[str]:
    """The x-amz-content-sha256 of every request `client` sends from now on."""
    seen: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        value = request.headers.get("x-amz-content-sha256", b"")
        seen.append(value.decode() if isinstance(value, bytes) else str(value))

    client.meta.events.register("before-send.s3", before_send)
    return seen


def payload(size: int, seed: bytes) -> bytes:
    """`size` pseudo-random bytes that also contain aws-chunked-looking framing."""
    framing = (
        b"0\r\n\r\n1000;chunk-signature=" + b"f" * 64 + b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n"
    )
    out = bytearray(framing)
    block = seed
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:size])


# -- the server ---------------------------------------------------------------------


def test_readiness_line_says_https(https_server: LoxoServer) -> None:
    assert f"loxo listening on https://127.0.0.1:{https_server.port}" in https_server.log_text()


def test_untrusted_certificate_is_refused(https_server: LoxoServer) -> None:
    client = https_server.client(verify=True, retries={"max_attempts": 1})  # system CAs only
    with pytest.raises(SSLError):
        client.list_buckets()


def test_plain_http_is_not_served(https_server: LoxoServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", https_server.port, timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/")
            conn.getresponse().read()
    finally:
        conn.close()


# -- boto3 --------------------------------------------------------------------------


def test_create_and_list_buckets(s3s: Any) -> None:
    name = unique_name("https-mb")
    s3s.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3s.list_buckets()["Buckets"]]
    s3s.head_bucket(Bucket=name)
    s3s.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3s.list_buckets()["Buckets"]]


def test_get_head_list(s3s: Any, unframed: Any, bucket: str) -> None:
    body = payload(300_000, b"get")
    unframed.put_object(Bucket=bucket, Key="dir/get.bin", Body=body, ContentType="x/y")
    got = s3s.get_object(Bucket=bucket, Key="dir/get.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    head = s3s.head_object(Bucket=bucket, Key="dir/get.bin")
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "x/y"
    ranged = s3s.get_object(Bucket=bucket, Key="dir/get.bin", Range="bytes=100-199")
    assert ranged["Body"].read() == body[100:200]
    listed = s3s.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/get.bin"]
    with pytest.raises(ClientError) as info:
        s3s.head_object(Bucket=bucket, Key="dir/missing")
    assert info.value.response["Error"]["Code"] == "404"


def test_presigned_get(https_server: LoxoServer, unframed: Any, bucket: str) -> None:
    body = payload(5000, b"presigned")
    unframed.put_object(Bucket=bucket, Key="presigned.bin", Body=body)
    url = unframed.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned.bin"}, ExpiresIn=300
    )
    assert url.startswith("https://127.0.0.1:") and "X-Amz-Signature=" in url
    context = ssl.create_default_context(cafile=str(https_server.ca_bundle))
    with urllib.request.urlopen(url, context=context, timeout=30) as resp:
        assert resp.status == 200
        assert resp.read() == body


def test_put_unframed_round_trip(https_server: LoxoServer, bucket: str) -> None:
    client = https_server.client(request_checksum_calculation="when_required")
    sent = record_payload_hashes(client)
    body = payload(70_000, b"unframed")
    client.put_object(Bucket=bucket, Key="unframed.bin", Body=body)
    assert len(sent) == 1 and not sent[0].startswith("STREAMING-")
    assert client.get_object(Bucket=bucket, Key="unframed.bin")["Body"].read() == body


def test_put_object_round_trip(https_server: LoxoServer, s3s: Any, bucket: str) -> None:
    """boto3's default PutObject over HTTPS: an aws-chunked body with a CRC trailer."""
    client = https_server.client()
    sent = record_payload_hashes(client)
    body = payload(123_457, b"put")
    put = client.put_object(Bucket=bucket, Key="put/exact.bin", Body=body)
    assert sent == ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3s.get_object(Bucket=bucket, Key="put/exact.bin")
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body


def test_upload_file_multipart(
    https_server: LoxoServer, s3s: Any, bucket: str, tmp_path: Path
) -> None:
    """boto3's upload_file of 20 MiB over HTTPS: three aws-chunked UploadParts."""
    client = https_server.client()
    sent = record_payload_hashes(client)
    source = tmp_path / "big.bin"
    body = payload(20 * 1024 * 1024, b"multipart")
    source.write_bytes(body)
    client.upload_file(str(source), bucket, "put/big.bin")
    assert sent.count("STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 3
    head = s3s.head_object(Bucket=bucket, Key="put/big.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].endswith('-3"')
    target = tmp_path / "back.bin"
    s3s.download_file(bucket, "put/big.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(body).digest()


# -- aws CLI ------------------------------------------------------------------------


def test_aws_cli_ls_and_cp(
    https_server: LoxoServer, unframed: Any, bucket: str, aws_cli: Any, tmp_path: Path
) -> None:
    body = payload(200_000, b"awscli")
    unframed.put_object(Bucket=bucket, Key="cli/down.bin", Body=body)
    top = aws_cli(https_server, "s3", "ls")
    assert bucket in top.stdout
    listing = aws_cli(https_server, "s3", "ls", f"s3://{bucket}/cli/")
    assert "down.bin" in listing.stdout
    target = tmp_path / "down.bin"
    aws_cli(https_server, "s3", "cp", f"s3://{bucket}/cli/down.bin", str(target))
    assert target.read_bytes() == body


def test_aws_cli_cp_up(
    https_server: LoxoServer, unframed: Any, bucket: str, aws_cli: Any, tmp_path: Path
) -> None:
    """Debian's aws-cli 2.9 sends UNSIGNED-PAYLOAD with Content-MD5 over HTTPS."""
    source = tmp_path / "up.bin"
    body = os.urandom(150_000)
    source.write_bytes(body)
    aws_cli(https_server, "s3", "cp", str(source), f"s3://{bucket}/cli/up.bin")
    assert unframed.get_object(Bucket=bucket, Key="cli/up.bin")["Body"].read() == body
