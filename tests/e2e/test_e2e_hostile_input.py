"""Hostile input gets a clean 4xx, never a 500, a dropped connection or an
unverified checksum (issue 11, section 3): oversized numbers, deep nesting,
NUL bytes, header injection, client disconnects and undeclared trailer
checksums, each against a live server over real HTTP (raw sockets where a
client library would refuse to send the request)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
import uuid
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from hostile import API, Answer, sign, signed

from gateway.signing import sigv4
from s3api import chunked

HUGE = "9" * 5000
ZEROS = "0" * 5000
SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() says yes, int() says no


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def q(text: str) -> str:
    return quote(text, safe="")


def is_error(answer: Answer, status: int, code: str | None) -> None:
    assert answer.status == status, (answer.status, answer.error, answer.body[:500])
    if code is not None:
        assert answer.code == code, answer.body[:500]


@pytest.fixture
def obj(s3: Any, new_bucket: Any) -> tuple[str, str, bytes]:
    bucket = new_bucket()
    data = bytes(range(100))
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    return bucket, "k", data


def api_json(
    server: Any, method: str, path: str, doc: Any = None, raw: bytes | None = None
) -> Answer:
    body = raw if raw is not None else (json.dumps(doc).encode() if doc is not None else b"")
    headers = {"content-type": "application/json"} if body else {}
    return signed(server, method, path, body, headers)


def new_repo(server: Any) -> str:
    name = f"hi-{uuid.uuid4().hex[:8]}"
    answer = api_json(server, "POST", f"{API}/repos", {"name": name})
    assert answer.status == 201, answer.body
    return name


def log_since(server: Any, start: int) -> str:
    text: str = server.log_text()
    return text[start:]


# --------------------------------------------------------------------------- 1. numbers


def test_oversized_numbers_in_range_are_answered_as_s3_does(
    server: Any, obj: tuple[str, str, bytes]
) -> None:
    """A 5,000-digit number in a Range is read for its value: a start past the
    end is 416 InvalidRange, a last byte past the end is clamped, a suffix
    longer than the object is the whole object; leading zeros are just zeros."""
    bucket, key, data = obj
    target = f"/{bucket}/{key}"
    for value, status, body in (
        (f"bytes={HUGE}-", 416, None),
        (f"bytes={HUGE}-{HUGE}", 416, None),
        (f"bytes=0-{HUGE}", 206, data),
        (f"bytes=-{HUGE}", 206, data),
        (f"bytes={ZEROS}5-{ZEROS}9", 206, data[5:10]),
        (f"bytes={ZEROS}-", 206, data),
        (f"bytes=-{ZEROS}", 416, None),
        (f"bytes=5-{SUPERSCRIPT_TWO}", 200, data),  # not a byte range: ignored, as S3 does
    ):
        answer = signed(server, "GET", target, unsigned_headers={"Range": value})
        assert answer.status == status, (value[:20], answer.status, answer.error, answer.body[:300])
        if body is not None:
            assert answer.body == body
        else:
            assert answer.code == "InvalidRange"


def test_oversized_numbers_in_parameters_are_invalid_arguments(
    server: Any, s3: Any, obj: tuple[str, str, bytes]
) -> None:
    bucket, key, _ = obj
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    uid = q(upload)
    for bad in (HUGE, SUPERSCRIPT_TWO, q("\u0661"), "1e3", "+5", " 5"):
        v = q(bad) if bad not in (HUGE,) else bad
        for method, target in (
            ("GET", f"/{bucket}/{key}?partNumber={v}"),
            ("HEAD", f"/{bucket}/{key}?partNumber={v}"),
            ("GET", f"/{bucket}?max-keys={v}"),
            ("GET", f"/{bucket}?list-type=2&max-keys={v}"),
            ("GET", f"/{bucket}?versions&max-keys={v}"),
            ("GET", f"/{bucket}/mp?uploadId={uid}&max-parts={v}"),
            ("GET", f"/{bucket}/mp?uploadId={uid}&part-number-marker={v}"),
            ("GET", f"/{bucket}?uploads&max-uploads={v}"),
            ("PUT", f"/{bucket}/mp?uploadId={uid}&partNumber={v}"),
        ):
            if bad == "\u0661" and "max-" in target:
                continue  # ARABIC-INDIC DIGIT ONE: int() reads it; a number, if an odd one
            answer = signed(server, method, target)
            is_error(answer, 400, None if method == "HEAD" else "InvalidArgument")
    # headers carrying numbers
    for name, value, code in (
        ("x-amz-copy-source-range", f"bytes=0-{HUGE}", "InvalidArgument"),
        ("x-amz-copy-source-range", f"bytes={HUGE}-{HUGE}", "InvalidArgument"),
    ):
        answer = signed(
            server,
            "PUT",
            f"/{bucket}/mp?uploadId={uid}&partNumber=1",
            headers={"x-amz-copy-source": f"{bucket}/{key}", name: value},
        )
        is_error(answer, 400, code)
    for value in (HUGE, SUPERSCRIPT_TWO):
        answer = signed(
            server,
            "PUT",
            f"/{bucket}/chunked",
            chunked.encode([b"abc"]),
            headers={"x-amz-decoded-content-length": value, "Content-Encoding": "aws-chunked"},
            payload_hash=sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER,
        )
        assert answer.status == 400, (answer.body, value[:10])
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")
    etag = part["ETag"]
    for number, size in (("1", HUGE), ("1", SUPERSCRIPT_TWO), (HUGE, "1"), (SUPERSCRIPT_TWO, "1")):
        doc = (
            "<CompleteMultipartUpload><Part><PartNumber>"
            f"{number}</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        ).encode()
        answer = signed(
            server,
            "POST",
            f"/{bucket}/mp?uploadId={uid}",
            doc,
            headers={"x-amz-mp-object-size": size},
        )
        assert answer.status == 400, (number[:10], size[:10], answer.body)
    # the upload is still there and completes normally
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert done["ETag"]


def test_oversized_numbers_on_the_control_api(server: Any) -> None:
    repo = new_repo(server)
    for value in (HUGE, q(SUPERSCRIPT_TWO), "1" + ZEROS):
        for path in (f"{API}/repos", f"{API}/repos/{repo}/branches", f"{API}/repos/{repo}/commits"):
            answer = signed(server, "GET", f"{path}?limit={value}")
            is_error(answer, 400, "invalid_request")
    doc = b'{"idle_seconds": ' + HUGE.encode() + b"}"
    answer = api_json(server, "POST", f"{API}/repos/{repo}/open-commits", raw=doc)
    is_error(answer, 400, "invalid_request")


# --------------------------------------------------------------------------- 2. nesting


def test_deeply_nested_json_on_every_control_api_post(server: Any) -> None:
    from gateway.api.operations import OPERATIONS

    repo = new_repo(server)
    deep_array = b"[" * 100_000 + b"]" * 100_000
    deep_field = b'{"name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    posts = [o.path for o in OPERATIONS if o.method == "POST"]
    assert len(posts) >= 6
    for path in posts:
        target = API + path.replace("{repo}", repo).replace("{branch}", "main").replace(
            "{id}", "0" * 32
        )
        for body in (deep_array, deep_field):
            answer = api_json(server, "POST", target, raw=body)
            is_error(answer, 400, "invalid_request")
            assert answer.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(
            b"<!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>", id="doctype"
        ),
        pytest.param(
            b'<!DOCTYPE Delete SYSTEM "http://127.0.0.1:1/x.dtd"><Delete><Object><Key>k</Key>'
            b"</Object></Delete>",
            id="external-dtd",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b"<Delete><Object><Key>&c;</Key></Object></Delete>",
            id="entity-expansion",
        ),
        pytest.param(
            b"<Delete><Object><Key>k</Key>"
            + b"<x>" * 200_000
            + b"</x>" * 200_000
            + b"</Object></Delete>",
            id="deep",
        ),
        pytest.param(b"<Delete><Object><Key>a\x00b</Key></Object></Delete>", id="nul"),
    ],
)
def test_hostile_xml_is_malformed(server: Any, obj: tuple[str, str, bytes], doc: bytes) -> None:
    bucket, key, data = obj
    md5 = b64(hashlib.md5(doc).digest())
    answer = signed(server, "POST", f"/{bucket}?delete", doc, headers={"Content-MD5": md5})
    is_error(answer, 400, "MalformedXML")
    assert signed(server, "GET", f"/{bucket}/{key}").body == data


# --------------------------------------------------------------------------- 3. NUL


def test_nul_and_lone_surrogates_on_the_control_api(server: Any) -> None:
    repo = new_repo(server)
    for target in (
        f"{API}/repos/a%00b",
        f"{API}/repos/{repo}/branches/ma%00in",
        f"{API}/repos/{repo}/tags/t%00",
        f"{API}/repos/{repo}/commits/main%00",
        f"{API}/repos/{repo}/branches?cursor=%00",
        f"{API}/repos?cursor=a%00",
        f"{API}/repos/{repo}/tags?cursor=%00",
        f"{API}/repos/{repo}/commits?cursor=%00",
        f"{API}/repos/{repo}/commits?ref=main%00",
        f"{API}/repos/{repo}/commits?path=a%00",
        f"{API}/repos/{repo}/history?path=a%00",
        f"{API}/repos/{repo}/history?path=a&cursor=%00",
        f"{API}/repos/{repo}/diff?from=main&to=main&prefix=%00",
        f"{API}/repos/{repo}/diff?from=main&to=main&cursor=%00",
        f"{API}/repos/{repo}/open-commits?cursor=%00",
    ):
        answer = signed(server, "GET", target)
        is_error(answer, 400, "invalid_request")
    for text in ("a\u0000b", "\ud800", "x\udfffy"):
        for path, doc in (
            (f"{API}/repos", {"name": text}),
            (f"{API}/repos/{repo}/branches", {"name": text}),
            (f"{API}/repos/{repo}/branches", {"name": "b", "from": text}),
            (f"{API}/repos/{repo}/tags", {"name": text}),
            (f"{API}/repos/{repo}/open-commits", {"author": text}),
            (f"{API}/repos/{repo}/merge", {"source": text, "into": "main"}),
            (f"{API}/repos/{repo}/revert", {"commit": "main", "message": text}),
            (f"{API}/repos/{repo}/branches/main/reset", {"to": text}),
        ):
            answer = api_json(server, "POST", path, doc)
            is_error(answer, 400, "invalid_request")
    branches = signed(server, "GET", f"{API}/repos/{repo}/branches")
    assert [b["name"] for b in json.loads(branches.body)["items"]] == ["main"]


def test_nul_in_s3_keys_and_parameters(server: Any, s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    commits = db.commit_count(bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    for method, target, body in (
        ("PUT", f"/{bucket}/a%00b", b"x"),
        ("GET", f"/{bucket}/a%00b", b""),
        ("HEAD", f"/{bucket}/a%00b", b""),
        ("DELETE", f"/{bucket}/a%00b", b""),
        ("POST", f"/{bucket}/a%00b?uploads", b""),
        ("GET", f"/{bucket}?prefix=%00", b""),
        ("GET", f"/{bucket}?marker=%00", b""),
        ("GET", f"/{bucket}?list-type=2&start-after=%00", b""),
        ("GET", f"/{bucket}?list-type=2&continuation-token=%00", b""),
        ("GET", f"/{bucket}?delimiter=%00", b""),
        ("GET", f"/{bucket}?versions&key-marker=%00", b""),
        ("GET", f"/{bucket}?uploads&key-marker=k&upload-id-marker=%00", b""),
        ("GET", f"/{bucket}?uploads&key-marker=%00", b""),
        ("GET", f"/{bucket}/mp?uploadId=%00", b""),
        ("PUT", f"/{bucket}/mp?uploadId=%00&partNumber=1", b"p"),
        ("DELETE", f"/{bucket}/mp?uploadId={q(upload)}%00", b""),
    ):
        answer = signed(server, method, target, body)
        is_error(answer, 400, None if method == "HEAD" else "InvalidArgument")
    answer = signed(
        server, "PUT", f"/{bucket}/copy", headers={"x-amz-copy-source": f"{bucket}/k%00"}
    )
    is_error(answer, 400, "InvalidArgument")
    assert db.commit_count(bucket) == commits
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k"]


# --------------------------------------------------------------------------- 4. headers


@pytest.mark.parametrize(
    "param",
    [
        "response-content-type",
        "response-content-disposition",
        "response-cache-control",
        "response-content-language",
        "response-expires",
        "response-content-encoding",
    ],
)
def test_response_overrides_cannot_inject_headers(
    server: Any, obj: tuple[str, str, bytes], param: str
) -> None:
    bucket, key, data = obj
    for value in ("a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b", "a\x01b", "a\x7fb"):
        for method in ("GET", "HEAD"):
            answer = signed(server, method, f"/{bucket}/{key}?{param}={q(value)}")
            is_error(answer, 400, None if method == "HEAD" else "InvalidArgument")
            assert "x-injected" not in answer.headers
    # non-Latin-1 text is sent as its UTF-8 bytes (S3 does the same), not a 500
    answer = signed(server, "GET", f"/{bucket}/{key}?{param}={q('naïve €')}")
    assert answer.status == 200, answer.body
    header = param.removeprefix("response-")
    raw = dict((k.lower(), v) for k, v in answer.raw_headers)[header]
    assert raw.encode("latin-1").decode("utf-8") == "naïve €"
    assert answer.body == data


def test_stored_header_values_cannot_carry_line_breaks(
    server: Any, s3: Any, db: Any, new_bucket: Any
) -> None:
    """CR, LF and NUL never reach a stored header: the HTTP parser refuses them
    in a header value, and an obsolete line folding (a header continued on the
    next line) is refused too, so nothing is stored to be echoed on GET."""
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    commits = db.commit_count(bucket)
    for name in ("x-amz-meta-note", "Content-Disposition", "Cache-Control", "Content-Type"):
        for raw in (
            f"{name}: a\r\n b\r\n".encode(),  # obs-fold
            f"{name}: a\r\n\tb\r\n".encode(),
            f"{name}: a\x00b\r\n".encode(),
            f"{name}: a\rb\r\n".encode(),
            f"{name}: a\x01b\r\n".encode(),
        ):
            answer = signed(server, "PUT", f"/{bucket}/new", b"body", extra_header_lines=raw)
            assert answer.status == 400, (raw, answer.status, answer.error, answer.body)
            assert answer.code in ("BadRequest", "InvalidArgument"), answer.body
    assert db.commit_count(bucket) == commits


# --------------------------------------------------------------------------- 5. disconnects


def _send_and_hang_up(server: Any, head: bytes, partial: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head + partial)
    time.sleep(0.2)
    sock.close()


def _wait_for_log(server: Any, start: int, needle: str, seconds: float = 3.0) -> str:
    deadline = time.monotonic() + seconds
    text = log_since(server, start)
    while needle not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = log_since(server, start)
    return text


def test_client_disconnects_are_not_internal_errors(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    repo = new_repo(server)
    start = len(server.log_text())
    body = json.dumps({"name": "x" * 5000}).encode()
    for target, method, payload, sent in (
        (f"{API}/repos/{repo}/branches", "POST", body, 100),
        (f"{API}/repos", "POST", body, 100),
        (f"/{bucket}/k", "PUT", b"x" * 200_000, 100),
        (f"/{bucket}/big", "PUT", b"x" * (8 << 20), 3 << 20),  # through the chunker
        (f"/{bucket}?delete", "POST", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 2000, 100),
    ):
        headers = sign(server, method, target, payload)
        headers.pop("host", None)
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        head += f"Content-Length: {len(payload)}\r\n\r\n".encode()
        _send_and_hang_up(server, head, payload[:sent])
    # a GET whose reader hangs up mid-body
    s3.put_object(Bucket=bucket, Key="read", Body=b"z" * (8 << 20))
    headers = sign(server, "GET", f"/{bucket}/read")
    headers.pop("host", None)
    head = f"GET /{bucket}/read HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head)
    sock.recv(65536)
    sock.close()
    # the server goes on serving, and said nothing alarming about it
    assert signed(server, "GET", f"{API}/repos/{repo}").status == 200
    time.sleep(1.0)
    text = log_since(server, start)
    assert "Traceback" not in text, text
    assert "internal error" not in text.lower(), text
    assert "ERROR" not in text, text


# --------------------------------------------------------------------------- 6. trailers


def _trailer_put(
    server: Any,
    target: str,
    data: bytes,
    trailers: list[tuple[str, str]],
    announce: str | None,
) -> Answer:
    framed = chunked.encode([data], trailers=trailers)
    headers = {
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Encoding": "aws-chunked",
    }
    if announce is not None:
        headers["x-amz-trailer"] = announce
    return signed(
        server,
        "PUT",
        target,
        framed,
        headers,
        payload_hash=sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    )


@pytest.mark.parametrize(
    ("trailers", "announce"),
    [
        pytest.param([("x-amz-checksum-crc32", "AAAAAA==")], None, id="undeclared-wrong"),
        pytest.param([("x-amz-checksum-crc32", "RIGHT")], None, id="undeclared-right"),
        pytest.param(
            [("x-amz-checksum-crc32", "RIGHT"), ("x-amz-checksum-sha256", b64(b"x" * 32))],
            "x-amz-checksum-crc32",
            id="second-undeclared",
        ),
        pytest.param(
            [("x-amz-checksum-sha256", b64(b"x" * 32))],
            "x-amz-checksum-crc32",
            id="other-algorithm",
        ),
        pytest.param(
            [("x-amz-checksum-crc32", "RIGHT"), ("x-something-else", "1")],
            "x-amz-checksum-crc32",
            id="unknown-name",
        ),
        pytest.param([("x-something-else", "1")], None, id="unknown-undeclared"),
    ],
)
def test_trailer_checksums_are_verified_or_refused(
    server: Any,
    s3: Any,
    db: Any,
    new_bucket: Any,
    trailers: list[tuple[str, str]],
    announce: str | None,
) -> None:
    bucket = new_bucket()
    data = b"trailer checked body"
    trailers = [(n, crc32(data) if v == "RIGHT" else v) for n, v in trailers]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    for target in (f"/{bucket}/k", f"/{bucket}/mp?uploadId={q(upload)}&partNumber=1"):
        answer = _trailer_put(server, target, data, trailers, announce)
        assert answer.status == 400, (target, answer.status, answer.body)
        assert answer.code in ("InvalidRequest", "BadDigest"), answer.body
    assert db.commit_count(bucket) == 0
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload).get("Parts", []) == []
    # the declared, right checksum is accepted
    ok = _trailer_put(
        server,
        f"/{bucket}/k",
        data,
        [("x-amz-checksum-crc32", crc32(data))],
        "x-amz-checksum-crc32",
    )
    assert ok.status == 200, ok.body
    assert ok.headers["x-amz-checksum-crc32"] == crc32(data)
