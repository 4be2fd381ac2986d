"""aws-chunked uploads against a live server: the three STREAMING-* modes, signed
by hand with botocore's SigV4 signer and framed with chained chunk signatures,
over Content-Length and over Transfer-Encoding: chunked; UploadPart with
trailer framing (what pyarrow sends over plain HTTP); bad chunk signatures,
bad trailer checksums; and boto3's own trailer framing.

boto3 uses STREAMING-UNSIGNED-PAYLOAD-TRAILER only over HTTPS. Here it is made
to choose the trailer location over plain HTTP (a before-call hook flips the
checksum location botocore resolved), so botocore's own framing, headers and
signer are exercised; the HTTPS transport itself is not covered here.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import crc32c
import pytest
from awscrt.checksums import crc64nvme
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from gateway.signing import sigv4
from s3api import chunked

REGION = "us-east-1"
MiB = 1024 * 1024
UNSIGNED_TRAILER = sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER
SIGNED = sigv4.STREAMING_PAYLOAD
SIGNED_TRAILER = sigv4.STREAMING_PAYLOAD_TRAILER
MODES = [SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def checksum(algorithm: str, data: bytes) -> str:
    """x-amz-checksum-<algorithm> of `data`, computed independently of the server."""
    if algorithm == "crc32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "crc32c":
        return b64(crc32c.crc32c(data).to_bytes(4, "big"))
    if algorithm == "crc64nvme":
        return b64(crc64nvme(data, 0).to_bytes(8, "big"))
    return b64(hashlib.new(algorithm, data).digest())


class _StreamingSigner(S3SigV4Auth):
    """botocore's S3 SigV4 signer, with x-amz-content-sha256 set to a STREAMING-* value."""

    def __init__(self, credentials: Credentials, payload_hash: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload_hash = payload_hash

    def payload(self, request: Any) -> str:
        return self._payload_hash


class Sent:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def code(self) -> str | None:
        match = re.search(rb"<Code>([^<]*)</Code>", self.body)
        return match.group(1).decode() if match else None


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _pieces(framed: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(framed), size):
        yield framed[i : i + size]


def send_chunked(
    server: Any,
    bucket: str,
    key: str,
    data: bytes,
    mode: str,
    *,
    query: str = "",
    chunk_size: int = 64 * 1024,
    trailer: str | None = "crc32",
    trailer_value: str | None = None,
    content_encoding: bool = True,
    transfer_chunked: bool = False,
    decoded_length: int | None = None,
    headers: dict[str, str] | None = None,
    tamper: Callable[[bytes], bytes] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Sent:
    """PUT `data` as an aws-chunked body in `mode`, signed with the server's credentials."""
    path = f"/{bucket}/{quote(key, safe='/~')}"
    target = path + (f"?{query}" if query else "")
    all_headers = {
        "x-amz-decoded-content-length": str(len(data) if decoded_length is None else decoded_length)
    }
    if content_encoding:
        all_headers["Content-Encoding"] = "aws-chunked"
    trailers: list[tuple[str, str]] = []
    if trailer is not None and mode in chunked.TRAILER_MODES:
        name = f"x-amz-checksum-{trailer}"
        all_headers["x-amz-trailer"] = name
        trailers = [(name, trailer_value or checksum(trailer, data))]
    all_headers.update(headers or {})
    pieces = _chunks(data, chunk_size)
    signed_chunks = mode in chunked.SIGNED_MODES

    def frame(signing: chunked.ChunkSigning | None) -> bytes:
        return chunked.encode(
            pieces,
            signing=signing if signed_chunks else None,
            trailers=trailers,
            signed_trailer=mode == SIGNED_TRAILER,
        )

    if not transfer_chunked:
        # Signatures have a fixed length, so a dummy signing gives the framed length.
        dummy = chunked.ChunkSigning(b"k", "20000101T000000Z", "scope", "0" * 64)
        all_headers["Content-Length"] = str(len(frame(dummy)))
    request = AWSRequest(
        method="PUT", url=f"{server.endpoint}{target}", data=b"", headers=all_headers
    )
    _StreamingSigner(Credentials(server.access_key, server.secret_key), mode).add_auth(request)
    authorization = request.headers["Authorization"]
    seed = re.search(r"Signature=([0-9a-f]{64})", authorization)
    assert seed is not None
    amz_date = request.headers["X-Amz-Date"]
    signing = chunked.ChunkSigning(
        sigv4.signing_key(server.secret_key, amz_date[:8], REGION, "s3"),
        amz_date,
        f"{amz_date[:8]}/{REGION}/s3/aws4_request",
        seed.group(1),
    )
    framed = frame(signing)
    if tamper is not None:
        framed = tamper(framed)
    wire_headers = dict(request.headers.items())
    own = conn is None
    connection = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        if transfer_chunked:
            wire_headers["Transfer-Encoding"] = "chunked"
            # HTTP chunks deliberately not aligned with the aws-chunked chunks
            connection.request(
                "PUT",
                target,
                body=_pieces(framed, 10_007),
                headers=wire_headers,
                encode_chunked=True,
            )
        else:
            connection.request("PUT", target, body=framed, headers=wire_headers)
        resp = connection.getresponse()
        body = resp.read()
        return Sent(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        if own:
            connection.close()


def assert_absent(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def assert_stored(s3: Any, bucket: str, key: str, data: bytes) -> dict[str, Any]:
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    return got  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the three modes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transfer_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_put_object_each_mode(
    server: Any, s3: Any, new_bucket: Any, mode: str, transfer_chunked: bool
) -> None:
    bucket = new_bucket()
    for size, chunk_size in ((0, 65536), (1, 65536), (200_000, 65536), (1_300_000, 8191)):
        data = os.urandom(size)
        key = f"obj-{size}"
        sent = send_chunked(
            server,
            bucket,
            key,
            data,
            mode,
            chunk_size=chunk_size,
            transfer_chunked=transfer_chunked,
        )
        assert sent.status == 200, (sent.status, sent.body)
        assert sent.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = assert_stored(s3, bucket, key, data)
        assert "ContentEncoding" not in got  # the aws-chunked coding is not the object's
        if mode in chunked.TRAILER_MODES:
            assert sent.headers["x-amz-checksum-crc32"] == checksum("crc32", data)
            assert got["ChecksumCRC32"] == checksum("crc32", data)


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_trailer_checksum_algorithms(server: Any, s3: Any, new_bucket: Any, algorithm: str) -> None:
    bucket = new_bucket()
    data = os.urandom(150_000)
    sent = send_chunked(server, bucket, "k", data, UNSIGNED_TRAILER, trailer=algorithm)
    assert sent.status == 200, sent.body
    assert sent.headers[f"x-amz-checksum-{algorithm}"] == checksum(algorithm, data)
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    field = {"crc64nvme": "ChecksumCRC64NVME"}.get(algorithm, f"Checksum{algorithm.upper()}")
    assert head[field] == checksum(algorithm, data)
    assert_stored(s3, bucket, "k", data)


def test_other_content_codings_are_kept(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    data = os.urandom(1000)
    sent = send_chunked(
        server,
        bucket,
        "k",
        data,
        UNSIGNED_TRAILER,
        headers={"Content-Encoding": "gzip,aws-chunked"},
    )
    assert sent.status == 200, sent.body
    assert assert_stored(s3, bucket, "k", data)["ContentEncoding"] == "gzip"


def test_spark_style_signed_chunks_without_content_encoding(
    server: Any, s3: Any, new_bucket: Any
) -> None:
    """Hadoop S3A (AWS Java SDK v1): signed chunks, Content-MD5, no Content-Encoding."""
    bucket = new_bucket()
    data = os.urandom(300_000)
    md5 = b64(hashlib.md5(data).digest())
    sent = send_chunked(
        server,
        bucket,
        "part-0000.parquet",
        data,
        SIGNED,
        chunk_size=128 * 1024,
        content_encoding=False,
        headers={"Content-MD5": md5},
    )
    assert sent.status == 200, sent.body
    assert_stored(s3, bucket, "part-0000.parquet", data)

    sent = send_chunked(
        server,
        bucket,
        "bad-md5",
        data,
        SIGNED,
        content_encoding=False,
        headers={"Content-MD5": b64(hashlib.md5(b"other").digest())},
    )
    assert (sent.status, sent.code) == (400, "BadDigest")
    assert_absent(s3, bucket, "bad-md5")


def test_upload_part_with_trailer_framing(server: Any, s3: Any, new_bucket: Any) -> None:
    """pyarrow (AWS C++ SDK) over plain HTTP: parts as STREAMING-UNSIGNED-PAYLOAD-TRAILER
    with a CRC64NVME trailer; one part over Transfer-Encoding: chunked, one signed."""
    bucket = new_bucket()
    key = "table/part-0.parquet"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts_data = [os.urandom(5 * MiB + 3), os.urandom(5 * MiB), os.urandom(777_777)]
    modes = [(UNSIGNED_TRAILER, False), (UNSIGNED_TRAILER, True), (SIGNED_TRAILER, False)]
    parts = []
    for number, (data, (mode, te)) in enumerate(zip(parts_data, modes, strict=True), 1):
        sent = send_chunked(
            server,
            bucket,
            key,
            data,
            mode,
            query=f"partNumber={number}&uploadId={upload}",
            trailer="crc64nvme",
            transfer_chunked=te,
        )
        assert sent.status == 200, sent.body
        assert sent.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert sent.headers["x-amz-checksum-crc64nvme"] == checksum("crc64nvme", data)
        parts.append({"PartNumber": number, "ETag": sent.headers["etag"]})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert [p["Size"] for p in listed] == [len(d) for d in parts_data]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    whole = b"".join(parts_data)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == len(whole)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()


# --------------------------------------------------------------------------- failures


def _replace_signature(framed: bytes, index: int) -> bytes:
    """`framed` with the index-th chunk signature replaced by a wrong one."""
    found = list(re.finditer(rb"chunk-signature=([0-9a-f]{64})", framed))
    start, end = found[index].span(1)
    return framed[:start] + bytes(reversed(framed[start:end])) + framed[end:]


@pytest.mark.parametrize("mode", [SIGNED, SIGNED_TRAILER])
@pytest.mark.parametrize("index", [0, 2, -1], ids=["first", "middle", "final-empty"])
def test_bad_chunk_signature_is_403_and_nothing_stored(
    server: Any, s3: Any, db: Any, new_bucket: Any, mode: str, index: int
) -> None:
    bucket = new_bucket()
    data = os.urandom(300_000)
    commits = db.commit_count(bucket)
    sent = send_chunked(
        server, bucket, "k", data, mode, tamper=lambda f: _replace_signature(f, index)
    )
    assert (sent.status, sent.code) == (403, "SignatureDoesNotMatch"), sent.body
    assert_absent(s3, bucket, "k")
    assert db.commit_count(bucket) == commits


def test_tampered_chunk_data_is_403(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    data = b"A" * 200_000

    def flip(framed: bytes) -> bytes:
        at = framed.index(b"A" * 100) + 70_000
        return framed[:at] + b"B" + framed[at + 1 :]

    sent = send_chunked(server, bucket, "k", data, SIGNED, tamper=flip)
    assert (sent.status, sent.code) == (403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "k")


def test_bad_trailer_signature_is_403(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    data = os.urandom(100_000)

    def wrong_trailer_signature(framed: bytes) -> bytes:
        head, _, sig = framed.rpartition(b"x-amz-trailer-signature:")
        return head + b"x-amz-trailer-signature:" + bytes(reversed(sig[:64])) + sig[64:]

    sent = send_chunked(server, bucket, "k", data, SIGNED_TRAILER, tamper=wrong_trailer_signature)
    assert (sent.status, sent.code) == (403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "k")


@pytest.mark.parametrize("mode", [UNSIGNED_TRAILER, SIGNED_TRAILER])
@pytest.mark.parametrize("transfer_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_bad_trailer_checksum_is_bad_digest_and_nothing_stored(
    server: Any, s3: Any, db: Any, new_bucket: Any, mode: str, transfer_chunked: bool
) -> None:
    bucket = new_bucket()
    data = os.urandom(250_000)
    commits = db.commit_count(bucket)
    sent = send_chunked(
        server,
        bucket,
        "k",
        data,
        mode,
        trailer="crc32",
        trailer_value=checksum("crc32", b"something else"),
        transfer_chunked=transfer_chunked,
    )
    assert (sent.status, sent.code) == (400, "BadDigest"), sent.body
    assert_absent(s3, bucket, "k")
    assert db.commit_count(bucket) == commits


def test_bad_trailer_checksum_on_upload_part(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    sent = send_chunked(
        server,
        bucket,
        "k",
        os.urandom(100_000),
        UNSIGNED_TRAILER,
        query=f"partNumber=1&uploadId={upload}",
        trailer="crc64nvme",
        trailer_value=checksum("crc64nvme", b"nope"),
    )
    assert (sent.status, sent.code) == (400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=upload).get("Parts", []) == []


def test_framing_errors_are_clean_s3_errors(server: Any, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    data = os.urandom(50_000)
    cases: list[tuple[dict[str, Any], int, str]] = [
        # decoded length disagrees with the data
        ({"decoded_length": len(data) + 1}, 400, "IncompleteBody"),
        ({"decoded_length": len(data) - 1}, 400, "IncompleteBody"),
        # a chunk size that does not match its data
        ({"tamper": lambda f: f.replace(b"c350\r\n", b"c34f\r\n", 1)}, 400, "InvalidRequest"),
        # trailer announced but absent
        (
            {"tamper": lambda f: f[: f.index(b"0\r\nx-amz-checksum") + 3] + b"\r\n"},
            400,
            "InvalidRequest",
        ),
        # unknown trailer algorithm
        ({"headers": {"x-amz-trailer": "x-amz-checksum-sha512"}}, 400, "InvalidRequest"),
        ({"headers": {"x-amz-sdk-checksum-algorithm": "XXHASH64"}}, 400, "InvalidRequest"),
    ]
    for i, (kwargs, status, code) in enumerate(cases):
        if "tamper" in kwargs:
            kwargs["transfer_chunked"] = True  # the framed length changes
        sent = send_chunked(server, bucket, f"k{i}", data, UNSIGNED_TRAILER, **kwargs)
        assert (sent.status, sent.code) == (status, code), (i, sent.body)
        assert_absent(s3, bucket, f"k{i}")
    assert (
        "sha512"
        in send_chunked(
            server,
            bucket,
            "x",
            data,
            UNSIGNED_TRAILER,
            headers={"x-amz-trailer": "x-amz-checksum-sha512"},
        ).body.decode()
    )


def test_errors_keep_the_connection_usable(server: Any, s3: Any, new_bucket: Any) -> None:
    """After a rejected aws-chunked body the next request on the connection still works."""
    bucket = new_bucket()
    data = os.urandom(70_000)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        bad = send_chunked(
            server,
            bucket,
            "k",
            data,
            SIGNED,
            tamper=lambda f: _replace_signature(f, 0),
            conn=conn,
        )
        assert bad.status == 403
        good = send_chunked(server, bucket, "k", data, SIGNED_TRAILER, conn=conn)
        assert good.status == 200, good.body
    finally:
        conn.close()
    assert_stored(s3, bucket, "k", data)


# --------------------------------------------------------------------------- boto3's own framing


def _trailer_client(server: Any, seen: list[dict[str, str]]) -> Any:
    """A boto3 client that sends PutObject/UploadPart checksums as aws-chunked
    trailers (as it does over HTTPS), recording the headers it sends."""
    client = server.client()

    def to_trailer(params: dict[str, Any], **_: Any) -> None:
        algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict):
            algorithm["in"] = "trailer"

    def record(request: Any, **_: Any) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )

    for operation in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-call.s3.{operation}", to_trailer)
    client.meta.events.register("before-send.s3", record)
    return client


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA256"])
def test_boto3_trailer_framing_put_object(server: Any, new_bucket: Any, algorithm: str) -> None:
    seen: list[dict[str, str]] = []
    client = _trailer_client(server, seen)
    bucket = new_bucket()
    data = os.urandom(2 * MiB + 17)  # botocore frames 1 MiB chunks
    result = client.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    sent = seen[-1]
    assert sent["x-amz-content-sha256"] == UNSIGNED_TRAILER
    assert sent["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
    assert sent["x-amz-decoded-content-length"] == str(len(data))
    assert "content-length" not in sent and sent["transfer-encoding"] == "chunked"
    assert result[f"Checksum{algorithm}"] == checksum(algorithm.lower(), data)
    assert_stored(client, bucket, "k", data)


def test_boto3_trailer_framing_upload_file_multipart(
    server: Any, new_bucket: Any, tmp_path: Any
) -> None:
    seen: list[dict[str, str]] = []
    client = _trailer_client(server, seen)
    bucket = new_bucket()
    data = os.urandom(11 * MiB + 5)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client.upload_file(str(source), bucket, "big", Config=config)
    framed = [h for h in seen if h.get("x-amz-content-sha256") == UNSIGNED_TRAILER]
    assert len(framed) == 3  # three parts, each aws-chunked with a trailer
    got = client.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == len(data)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()


def test_crc64nvme_header_from_boto3(s3: Any, new_bucket: Any) -> None:
    """polars / aws-cli v2 style: x-amz-checksum-crc64nvme as a header."""
    bucket = new_bucket()
    data = os.urandom(123_456)
    result = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="CRC64NVME")
    assert result["ChecksumCRC64NVME"] == checksum("crc64nvme", data)
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == checksum("crc64nvme", data)
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="bad", Body=data, ChecksumCRC64NVME=checksum("crc64nvme", b"x")
        )
    assert exc.value.response["Error"]["Code"] == "BadDigest"
    assert_absent(s3, bucket, "bad")
