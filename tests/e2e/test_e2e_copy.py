"""CopyObject and UploadPartCopy: across branches, repos, snapshots and versions,
with no data copied."""

from __future__ import annotations

import hashlib
import os
import time
from email.utils import formatdate
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import error_code

MiB = 1024 * 1024


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def body_of(s3: Any, bucket: str, key: str, **kwargs: Any) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read())


def test_copy_keeps_content_and_metadata(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    put = s3.put_object(
        Bucket=bucket,
        Key="src.txt",
        Body=b"hello copy",
        ContentType="text/plain",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="a.txt"',
        Metadata={"colour": "blue"},
    )
    before = db.commit_count(bucket)
    resp = s3.copy_object(Bucket=bucket, Key="dst.txt", CopySource=f"{bucket}/src.txt")
    assert db.commit_count(bucket) == before + 1
    assert resp["CopyObjectResult"]["ETag"] == put["ETag"]
    assert resp["VersionId"] == db.branch_head(bucket)
    assert resp["CopySourceVersionId"] == put["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="dst.txt")
    assert head["ETag"] == put["ETag"]
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="a.txt"'
    assert head["Metadata"] == {"colour": "blue"}
    assert head["VersionId"] == resp["VersionId"]
    copied_at = resp["CopyObjectResult"]["LastModified"].timestamp()
    assert head["LastModified"].timestamp() == int(copied_at)
    assert body_of(s3, bucket, "dst.txt") == b"hello copy"
    assert body_of(s3, bucket, "src.txt") == b"hello copy"


def test_copy_with_replace_takes_the_request_metadata(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(
        Bucket=bucket, Key="a", Body=b"x", ContentType="text/plain", Metadata={"old": "1"}
    )
    s3.copy_object(
        Bucket=bucket,
        Key="b",
        CopySource={"Bucket": bucket, "Key": "a"},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"new": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="b")
    assert (head["ContentType"], head["Metadata"]) == ("application/json", {"new": "2"})
    # COPY (the default) ignores the request's metadata
    s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/a", Metadata={"ignored": "y"})
    head = s3.head_object(Bucket=bucket, Key="c")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"old": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="d", CopySource=f"{bucket}/a", MetadataDirective="MERGE")
    assert code_of(exc) == ("InvalidArgument", 400)


def test_copy_onto_itself_needs_replace(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"same", ContentType="text/plain")
    before = db.commit_count(bucket)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="k", CopySource=f"{bucket}/k")
    assert code_of(exc) == ("InvalidRequest", 400)
    assert "copy an object to itself" in exc.value.response["Error"]["Message"]
    # the same branch spelled out (repo.main) is the same bucket
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=f"{bucket}.main", Key="k", CopySource=f"{bucket}/k")
    assert code_of(exc) == ("InvalidRequest", 400)
    assert db.commit_count(bucket) == before
    s3.copy_object(
        Bucket=bucket,
        Key="k",
        CopySource=f"{bucket}/k",
        MetadataDirective="REPLACE",
        ContentType="text/markdown",
    )
    assert s3.head_object(Bucket=bucket, Key="k")["ContentType"] == "text/markdown"
    assert body_of(s3, bucket, "k") == b"same"
    assert db.commit_count(bucket) == before + 1


def test_copy_across_branches_and_repos(s3: Any, db: Any, new_bucket: Any) -> None:
    src = new_bucket("src")
    dst = new_bucket("dst")
    s3.put_object(Bucket=src, Key="dir/file", Body=b"from main")
    s3.create_bucket(Bucket=f"{src}.dev")
    s3.put_object(Bucket=f"{src}.dev", Key="dev-only", Body=b"from dev")
    # branch -> branch of the same repo
    s3.copy_object(Bucket=f"{src}.dev", Key="copied", CopySource=f"{src}/dir/file")
    assert body_of(s3, f"{src}.dev", "copied") == b"from main"
    # another repo, from a non-default branch, with a leading slash
    s3.copy_object(Bucket=dst, Key="x/y", CopySource=f"/{src}.dev/dev-only")
    assert body_of(s3, dst, "x/y") == b"from dev"
    # keys needing URL-encoding in x-amz-copy-source
    odd = "a b/ü+?&%=#.txt"
    s3.put_object(Bucket=src, Key=odd, Body=b"odd")
    s3.copy_object(Bucket=dst, Key=odd, CopySource={"Bucket": src, "Key": odd})
    assert body_of(s3, dst, odd) == b"odd"
    # main did not change
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=src)["Contents"]]
    assert keys == [odd, "dir/file"]


def test_copy_from_snapshots_and_versions(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    resp = s3.copy_object(
        Bucket=bucket, Key="from-v1", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1}
    )
    assert resp["CopySourceVersionId"] == v1
    assert body_of(s3, bucket, "from-v1") == b"one"
    # a snapshot bucket as the source
    resp = s3.copy_object(Bucket=bucket, Key="from-snap", CopySource=f"{bucket}.{v1}/k")
    assert resp["CopySourceVersionId"] == v1
    assert body_of(s3, bucket, "from-snap") == b"one"
    # restoring an old version onto the same key is allowed (it is a change)
    s3.copy_object(
        Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1}
    )
    assert body_of(s3, bucket, "k") == b"one"
    assert body_of(s3, bucket, "k", VersionId=v2) == b"two"
    # a version in which the key does not exist, and a commit that is not one
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="z",
            CopySource={"Bucket": bucket, "Key": "from-v1", "VersionId": v1},
        )
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="z", CopySource={"Bucket": bucket, "Key": "k", "VersionId": "0" * 32}
        )
    assert code_of(exc) == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="z", CopySource={"Bucket": bucket, "Key": "k", "VersionId": "nope"}
        )
    assert code_of(exc) == ("InvalidArgument", 400)


def test_copy_errors(s3: Any, raw_s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"data")["VersionId"]
    commits = db.commit_count(bucket)
    cases: list[tuple[dict[str, Any], tuple[str, int]]] = [
        ({"Bucket": bucket, "Key": "d", "CopySource": f"{bucket}/missing"}, ("NoSuchKey", 404)),
        ({"Bucket": bucket, "Key": "d", "CopySource": "no-such-repo-xyz/k"}, ("NoSuchBucket", 404)),
        (
            {"Bucket": bucket, "Key": "d", "CopySource": f"{bucket}.nobranch/k"},
            ("NoSuchBucket", 404),
        ),
        (
            {"Bucket": "no-such-repo-xyz", "Key": "d", "CopySource": f"{bucket}/k"},
            ("NoSuchBucket", 404),
        ),
        (
            {"Bucket": f"{bucket}.{v1}", "Key": "d", "CopySource": f"{bucket}/k"},
            ("AccessDenied", 403),
        ),
        ({"Bucket": bucket, "Key": "d", "CopySource": "Bad_Bucket/k"}, ("InvalidBucketName", 400)),
        (
            {"Bucket": bucket, "Key": "d", "CopySource": f"{bucket}.{'0' * 32}/k"},
            ("NoSuchBucket", 404),
        ),
    ]
    for kwargs, expected in cases:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(**kwargs)
        assert code_of(exc) == expected, kwargs
        if expected[0] == "AccessDenied":
            assert "read-only" in exc.value.response["Error"]["Message"]
    # malformed x-amz-copy-source values, sent by hand
    for value in (f"{bucket}", f"/{bucket}/", "/", f"{bucket}/%FF"):
        status, _, data = raw_s3.request("PUT", bucket, "d", headers={"x-amz-copy-source": value})
        assert (status, error_code(data)) == (400, "InvalidArgument"), value
    # a key too long for the destination
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="k" * 1025, CopySource=f"{bucket}/k")
    assert code_of(exc) == ("KeyTooLongError", 400)
    assert db.commit_count(bucket) == commits


def test_copy_source_conditionals(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"cond")["ETag"]
    past = formatdate(time.time() - 3600, usegmt=True)
    time.sleep(1.1)
    now = formatdate(time.time(), usegmt=True)

    def copy(**conditions: Any) -> None:
        s3.copy_object(Bucket=bucket, Key="out", CopySource=f"{bucket}/k", **conditions)

    ok: list[dict[str, Any]] = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfMatch": "*"},
        {"CopySourceIfNoneMatch": '"0123"'},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": now},
        # If-Match holds, so the failing If-Unmodified-Since does not count (as S3)
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},
    ]
    failing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": '"0123"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfNoneMatch": "*"},
        {"CopySourceIfModifiedSince": now},
        {"CopySourceIfUnmodifiedSince": past},
        # If-None-Match fails, so If-Modified-Since holding does not help (as S3)
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": past},
    ]
    for conditions in ok:
        copy(**conditions)
    for conditions in failing:
        with pytest.raises(ClientError) as exc:
            copy(**conditions)
        assert code_of(exc) == ("PreconditionFailed", 412), conditions


def test_copy_destination_conditionals(raw_s3: Any, s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="src", Body=b"new")
    old = s3.put_object(Bucket=bucket, Key="dst", Body=b"old")["ETag"]
    source = {"x-amz-copy-source": f"/{bucket}/src"}
    commits = db.commit_count(bucket)
    status, _, data = raw_s3.request("PUT", bucket, "dst", headers={**source, "If-None-Match": "*"})
    assert (status, error_code(data)) == (412, "PreconditionFailed")
    status, _, data = raw_s3.request("PUT", bucket, "dst", headers={**source, "If-Match": '"00"'})
    assert (status, error_code(data)) == (412, "PreconditionFailed")
    status, _, data = raw_s3.request("PUT", bucket, "gone", headers={**source, "If-Match": old})
    assert (status, error_code(data)) == (404, "NoSuchKey")
    assert db.commit_count(bucket) == commits
    status, _, data = raw_s3.request("PUT", bucket, "dst", headers={**source, "If-Match": old})
    assert status == 200, data
    assert b"<CopyObjectResult" in data
    status, _, _ = raw_s3.request("PUT", bucket, "fresh", headers={**source, "If-None-Match": "*"})
    assert status == 200
    assert body_of(s3, bucket, "dst") == body_of(s3, bucket, "fresh") == b"new"
    assert db.commit_count(bucket) == commits + 2


def test_copy_is_zero_copy(server: Any, s3: Any, db: Any, new_bucket: Any) -> None:
    src = new_bucket("zsrc")
    dst = new_bucket("zdst")
    data = os.urandom(10 * MiB)
    s3.put_object(Bucket=src, Key="big.bin", Body=data)
    chunks = len(server.chunk_files())
    contents = db.fetchval("SELECT count(*) FROM contents")
    s3.copy_object(Bucket=dst, Key="copy.bin", CopySource=f"{src}/big.bin")
    s3.copy_object(Bucket=f"{src}", Key="again.bin", CopySource=f"{dst}/copy.bin")
    assert len(server.chunk_files()) == chunks
    assert db.fetchval("SELECT count(*) FROM contents") == contents
    assert body_of(s3, dst, "copy.bin") == data
    assert body_of(s3, src, "again.bin") == data


def test_copy_checksums(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = b"checksummed body"
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="CRC32")
    resp = s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/k")
    assert resp["CopyObjectResult"]["ChecksumCRC32"] == put["ChecksumCRC32"]
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == put["ChecksumCRC32"]
    # asking for an algorithm the source lacks computes it
    resp = s3.copy_object(
        Bucket=bucket, Key="s", CopySource=f"{bucket}/k", ChecksumAlgorithm="SHA256"
    )
    import base64

    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert resp["CopyObjectResult"]["ChecksumSHA256"] == expected
    head = s3.head_object(Bucket=bucket, Key="s", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected


# --------------------------------------------------------------------------- UploadPartCopy


def test_upload_part_copy_assembles_ranges(server: Any, s3: Any, new_bucket: Any) -> None:
    src = new_bucket("pcsrc")
    dst = new_bucket("pcdst")
    data = os.urandom(16 * MiB + 4321)
    small = b"the tail, copied whole"
    s3.put_object(Bucket=src, Key="big", Body=data)
    s3.put_object(Bucket=src, Key="small", Body=small)
    upload = s3.create_multipart_upload(Bucket=dst, Key="assembled")["UploadId"]
    ranges = [(0, 5 * MiB + 123), (5 * MiB + 123, 10 * MiB + 300), (10 * MiB + 300, len(data))]
    parts = []
    for number, (start, end) in enumerate(ranges, start=1):
        resp = s3.upload_part_copy(
            Bucket=dst,
            Key="assembled",
            UploadId=upload,
            PartNumber=number,
            CopySource=f"{src}/big",
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        etag = resp["CopyPartResult"]["ETag"]
        assert etag == f'"{hashlib.md5(data[start:end]).hexdigest()}"'
        assert "LastModified" in resp["CopyPartResult"]
        parts.append({"PartNumber": number, "ETag": etag})
    # a whole object as the last part: its chunks are referenced, nothing is stored
    chunks = len(server.chunk_files())
    resp = s3.upload_part_copy(
        Bucket=dst, Key="assembled", UploadId=upload, PartNumber=4, CopySource=f"{src}/small"
    )
    assert len(server.chunk_files()) == chunks
    parts.append({"PartNumber": 4, "ETag": resp["CopyPartResult"]["ETag"]})
    listed = s3.list_parts(Bucket=dst, Key="assembled", UploadId=upload)["Parts"]
    assert [p["Size"] for p in listed] == [e - s for s, e in ranges] + [len(small)]
    s3.complete_multipart_upload(
        Bucket=dst, Key="assembled", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    whole = data + small
    assert body_of(s3, dst, "assembled") == whole
    digests = (
        b"".join(hashlib.md5(data[s:e]).digest() for s, e in ranges) + hashlib.md5(small).digest()
    )
    head = s3.head_object(Bucket=dst, Key="assembled")
    assert head["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-4"'
    assert head["ContentLength"] == len(whole)
    ranged = s3.get_object(Bucket=dst, Key="assembled", Range=f"bytes={5 * MiB}-{5 * MiB + 999}")
    assert ranged["Body"].read() == whole[5 * MiB : 5 * MiB + 1000]


def test_upload_part_copy_of_a_whole_multipart_object_stores_nothing(
    server: Any, s3: Any, new_bucket: Any
) -> None:
    """A part copied whole from a multipart object references its chunks: only the
    MD5 has to be computed (by reading), no chunk is written."""
    bucket = new_bucket()
    first, second = os.urandom(5 * MiB), os.urandom(MiB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = []
    for number, body in enumerate((first, second), start=1):
        etag = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    chunks = len(server.chunk_files())
    upload = s3.create_multipart_upload(Bucket=bucket, Key="copy")["UploadId"]
    resp = s3.upload_part_copy(
        Bucket=bucket, Key="copy", UploadId=upload, PartNumber=1, CopySource=f"{bucket}/mp"
    )
    assert resp["CopyPartResult"]["ETag"] == f'"{hashlib.md5(first + second).hexdigest()}"'
    assert len(server.chunk_files()) == chunks
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="copy",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": resp["CopyPartResult"]["ETag"]}]},
    )
    assert body_of(s3, bucket, "copy") == first + second


def test_upload_part_copy_errors(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")["ETag"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]

    def copy(**kwargs: Any) -> Any:
        args = {
            "Bucket": bucket,
            "Key": "dst",
            "UploadId": upload,
            "PartNumber": 1,
            "CopySource": f"{bucket}/src",
        }
        args.update(kwargs)
        return s3.upload_part_copy(**args)

    for value in ("bytes=0-10", "bytes=5-4", "bytes=10-10"):
        with pytest.raises(ClientError) as exc:
            copy(CopySourceRange=value)
        assert code_of(exc) == ("InvalidArgument", 400), value
        assert "not valid for source object of size: 10" in exc.value.response["Error"]["Message"]
    for value in ("0-5", "bytes=0-", "bytes=-3", "bytes=a-b", "bytes=0-1,3-4"):
        with pytest.raises(ClientError) as exc:
            copy(CopySourceRange=value)
        assert code_of(exc) == ("InvalidArgument", 400), value
    with pytest.raises(ClientError) as exc:
        copy(CopySource=f"{bucket}/missing")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        copy(UploadId="0" * 48)
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        copy(PartNumber=10001)
    assert code_of(exc) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        copy(CopySourceIfMatch='"00"')
    assert code_of(exc) == ("PreconditionFailed", 412)
    resp = copy(CopySourceRange="bytes=2-4", CopySourceIfMatch=etag)
    assert resp["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"234").hexdigest()}"'
    assert not s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("IsTruncated")


def test_aws_cli_copies_small_and_multipart(
    server: Any, s3: Any, new_bucket: Any, aws_cli: Any
) -> None:
    """`aws s3 cp` between buckets: CopyObject below 8 MB, UploadPartCopy above."""
    src = new_bucket("clisrc")
    dst = new_bucket("clidst")
    big = os.urandom(20 * MiB + 5)
    s3.put_object(Bucket=src, Key="small.txt", Body=b"small one")
    s3.put_object(Bucket=src, Key="big.bin", Body=big)
    aws_cli(server, "s3", "cp", "--no-progress", f"s3://{src}/small.txt", f"s3://{dst}/small.txt")
    aws_cli(server, "s3", "cp", "--no-progress", f"s3://{src}/big.bin", f"s3://{dst}/big.bin")
    aws_cli(server, "s3", "mv", "--no-progress", f"s3://{dst}/big.bin", f"s3://{dst}/moved.bin")
    assert body_of(s3, dst, "small.txt") == b"small one"
    assert body_of(s3, dst, "moved.bin") == big
    assert s3.head_object(Bucket=dst, Key="moved.bin")["ETag"].endswith('-3"')
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=dst)["Contents"]]
    assert keys == ["moved.bin", "small.txt"]
