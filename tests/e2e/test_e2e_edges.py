"""Edges of the S3 protocol that real clients hit, against a live server:
presigned HEAD and DELETE; `Expect: 100-continue` on a raw socket (accepted and
rejected before the body); plain `Transfer-Encoding: chunked` bodies
(UNSIGNED-PAYLOAD, no aws-chunked framing) for PutObject and UploadPart;
DeleteObjects limits, Quiet mode, one commit per request and its integrity
headers; conditional CompleteMultipartUpload; an If-None-Match: * race;
zero-byte `dir/` markers; HeadObject with a VersionId.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import REGION, error_code

MiB = 1024 * 1024
UNSIGNED = "UNSIGNED-PAYLOAD"


def path_of(bucket: str, key: str | None = None) -> str:
    return "/" + quote(bucket) + ("/" + quote(key, safe="/~") if key else "")


class _FixedPayloadSigner(S3SigV4Auth):
    """S3 SigV4 with a given x-amz-content-sha256 (botocore signs every body over
    plain HTTP otherwise)."""

    def __init__(self, credentials: Credentials, payload_hash: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload_hash = payload_hash

    def payload(self, request: Any) -> str:
        return self._payload_hash


def signed_headers(
    server: Any,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    payload_hash: str = UNSIGNED,
) -> dict[str, str]:
    """SigV4 header auth for a request whose body is not signed (UNSIGNED-PAYLOAD
    by default); the returned headers include Host."""
    url = f"{server.endpoint}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=b"", headers=dict(headers or {}))
    credentials = Credentials(server.access_key, server.secret_key)
    _FixedPayloadSigner(credentials, payload_hash).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == payload_hash
    out = dict(request.headers.items())
    out["Host"] = f"127.0.0.1:{server.port}"
    return out


# --------------------------------------------------------------------------- raw HTTP/1.1


class RawConnection:
    """One plain TCP connection speaking HTTP/1.1 by hand."""

    def __init__(self, server: Any, timeout: float = 30) -> None:
        assert server.ca_bundle is None, "RawConnection speaks plain HTTP"
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send_head(self, method: str, target: str, headers: Mapping[str, str]) -> None:
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed mid-response (buffer {self.buf!r})")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("connection closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """The next response head (interim or final): status, status line, headers."""
        status_line = self._line().decode("latin-1")
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), status_line, headers

    def read_body(self, method: str, status: int, headers: Mapping[str, str]) -> bytes:
        if method == "HEAD" or status in (204, 304):
            return b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    return body
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n"
        return self._exactly(int(headers.get("content-length", "0")))

    def read_response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        status, _, headers = self.read_head()
        while 100 <= status < 200:
            status, _, headers = self.read_head()
        return status, headers, self.read_body(method, status, headers)

    def peer_closed(self, wait: float = 5.0) -> bool:
        """True when the server closes the connection within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(30)


@pytest.fixture
def raw_conn(server: Any) -> Iterator[Any]:
    opened: list[RawConnection] = []

    def make() -> RawConnection:
        conn = RawConnection(server)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def chunked(body: bytes, sizes: tuple[int, ...] = (1, 1000, 65536, 7)) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding of `body`, in chunks of varied sizes."""
    pos = 0
    i = 0
    while pos < len(body):
        part = body[pos : pos + sizes[i % len(sizes)]]
        yield b"%x\r\n%s\r\n" % (len(part), part)
        pos += len(part)
        i += 1
    yield b"0\r\n\r\n"


def rnd(n: int, tag: str = "x") -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha512(f"{tag}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


# --------------------------------------------------------------------------- presigned


def test_presigned_head_and_delete(server: Any, new_bucket: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("presign")
    body = b"presigned head and delete\n"
    put = s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=body)

    head_url = s3.generate_presigned_url(
        "head_object", Params={"Bucket": bucket, "Key": "dir/a.txt"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in head_url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in head_url
    resp = requests.head(head_url, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Length"] == str(len(body))
    assert resp.headers["ETag"] == put["ETag"]
    assert resp.headers.get("x-amz-version-id") == put["VersionId"]

    # a presigned URL is for its method only
    assert requests.delete(head_url, timeout=30).status_code == 403

    delete_url = s3.generate_presigned_url(
        "delete_object", Params={"Bucket": bucket, "Key": "dir/a.txt"}, ExpiresIn=300
    )
    resp = requests.delete(delete_url, timeout=30)
    assert resp.status_code == 204, resp.text
    assert requests.head(head_url, timeout=30).status_code == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dir/a.txt")
    assert exc.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    # still readable at the version it had
    old = s3.get_object(Bucket=bucket, Key="dir/a.txt", VersionId=put["VersionId"])
    assert old["Body"].read() == body


# --------------------------------------------------------------------------- 100-continue


def test_expect_100_continue_accepted(server: Any, new_bucket: Any, raw_conn: Any) -> None:
    bucket = new_bucket("expect")
    body = rnd(300_000, "expect")
    path = path_of(bucket, "expected.bin")
    headers = signed_headers(server, "PUT", path)
    headers.update({"Content-Length": str(len(body)), "Expect": "100-continue"})
    conn = raw_conn()
    conn.send_head("PUT", path, headers)
    # the interim response arrives before any of the body is sent
    status, status_line, _ = conn.read_head()
    assert status == 100, status_line
    assert status_line.startswith("HTTP/1.1 100"), status_line
    conn.sock.sendall(body)
    status, resp_headers, data = conn.read_response("PUT")
    assert status == 200, data
    assert resp_headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = server.client().get_object(Bucket=bucket, Key="expected.bin")
    assert got["Body"].read() == body

    # the connection is still usable
    head_path = path_of(bucket, "expected.bin")
    conn.send_head("HEAD", head_path, signed_headers(server, "HEAD", head_path))
    status, resp_headers, _ = conn.read_response("HEAD")
    assert status == 200 and resp_headers["content-length"] == str(len(body))


def test_expect_100_continue_rejected_before_the_body(
    server: Any, new_bucket: Any, raw_conn: Any
) -> None:
    """A PUT into a missing bucket is answered 404 at once, without a 100; then
    the connection either closes (announced by Connection: close) or stays
    usable: the body the client then sends is read and discarded."""
    missing = new_bucket("nobucket", create=False)
    body = rnd(200_000, "rejected")
    path = path_of(missing, "k.bin")
    headers = signed_headers(server, "PUT", path)
    headers.update({"Content-Length": str(len(body)), "Expect": "100-continue"})
    conn = raw_conn()
    conn.send_head("PUT", path, headers)
    status, status_line, resp_headers = conn.read_head()
    assert status == 404, status_line  # final, and no 100 Continue before it
    data = conn.read_body("PUT", status, resp_headers)
    assert error_code(data) == "NoSuchBucket", data

    if resp_headers.get("connection", "").lower() == "close":
        assert conn.peer_closed(), "Connection: close announced but the connection stayed open"
    else:
        # keep-alive: the server must skip the body if it comes, then serve the next request
        conn.sock.sendall(body)
        conn.send_head("GET", "/", signed_headers(server, "GET", "/"))
        status, _, data = conn.read_response("GET")
        assert status == 200, data
        assert b"ListAllMyBucketsResult" in data
    s3 = server.client()
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=missing)


# --------------------------------------------------------------------------- chunked TE


def test_transfer_encoding_chunked_put_object(server: Any, new_bucket: Any, raw_conn: Any) -> None:
    bucket = new_bucket("techunk")
    body = rnd(200_003, "te-put")
    path = path_of(bucket, "te/put.bin")
    headers = signed_headers(server, "PUT", path, headers={"Content-Type": "application/x-te"})
    headers["Transfer-Encoding"] = "chunked"
    conn = raw_conn()
    conn.send_head("PUT", path, headers)
    for piece in chunked(body):
        conn.sock.sendall(piece)
    status, resp_headers, data = conn.read_response("PUT")
    assert status == 200, data
    assert resp_headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    s3 = server.client()
    got = s3.get_object(Bucket=bucket, Key="te/put.bin")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "application/x-te"

    # an empty chunked body is a zero-byte object
    path = path_of(bucket, "te/empty")
    headers = signed_headers(server, "PUT", path)
    headers["Transfer-Encoding"] = "chunked"
    conn.send_head("PUT", path, headers)
    conn.sock.sendall(b"0\r\n\r\n")
    status, _, data = conn.read_response("PUT")
    assert status == 200, data
    assert s3.get_object(Bucket=bucket, Key="te/empty")["Body"].read() == b""


def test_transfer_encoding_chunked_upload_part(server: Any, new_bucket: Any, raw_conn: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("tepart")
    parts = [rnd(5 * MiB + 17, "p1"), rnd(1234, "p2")]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="te/multi.bin")["UploadId"]
    conn = raw_conn()
    done = []
    for number, part in enumerate(parts, 1):
        path = path_of(bucket, "te/multi.bin")
        query = f"partNumber={number}&uploadId={quote(upload, safe='')}"
        headers = signed_headers(server, "PUT", path, query)
        headers["Transfer-Encoding"] = "chunked"
        conn.send_head("PUT", f"{path}?{query}", headers)
        for piece in chunked(part, (65536, 100_000, 3)):
            conn.sock.sendall(piece)
        status, resp_headers, data = conn.read_response("PUT")
        assert status == 200, data
        assert resp_headers["etag"] == f'"{hashlib.md5(part).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": resp_headers["etag"]})
    listed = s3.list_parts(Bucket=bucket, Key="te/multi.bin", UploadId=upload)["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in parts]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="te/multi.bin", UploadId=upload, MultipartUpload={"Parts": done}
    )
    got = s3.get_object(Bucket=bucket, Key="te/multi.bin")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"].strip('"').endswith("-2")


# --------------------------------------------------------------------------- DeleteObjects


def delete_xml(keys: list[str], quiet: bool = False, versions: Mapping[str, str] = {}) -> bytes:
    items = "".join(
        f"<Object><Key>{k}</Key>"
        + (f"<VersionId>{versions[k]}</VersionId>" if k in versions else "")
        + "</Object>"
        for k in keys
    )
    q = "<Quiet>true</Quiet>" if quiet else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete>{q}{items}</Delete>'.encode()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def put_many(s3: Any, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def test_delete_objects_quiet_lists_only_errors(server: Any, new_bucket: Any, raw_s3: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("dquiet")
    put = s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    out = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Quiet": True,
            "Objects": [
                {"Key": "a"},
                {"Key": "missing"},
                {"Key": "b", "VersionId": put["VersionId"]},
            ],
        },
    )
    # Quiet: only errors are listed, and there are none; the version delete
    # names a version of "a" under key "b", which "b" never had: a no-op.
    assert "Deleted" not in out and "Errors" not in out, out
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["b"]

    # Quiet with nothing but successes: an empty DeleteResult
    body = delete_xml(["b"], quiet=True)
    status, _, data = raw_s3.request(
        "POST",
        bucket,
        query="delete=",
        body=body,
        headers={"x-amz-checksum-crc32": crc32_b64(body)},
    )
    assert status == 200, data
    assert b"<Deleted>" not in data and b"<Error>" not in data, data
    assert b"DeleteResult" in data
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_delete_objects_1000_keys_in_one_commit(server: Any, new_bucket: Any, db: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("d1000")
    keys = [f"k/{i:04d}" for i in range(1000)]
    put_many(s3, bucket, keys)
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)["KeyCount"] == 1000
    commits = db.commit_count(bucket)

    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert not out.get("Errors"), out
    assert sorted(d["Key"] for d in out["Deleted"]) == keys
    version = out["ResponseMetadata"]["HTTPHeaders"]["x-amz-version-id"]
    assert db.commit_count(bucket) == commits + 1
    assert db.branch_head(bucket) == version
    assert {d.get("DeleteMarkerVersionId") for d in out["Deleted"]} == {version}
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    markers: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="k/"):
        markers += page.get("DeleteMarkers", [])
    assert sorted(m["Key"] for m in markers) == keys
    assert {m["VersionId"] for m in markers} == {version}
    assert all(m["IsLatest"] for m in markers)


def test_delete_objects_limits_and_integrity_headers(
    server: Any, new_bucket: Any, raw_s3: Any, db: Any
) -> None:
    s3 = server.client()
    bucket = new_bucket("dlimits")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"keep")
    commits = db.commit_count(bucket)

    body = delete_xml([f"x{i}" for i in range(1001)])
    status, _, data = raw_s3.request(
        "POST",
        bucket,
        query="delete=",
        body=body,
        headers={"x-amz-checksum-crc32": crc32_b64(body)},
    )
    assert (status, error_code(data)) == (400, "MalformedXML"), data

    body = delete_xml(["keep"])
    status, _, data = raw_s3.request("POST", bucket, query="delete=", body=body)
    assert (status, error_code(data)) == (400, "InvalidRequest"), data  # neither header

    wrong = crc32_b64(body + b"!")
    status, _, data = raw_s3.request(
        "POST", bucket, query="delete=", body=body, headers={"x-amz-checksum-crc32": wrong}
    )
    assert (status, error_code(data)) == (400, "BadDigest"), data
    assert db.commit_count(bucket) == commits
    assert s3.head_object(Bucket=bucket, Key="keep")["ContentLength"] == 4

    # a checksum alone (no Content-MD5) is enough
    status, headers, data = raw_s3.request(
        "POST",
        bucket,
        query="delete=",
        body=body,
        headers={"x-amz-checksum-crc32": crc32_b64(body)},
    )
    assert status == 200, data
    assert b"<Key>keep</Key>" in data
    assert db.commit_count(bucket) == commits + 1
    assert headers["x-amz-version-id"] == db.branch_head(bucket)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # 1000 keys is the limit, not over it
    body = delete_xml([f"x{i}" for i in range(1000)], quiet=True)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    status, _, data = raw_s3.request(
        "POST", bucket, query="delete=", body=body, headers={"Content-MD5": md5}
    )
    assert status == 200, data


# --------------------------------------------------------------------------- conditional writes


def test_conditional_complete_multipart_upload(server: Any, new_bucket: Any, db: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("condmpu")
    s3.put_object(Bucket=bucket, Key="exists", Body=b"original")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="exists")["UploadId"]
    part = s3.upload_part(
        Bucket=bucket, Key="exists", UploadId=upload, PartNumber=1, Body=b"replacement"
    )
    commits = db.commit_count(bucket)
    head = db.branch_head(bucket)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="exists",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            IfNoneMatch="*",
        )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert exc.value.response["Error"]["Code"] == "PreconditionFailed"
    assert db.commit_count(bucket) == commits
    assert db.branch_head(bucket) == head
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == b"original"

    # the same conditional completion onto a new key succeeds
    upload = s3.create_multipart_upload(Bucket=bucket, Key="fresh")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="fresh", UploadId=upload, PartNumber=1, Body=b"new")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="fresh",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        IfNoneMatch="*",
    )
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"new"
    assert db.commit_count(bucket) == commits + 1


def test_if_none_match_star_race(server: Any, new_bucket: Any, db: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("inmrace")
    commits = db.commit_count(bucket)
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[tuple[int, str | None]] = []  # (status, version id or error code)
    lock = threading.Lock()

    def attempt(i: int) -> None:
        client = server.client(retries={"max_attempts": 1, "mode": "standard"})
        barrier.wait()
        try:
            out = client.put_object(
                Bucket=bucket, Key="once", Body=f"writer {i}".encode(), IfNoneMatch="*"
            )
            result = (200, out.get("VersionId"))
        except ClientError as exc:
            error = exc.response["Error"]["Code"]
            result = (exc.response["ResponseMetadata"]["HTTPStatusCode"], error)
        with lock:
            results.append(result)

    pool = [threading.Thread(target=attempt, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] + [412] * (threads - 1), sorted(results)
    assert {code for s, code in results if s != 200} == {"PreconditionFailed"}, results
    winner = next(v for s, v in results if s == 200)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="once").get("Versions", [])
    assert [v["VersionId"] for v in versions] == [winner], versions
    assert db.commit_count(bucket) == commits + 1
    body = s3.get_object(Bucket=bucket, Key="once")["Body"].read()
    assert body.startswith(b"writer ")


# --------------------------------------------------------------------------- directory markers


def test_zero_byte_directory_markers(server: Any, new_bucket: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("dirmark")
    put = s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    assert put["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="dir/")
    assert head["ContentLength"] == 0
    got = s3.get_object(Bucket=bucket, Key="dir/")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""
    s3.put_object(Bucket=bucket, Key="top.txt", Body=b"top")

    def listing(**kw: Any) -> tuple[list[str], list[str]]:
        out = s3.list_objects_v2(Bucket=bucket, **kw)
        return (
            [o["Key"] for o in out.get("Contents", [])],
            [p["Prefix"] for p in out.get("CommonPrefixes", [])],
        )

    assert listing(Delimiter="/") == (["top.txt"], ["dir/"])
    assert listing(Prefix="dir/", Delimiter="/") == (["dir/"], [])
    assert listing(Prefix="dir/") == (["dir/"], [])
    # Hadoop-style probe: LIST of the path with max-keys 1-2 after a HEAD miss
    assert listing(Prefix="dir/", MaxKeys=1)[0] == ["dir/"]

    s3.put_object(Bucket=bucket, Key="dir/child.txt", Body=b"child")
    s3.put_object(Bucket=bucket, Key="dir/sub/", Body=b"")
    assert listing(Prefix="dir/", Delimiter="/") == (["dir/", "dir/child.txt"], ["dir/sub/"])
    assert listing(Delimiter="/") == (["top.txt"], ["dir/"])

    # delete the marker only: the children keep the prefix alive
    s3.delete_object(Bucket=bucket, Key="dir/")
    assert listing(Delimiter="/") == (["top.txt"], ["dir/"])
    assert listing(Prefix="dir/", Delimiter="/") == (["dir/child.txt"], ["dir/sub/"])
    # delete the rest: the prefix disappears from every listing
    out = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "dir/child.txt"}, {"Key": "dir/sub/"}]}
    )
    assert not out.get("Errors"), out
    assert listing(Delimiter="/") == (["top.txt"], [])
    assert listing(Prefix="dir/", Delimiter="/") == ([], [])
    assert listing(Prefix="dir/") == ([], [])
    v1 = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in v1.get("CommonPrefixes", [])] == []
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dir/")


# --------------------------------------------------------------------------- versions


def test_head_object_with_version_id(server: Any, new_bucket: Any) -> None:
    s3 = server.client()
    bucket = new_bucket("headver")
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one", ContentType="text/one")
    time.sleep(0.01)
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"second", ContentType="text/two")
    s3.put_object(Bucket=bucket, Key="other", Body=b"unrelated")

    old = s3.head_object(Bucket=bucket, Key="doc", VersionId=v1["VersionId"])
    assert old["ContentLength"] == 3
    assert old["ETag"] == v1["ETag"]
    assert old["ContentType"] == "text/one"
    assert old["VersionId"] == v1["VersionId"]
    new = s3.head_object(Bucket=bucket, Key="doc", VersionId=v2["VersionId"])
    assert (new["ContentLength"], new["ETag"], new["VersionId"]) == (6, v2["ETag"], v2["VersionId"])
    latest = s3.head_object(Bucket=bucket, Key="doc")
    assert latest["VersionId"] == v2["VersionId"]

    s3.delete_object(Bucket=bucket, Key="doc")
    gone = s3.head_object(Bucket=bucket, Key="doc", VersionId=v1["VersionId"])
    assert gone["ContentLength"] == 3
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="doc", VersionId="0" * 32)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="doc", VersionId="not-a-version")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)
