"""Multipart objects part by part: GetObject/HeadObject with partNumber, and
multipart checksums (per-part checksums in ListParts and Complete, the
object's COMPOSITE or FULL_OBJECT checksum on Complete, GET and HEAD)."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crc32c
import pytest
from awscrt.checksums import crc64nvme
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from s3api import checksums

MiB = 1024 * 1024
PART = 5 * MiB


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
    "crc32c": lambda d: crc32c.crc32c(d).to_bytes(4, "big"),
    "crc64nvme": lambda d: crc64nvme(d).to_bytes(8, "big"),
    "sha1": lambda d: hashlib.sha1(d).digest(),
    "sha256": lambda d: hashlib.sha256(d).digest(),
}


def pieces(data: bytes, size: int = PART) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def composite(algorithm: str, data: bytes) -> str:
    parts = pieces(data)
    inner = b"".join(DIGESTS[algorithm](p) for p in parts)
    return f"{b64(DIGESTS[algorithm](inner))}-{len(parts)}"


def upload_parts(s3: Any, bucket: str, key: str, bodies: list[bytes], **create: Any) -> Any:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, body in enumerate(bodies, 1):
        out = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)
        done.append({"PartNumber": number, "ETag": out["ETag"]})
    return upload, done


# --------------------------------------------------------------------------- partNumber


@pytest.fixture(scope="module")
def three_parts(s3: Any) -> tuple[str, list[bytes]]:
    bucket = f"parts-{os.getpid() % 10000}-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    bodies = [os.urandom(PART), os.urandom(PART + 17), os.urandom(1234)]
    upload, done = upload_parts(s3, bucket, "three", bodies)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="three", UploadId=upload, MultipartUpload={"Parts": done}
    )
    s3.put_object(Bucket=bucket, Key="single", Body=b"0123456789")
    return bucket, bodies


def test_get_and_head_each_part_of_a_multipart_object(
    s3: Any, three_parts: tuple[str, list[bytes]]
) -> None:
    bucket, bodies = three_parts
    total = sum(len(b) for b in bodies)
    whole_etag = s3.head_object(Bucket=bucket, Key="three")["ETag"]
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key="three")
    start = 0
    for number, body in enumerate(bodies, 1):
        got = s3.get_object(Bucket=bucket, Key="three", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == body
        assert got["ContentLength"] == len(body)
        assert got["ContentRange"] == f"bytes {start}-{start + len(body) - 1}/{total}"
        assert got["PartsCount"] == 3
        assert got["ETag"] == whole_etag
        head = s3.head_object(Bucket=bucket, Key="three", PartNumber=number)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert head["ContentLength"] == len(body)
        assert head["PartsCount"] == 3
        assert head["ContentRange"] == got["ContentRange"]
        start += len(body)


def test_part_number_beyond_the_count_is_invalid_part_number(
    s3: Any, three_parts: tuple[str, list[bytes]]
) -> None:
    bucket, _ = three_parts
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="three", PartNumber=4)
    assert code_of(exc) == ("InvalidPartNumber", 416)
    assert exc.value.response["Error"]["Message"] == "The requested partnumber is not satisfiable"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="three", PartNumber=4)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=2)
    assert code_of(exc) == ("InvalidPartNumber", 416)


def test_part_number_with_range_is_refused(s3: Any, three_parts: tuple[str, list[bytes]]) -> None:
    bucket, _ = three_parts
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="three", PartNumber=1, Range="bytes=0-9")
    assert code_of(exc) == ("InvalidRequest", 400)
    assert "Cannot specify both Range header and partNumber" in str(exc.value)


def test_bad_part_numbers_are_invalid_arguments(
    raw_s3: Any, three_parts: tuple[str, list[bytes]]
) -> None:
    bucket, _ = three_parts
    for value in ("0", "10001", "x", "-1"):
        status, _, body = raw_s3.request("GET", bucket, "three", query=f"partNumber={value}")
        assert status == 400, value
        assert b"<Code>InvalidArgument</Code>" in body


def test_part_one_of_a_single_part_object_is_the_whole_object(
    s3: Any, three_parts: tuple[str, list[bytes]]
) -> None:
    bucket, _ = three_parts
    got = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == b"0123456789"
    assert got["ContentRange"] == "bytes 0-9/10"
    assert "PartsCount" not in got
    head = s3.head_object(Bucket=bucket, Key="single", PartNumber=1)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 10


def test_a_copy_keeps_the_parts(s3: Any, three_parts: tuple[str, list[bytes]]) -> None:
    bucket, bodies = three_parts
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "three"})
    got = s3.get_object(Bucket=bucket, Key="copied", PartNumber=3)
    assert got["Body"].read() == bodies[2]
    assert got["PartsCount"] == 3


# --------------------------------------------------------------------------- checksums


def test_crc_combination_matches_the_crc_of_the_concatenation() -> None:
    rng = random.Random(7)
    for algorithm in ("crc32", "crc32c", "crc64nvme"):
        for _ in range(40):
            sizes = [rng.choice([0, 1, 7, 64, 1000, 4097]) for _ in range(rng.randint(1, 6))]
            blocks = [rng.randbytes(n) for n in sizes]
            parts = [(b64(DIGESTS[algorithm](b)), len(b)) for b in blocks]
            expected = b64(DIGESTS[algorithm](b"".join(blocks)))
            assert checksums.combine(algorithm, parts) == expected, (algorithm, sizes)


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [
        ("CRC32", "COMPOSITE"),
        ("CRC32C", "COMPOSITE"),
        ("SHA256", "COMPOSITE"),
        ("CRC64NVME", "FULL_OBJECT"),
    ],
)
def test_upload_file_with_a_checksum_algorithm(
    s3: Any, new_bucket: Any, tmp_path: Path, algorithm: str, kind: str
) -> None:
    bucket = new_bucket("mpsum")
    data = os.urandom(2 * PART + 54321)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
    s3.upload_file(
        str(source), bucket, "k", Config=config, ExtraArgs={"ChecksumAlgorithm": algorithm}
    )
    name = algorithm.lower()
    expected = composite(name, data) if kind == "COMPOSITE" else b64(DIGESTS[name](data))
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"')
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ChecksumType"] == kind
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data  # botocore validates a FULL_OBJECT value
    assert got[f"Checksum{algorithm}"] == expected
    assert got["ChecksumType"] == kind


def test_full_object_crc32_is_combined_and_verified(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("mpfull")
    bodies = [os.urandom(PART), os.urandom(777)]
    data = b"".join(bodies)
    upload, done = upload_parts(
        s3, bucket, "k", bodies, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload,
            MultipartUpload={"Parts": done},
            ChecksumCRC32=b64(DIGESTS["crc32"](b"not the data")),
            ChecksumType="FULL_OBJECT",
        )
    assert code_of(exc) == ("BadDigest", 400)
    out = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": done},
        ChecksumCRC32=b64(DIGESTS["crc32"](data)),
        ChecksumType="FULL_OBJECT",
    )
    assert out["ChecksumCRC32"] == b64(DIGESTS["crc32"](data))
    assert out["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == b64(DIGESTS["crc32"](data))
    assert head["ChecksumType"] == "FULL_OBJECT"


def test_list_parts_shows_checksums_and_complete_checks_them(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("mplist")
    bodies = [os.urandom(PART), b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    done = []
    for number, body in enumerate(bodies, 1):
        out = s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        assert out["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
        done.append(
            {"PartNumber": number, "ETag": out["ETag"], "ChecksumSHA256": out["ChecksumSHA256"]}
        )
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload)
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert [p["ChecksumSHA256"] for p in listed["Parts"]] == [
        b64(hashlib.sha256(b).digest()) for b in bodies
    ]
    wrong = [dict(done[0]), {**done[1], "ChecksumSHA256": b64(hashlib.sha256(b"x").digest())}]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": wrong}
        )
    assert code_of(exc) == ("InvalidPart", 400)
    out = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": done}
    )
    assert out["ChecksumSHA256"] == composite("sha256", b"".join(bodies))
    assert out["ChecksumType"] == "COMPOSITE"


def test_parts_without_a_checksum_get_the_uploads_algorithm(s3: Any, new_bucket: Any) -> None:
    """A part sent without a checksum of the upload's algorithm gets one computed."""
    bucket = new_bucket("mpcalc")
    bodies = [os.urandom(PART), b"end"]
    upload, done = upload_parts(s3, bucket, "k", bodies, ChecksumAlgorithm="CRC32C")
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload)
    assert [p["ChecksumCRC32C"] for p in listed["Parts"]] == [
        b64(DIGESTS["crc32c"](b)) for b in bodies
    ]
    # As S3: a composite checksum is built from the part checksums the client
    # lists, so a Complete that leaves them out is refused.
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": done}
        )
    assert exc.value.response["Error"]["Code"] == "InvalidRequest"
    assert "missing for part 1" in exc.value.response["Error"]["Message"]
    with_sums = [
        {**d, "ChecksumCRC32C": p["ChecksumCRC32C"]}
        for d, p in zip(done, listed["Parts"], strict=True)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": with_sums}
    )
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == composite("crc32c", b"".join(bodies))


def test_complete_checks_the_declared_object_size(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("mpsize")
    bodies = [os.urandom(PART), b"end"]
    upload, done = upload_parts(s3, bucket, "k", bodies)
    for wrong in (PART, PART + 4):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key="k",
                UploadId=upload,
                MultipartUpload={"Parts": done},
                MpuObjectSize=wrong,
            )
        assert exc.value.response["Error"]["Code"] == "InvalidRequest"
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": done},
        MpuObjectSize=PART + 3,
    )
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == PART + 3


def test_create_refuses_unknown_algorithms_and_bad_types(raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("mpbad")
    for headers in (
        {"x-amz-checksum-algorithm": "MD4"},
        {"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
        {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
        {"x-amz-checksum-type": "COMPOSITE"},
    ):
        status, _, body = raw_s3.request("POST", bucket, "k", query="uploads=", headers=headers)
        assert status == 400, headers
        assert b"<Code>InvalidRequest</Code>" in body, body


def test_entry_wire_form_stays_compatible() -> None:
    """`parts` is an optional trailing wire element: an entry without parts
    encodes exactly as before, and an old 9-element wire list decodes."""
    import dataclasses

    from versioning.ids import ContentId, VersionId
    from versioning.model import ObjectEntry, pack

    old = [3, b"c" * 16, "etag", "text/plain", 1, b"v" * 16, [["a", "b"]], [], [["crc32", "x"]]]
    entry = ObjectEntry.from_wire(list(old))
    assert entry.parts == ()
    fresh = ObjectEntry(
        size=3,
        content=ContentId(b"c" * 16),
        etag="etag",
        content_type="text/plain",
        last_modified=1,
        version=VersionId(b"v" * 16),
        metadata={"a": "b"},
        checksums={"crc32": "x"},
    )
    assert pack(fresh.to_wire()) == pack(old)
    multipart = dataclasses.replace(fresh, parts=(2, 1))
    wire = multipart.to_wire()
    assert wire[-1] == [2, 1]
    assert ObjectEntry.from_wire(wire).parts == (2, 1)


def test_upload_part_copy_parts_get_the_uploads_checksum(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("mpcopy")
    source = os.urandom(PART + 100)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{PART - 1}",
    )["CopyPartResult"]
    assert first["ChecksumCRC32"] == b64(DIGESTS["crc32"](source[:PART]))
    second = s3.upload_part_copy(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
    )["CopyPartResult"]
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload)
    assert [p["ChecksumCRC32"] for p in listed["Parts"]] == [
        b64(DIGESTS["crc32"](source[:PART])),
        b64(DIGESTS["crc32"](source)),
    ]
    assert listed["ChecksumType"] == "FULL_OBJECT"
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["ETag"]},
                {"PartNumber": 2, "ETag": second["ETag"]},
            ]
        },
    )
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == source[:PART] + source
    assert got["ChecksumCRC32"] == b64(DIGESTS["crc32"](source[:PART] + source))
    assert got["ChecksumType"] == "FULL_OBJECT"
