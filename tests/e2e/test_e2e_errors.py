"""Errors as S3 documents at every layer: requests the HTTP parser refuses before
the app runs, and request headers asking for features loxo does not have."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from botocore.exceptions import ClientError
from conftest import free_port

from gateway.http_errors import HttpProtocol, S3H11Protocol

# --------------------------------------------------------------------------- raw HTTP


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send `request` as it is; (status, headers, body, closed): closed is True
    when the server ended the connection after its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        out = b""
        closed = False
        while True:
            piece = sock.recv(65536)
            if not piece:
                closed = True
                break
            out += piece
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                lengths = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if lengths and len(rest) >= lengths[0]:
                    # give a closing server a moment to say so
                    sock.settimeout(2)
                    try:
                        closed = sock.recv(1) == b""
                    except TimeoutError:
                        closed = False
                    break
    head, _, body = out.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body, closed


def error_fields(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def put_with(header_lines: bytes, path: bytes = b"/bucket/key") -> bytes:
    return b"PUT " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header_lines + b"\r\n"


# (request, expected Code); each is refused by the HTTP parser itself
MALFORMED = {
    "content-length-abc": (put_with(b"Content-Length: abc\r\n"), "InvalidArgument"),
    "content-length-negative": (put_with(b"Content-Length: -5\r\n"), "InvalidArgument"),
    "content-length-suffix": (put_with(b"Content-Length: 1x\r\n"), "InvalidArgument"),
    "content-length-and-chunked": (
        put_with(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        "BadRequest",
    ),
    "header-value-control-byte": (put_with(b"X-Amz-Meta-A: a\x01b\r\n"), "BadRequest"),
    "header-name-space": (put_with(b"X Amz: b\r\n"), "BadRequest"),
    "garbage-request-line": (b"HELLO\r\n\r\n", "BadRequest"),
}


def assert_s3_rejection(answer: tuple[int, dict[str, str], bytes, bool], code: str) -> None:
    status, headers, body, closed = answer
    assert status == 400, body
    assert headers["content-type"] == "application/xml"
    assert headers["connection"] == "close"
    fields = error_fields(body)
    assert fields["Code"] == code, fields
    assert fields["Message"]
    assert fields["Resource"].startswith("/")
    assert len(fields["RequestId"]) == 16
    assert headers["x-amz-request-id"] == fields["RequestId"]
    assert closed, "the connection must be closed after a framing error"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http_gets_an_s3_error(server: Any, case: str) -> None:
    request, code = MALFORMED[case]
    assert_s3_rejection(exchange(server.port, request), code)


def test_malformed_http_names_the_resource(server: Any) -> None:
    answer = exchange(server.port, put_with(b"Content-Length: x\r\n", b"/b%C3%A9/a%20key?uploads"))
    assert_s3_rejection(answer, "InvalidArgument")
    fields = error_fields(answer[2])
    assert fields["Resource"] == "/bé/a key"
    assert fields["ArgumentName"] == "Content-Length"


def test_request_ids_differ(server: Any) -> None:
    ids = {
        error_fields(exchange(server.port, MALFORMED["content-length-abc"][0])[2])["RequestId"]
        for _ in range(3)
    }
    assert len(ids) == 3


def test_server_still_serves_after_malformed_http(server: Any, s3: Any) -> None:
    for request, _ in MALFORMED.values():
        exchange(server.port, request)
    assert "Buckets" in s3.list_buckets()


# Both uvicorn protocol implementations, on a bare uvicorn (no database needed).


async def _ok_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["httptools", "h11"])
def bare_port(request: pytest.FixtureRequest) -> Iterator[int]:
    protocol = HttpProtocol if request.param == "httptools" else S3H11Protocol
    if request.param == "httptools" and protocol is S3H11Protocol:
        pytest.skip("httptools is not installed")
    port = free_port()
    config = uvicorn.Config(
        _ok_app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="error"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(
    "case", ["content-length-abc", "content-length-negative", "garbage-request-line"]
)
def test_each_http_implementation_answers_in_xml(bare_port: int, case: str) -> None:
    request, code = MALFORMED[case]
    assert_s3_rejection(exchange(bare_port, request), code)
    good = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert exchange(bare_port, good)[:1] == (200,)


# --------------------------------------------------------------------------- unsupported headers


def not_implemented(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The message of a 501 NotImplemented answer (fails on any other)."""
    err = exc.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == (
        "NotImplemented",
        501,
    )
    return str(err["Error"]["Message"])


@pytest.mark.parametrize(
    ("kwargs", "header"),
    [
        ({"ServerSideEncryption": "aws:kms"}, "x-amz-server-side-encryption"),
        ({"ServerSideEncryption": "AES256"}, "x-amz-server-side-encryption"),
        ({"StorageClass": "GLACIER"}, "x-amz-storage-class"),
        ({"ACL": "public-read"}, "x-amz-acl"),
        (
            {"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
            "x-amz-grant-read",
        ),
        ({"WebsiteRedirectLocation": "/elsewhere"}, "x-amz-website-redirect-location"),
        ({"ObjectLockLegalHoldStatus": "ON"}, "x-amz-object-lock-legal-hold"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value)),
)
def test_put_object_refuses_unsupported_features(
    s3: Any, new_bucket: Any, kwargs: dict[str, str], header: str
) -> None:
    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", **kwargs)
    assert header in not_implemented(exc)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="k")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ACL": "private"},
        {"ACL": "bucket-owner-full-control"},
        {"StorageClass": "STANDARD"},
        {"Tagging": ""},
    ],
    ids=lambda kwargs: "-".join(f"{k}={v}" for k, v in kwargs.items()) or "plain",
)
def test_put_object_accepts_what_loxo_serves(
    s3: Any, new_bucket: Any, kwargs: dict[str, str]
) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", **kwargs)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def test_rclone_style_put_still_works(raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = b"rclone body"
    headers = {
        "x-amz-acl": "private",
        "x-amz-meta-mtime": "1700000000.123456789",
        "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "Content-Type": "application/octet-stream",
    }
    status, _, data = raw_s3.request("PUT", bucket, "dir/file.txt", body=body, headers=headers)
    assert status == 200, data
    status, got_headers, data = raw_s3.request("GET", bucket, "dir/file.txt")
    assert (status, data) == (200, body)
    assert got_headers["x-amz-meta-mtime"] == "1700000000.123456789"


def test_raw_refusal_names_the_header_and_keeps_the_connection(
    raw_s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket()
    status, _, data = raw_s3.request(
        "PUT", bucket, "k", body=b"x" * 1000, headers={"x-amz-storage-class": "DEEP_ARCHIVE"}
    )
    fields = error_fields(data)
    assert (status, fields["Code"]) == (501, "NotImplemented")
    assert fields["Header"] == "x-amz-storage-class"
    assert "DEEP_ARCHIVE" in fields["Message"] and "PutObject" in fields["Message"]
    assert fields["Resource"] == f"/{bucket}/k"
    assert fields["RequestId"]
    sock = raw_s3.sock_id()
    status, _, _ = raw_s3.request("PUT", bucket, "k", body=b"fine")
    assert status == 200
    assert raw_s3.sock_id() == sock


def test_copy_object_refuses_unsupported_features(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="src", Body=b"data")
    source = {"Bucket": bucket, "Key": "src"}
    for kwargs in (
        {"StorageClass": "GLACIER"},
        {"ServerSideEncryption": "aws:kms"},
        {"ACL": "public-read"},
    ):
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **kwargs)
        assert "CopyObject" in not_implemented(exc), kwargs
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, ACL="private")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"data"


def test_multipart_refuses_unsupported_features(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    for kwargs in ({"ServerSideEncryption": "aws:kms"}, {"StorageClass": "GLACIER"}):
        with pytest.raises(ClientError) as exc:
            s3.create_multipart_upload(Bucket=bucket, Key="big", **kwargs)
        assert "CreateMultipartUpload" in not_implemented(exc)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", ACL="private")["UploadId"]
    status, _, data = raw_s3.request(
        "PUT",
        bucket,
        "big",
        body=b"part",
        query=f"partNumber=1&uploadId={upload}",
        headers={"x-amz-server-side-encryption-customer-algorithm": "AES256"},
    )
    fields = error_fields(data)
    assert (status, fields["Code"]) == (501, "NotImplemented")
    assert fields["Header"] == "x-amz-server-side-encryption-customer-algorithm"
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"p"


def test_other_actions_ignore_these_headers(raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    raw_s3.request("PUT", bucket, "k", body=b"x")
    status, _, data = raw_s3.request("GET", bucket, "k", headers={"x-amz-storage-class": "GLACIER"})
    assert (status, data) == (200, b"x")


def test_long_bad_header_lines_are_not_echoed_whole(bare_port: int) -> None:
    request = put_with(b"X Long: " + b"v" * 20_000 + b"\r\n")
    answer = exchange(bare_port, request)
    assert_s3_rejection(answer, "BadRequest")
    assert len(error_fields(answer[2])["Message"]) < 400


# --------------------------------------------------------------------------- canned ACLs


def test_an_invalid_canned_acl_is_invalid_argument(s3: Any, new_bucket: Any) -> None:
    """A value that is no canned ACL is a client error (400 InvalidArgument), on
    every action that takes x-amz-acl; a real canned ACL loxo does not serve
    (public-read) stays 501 NotImplemented; private is accepted."""
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="src", Body=b"data")
    source = {"Bucket": bucket, "Key": "src"}
    fresh = new_bucket(create=False)
    calls = {
        "PutObject": lambda acl: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL=acl),
        "CopyObject": lambda acl: s3.copy_object(
            Bucket=bucket, Key="k", CopySource=source, ACL=acl
        ),
        "CreateMultipartUpload": lambda acl: s3.create_multipart_upload(
            Bucket=bucket, Key="k", ACL=acl
        ),
        "CreateBucket": lambda acl: s3.create_bucket(Bucket=fresh, ACL=acl),
        "PutObjectAcl": lambda acl: s3.put_object_acl(Bucket=bucket, Key="src", ACL=acl),
        "PutBucketAcl": lambda acl: s3.put_bucket_acl(Bucket=bucket, ACL=acl),
    }
    for action, call in calls.items():
        with pytest.raises(ClientError) as exc:
            call("not-a-real-acl")
        err = exc.value.response
        assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == (
            "InvalidArgument",
            400,
        ), action
        assert err["Error"]["ArgumentName"] == "x-amz-acl", action
        with pytest.raises(ClientError) as exc:
            call("public-read")
        not_implemented(exc)
        call("private")
