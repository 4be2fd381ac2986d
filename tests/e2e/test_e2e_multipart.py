"""Multipart uploads through boto3: the transfer manager, and each error of Complete."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def multipart_etag(data: bytes, part_size: int) -> str:
    digests = b"".join(
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    )
    count = -(-len(data) // part_size)
    return f'"{hashlib.md5(digests).hexdigest()}-{count}"'


def test_upload_file_multipart_round_trip(
    s3: Any, db: Any, new_bucket: Any, tmp_path: Path
) -> None:
    bucket = new_bucket()
    data = os.urandom(23 * MiB + 12345)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    config = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    before = db.commit_count(bucket)
    s3.upload_file(
        str(source),
        bucket,
        "big/upload.bin",
        Config=config,
        ExtraArgs={"ContentType": "application/x-test", "Metadata": {"origin": "upload_file"}},
    )
    assert db.commit_count(bucket) == before + 1

    head = s3.head_object(Bucket=bucket, Key="big/upload.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-5"')
    assert head["ETag"] == multipart_etag(data, 5 * MiB)
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"origin": "upload_file"}
    assert head["VersionId"] == db.branch_head(bucket)

    target = tmp_path / "download.bin"
    s3.download_file(bucket, "big/upload.bin", str(target), Config=config)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    whole = s3.get_object(Bucket=bucket, Key="big/upload.bin")["Body"].read()
    assert whole == data
    # a range across a part boundary
    ranged = s3.get_object(Bucket=bucket, Key="big/upload.bin", Range="bytes=5242000-5243000")
    assert ranged["Body"].read() == data[5242000:5243001]


def upload_parts(s3: Any, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[dict]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        resp = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        assert resp["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    return upload_id, done


def test_low_level_multipart_is_one_commit(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    before = db.commit_count(bucket)
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload_id, done = upload_parts(s3, bucket, "mp", parts)
    assert db.commit_count(bucket) == before, "parts must not commit"
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [5 * MiB, 5 * MiB, 4]
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="mp")
    assert code_of(exc)[1] == 404

    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    data = b"".join(parts)
    assert resp["ETag"] == multipart_etag(data, 5 * MiB)
    assert db.commit_count(bucket) == before + 1
    assert resp["VersionId"] == db.branch_head(bucket)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == data

    # the upload is consumed: no more parts; a repeated Complete is answered
    # as the first was, without a commit
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=4, Body=b"late")
    assert code_of(exc) == ("NoSuchUpload", 404)
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert again["VersionId"] == resp["VersionId"]
    assert db.commit_count(bucket) == before + 1


def test_part_too_small(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id, done = upload_parts(s3, bucket, "small", [os.urandom(MiB), os.urandom(MiB)])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="small", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert code_of(exc) == ("EntityTooSmall", 400)
    assert db.commit_count(bucket) == 0
    # a single small part (the last one) is fine
    resp = s3.complete_multipart_upload(
        Bucket=bucket, Key="small", UploadId=upload_id, MultipartUpload={"Parts": done[:1]}
    )
    assert resp["ETag"].endswith('-1"')
    assert db.commit_count(bucket) == 1


def test_wrong_part_etag_and_missing_part(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id, done = upload_parts(s3, bucket, "k", [os.urandom(5 * MiB), b"end"])
    wrong = [done[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": wrong}
        )
    assert code_of(exc) == ("InvalidPart", 400)
    missing = [*done, {"PartNumber": 3, "ETag": done[1]["ETag"]}]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": missing}
        )
    assert code_of(exc) == ("InvalidPart", 400)
    # the upload survives the failed attempts
    s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 5 * MiB + 3


def test_parts_out_of_order(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id, done = upload_parts(s3, bucket, "k", [os.urandom(5 * MiB), b"end"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": list(reversed(done))},
        )
    assert code_of(exc) == ("InvalidPartOrder", 400)


def test_abort(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id, done = upload_parts(s3, bucket, "k", [b"part one"])
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=b"more")
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    assert code_of(exc) == ("NoSuchUpload", 404)
    assert db.commit_count(bucket) == 0


def test_upload_id_is_bound_to_its_key(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id, _ = upload_parts(s3, bucket, "k", [b"x"])
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="other", UploadId=upload_id, PartNumber=1, Body=b"y")
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId="nonexistent", PartNumber=1, Body=b"y")
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=0, Body=b"y")
    assert code_of(exc) == ("InvalidArgument", 400)


def test_part_reupload_and_gaps(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]

    def put(number: int, body: bytes) -> str:
        return str(
            s3.upload_part(
                Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=body
            )["ETag"]
        )

    stale = put(1, b"a" * (5 * MiB))
    fresh = put(1, b"b" * (5 * MiB))  # the same part number again replaces it
    last = put(7, b"tail")  # part numbers need not be contiguous
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, fresh), (7, last)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": stale}]},
        )
    assert code_of(exc) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": fresh}, {"PartNumber": 1, "ETag": fresh}]
            },
        )
    assert code_of(exc)[0] in ("InvalidPartOrder", "InvalidPart")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": fresh}, {"PartNumber": 7, "ETag": last}]
        },
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"b" * (5 * MiB) + b"tail"


def test_upload_belongs_to_its_branch(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket()
    s3.create_bucket(Bucket=f"{repo}.dev")
    upload_id, done = upload_parts(s3, f"{repo}.dev", "k", [b"on dev"])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=repo, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert code_of(exc) == ("NoSuchUpload", 404)
    s3.complete_multipart_upload(
        Bucket=f"{repo}.dev", Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert s3.get_object(Bucket=f"{repo}.dev", Key="k")["Body"].read() == b"on dev"
    assert "Contents" not in s3.list_objects_v2(Bucket=repo)


def test_deleting_the_bucket_drops_its_uploads(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket()
    upload_id, _ = upload_parts(s3, repo, "k", [b"x"])
    s3.delete_bucket(Bucket=repo)
    s3.create_bucket(Bucket=repo)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=repo, Key="k", UploadId=upload_id, PartNumber=2, Body=b"y")
    assert code_of(exc) == ("NoSuchUpload", 404)


def test_concurrent_completes_commit_once(server: Any, db: Any, new_bucket: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bucket = new_bucket()
    s3 = server.client()
    upload_id, done = upload_parts(s3, bucket, "k", [b"only once"])
    before = db.commit_count(bucket)

    def complete(_: int) -> str:
        client = server.client(retries={"max_attempts": 1})
        try:
            resp = client.complete_multipart_upload(
                Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "completed " + resp["VersionId"]

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(complete, range(6)))
    # One commit; every racer gets the winner's answer, as a retry would.
    assert len(set(outcomes)) == 1 and outcomes[0].startswith("completed"), outcomes
    assert db.commit_count(bucket) == before + 1
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"only once"


def test_complete_accepts_checksum_type_and_object_checksum_headers(
    s3: Any, new_bucket: Any
) -> None:
    """On CompleteMultipartUpload, x-amz-checksum-type is a setting and a
    x-amz-checksum-<alg> header describes the assembled object, not the XML
    body: neither may be refused as a bad checksum of the request document."""
    bucket = new_bucket("mpck")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"only part")[
        "ETag"
    ]

    def add_headers(request: Any, **_: Any) -> None:
        request.headers["x-amz-checksum-type"] = "FULL_OBJECT"

    s3.meta.events.register_first("before-sign.s3.CompleteMultipartUpload", add_headers)
    try:
        out = s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
    finally:
        s3.meta.events.unregister("before-sign.s3.CompleteMultipartUpload", add_headers)
    assert out["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"only part"


def test_a_repeated_complete_answers_the_same_and_commits_nothing(
    s3: Any, db: Any, new_bucket: Any
) -> None:
    """A client whose connection dropped before Complete's answer retries it:
    AWS answers 200 with the same ETag and version, and so does loxo."""
    bucket = new_bucket("mprep")
    upload_id, done = upload_parts(s3, bucket, "k", [os.urandom(5 * MiB), b"tail"])
    first = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    commits = db.commit_count(bucket)
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert (again["ETag"], again["VersionId"]) == (first["ETag"], first["VersionId"])
    assert db.commit_count(bucket) == commits
    # Other parts than the completion had: that upload is gone.
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done[:1]}
        )
    assert code_of(exc) == ("NoSuchUpload", 404)
    # The same upload id under another key is no completion either.
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="other", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert code_of(exc) == ("NoSuchUpload", 404)
    assert db.commit_count(bucket) == commits


def _complete_with_header(
    s3: Any, bucket: str, key: str, upload_id: str, parts: list[Any], header: str, value: str
) -> Any:
    def add(request: Any, **_: Any) -> None:
        request.headers[header] = value

    s3.meta.events.register_first("before-sign.s3.CompleteMultipartUpload", add)
    try:
        return s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    finally:
        s3.meta.events.unregister("before-sign.s3.CompleteMultipartUpload", add)


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "crc32", "crc32c", "crc64nvme"])
def test_complete_verifies_a_whole_object_checksum_header(
    s3: Any, db: Any, new_bucket: Any, algorithm: str
) -> None:
    """x-amz-checksum-<alg> on Complete describes the assembled object: a wrong
    one is 400 BadDigest with nothing committed, whether or not the parts
    carried checksums of that algorithm; a right one is kept."""
    from s3api import checksums

    bucket = new_bucket("mpsum")
    body = [os.urandom(5 * MiB), b"the last part"]
    hasher: Any = checksums.ALGORITHMS[algorithm].new()
    hasher.update(b"".join(body))
    right = checksums.encode(hasher.digest())
    wrong = checksums.encode(bytes(len(hasher.digest())))
    header = f"x-amz-checksum-{algorithm}"
    upload_id, done = upload_parts(s3, bucket, "k", body)
    commits = db.commit_count(bucket)
    with pytest.raises(ClientError) as exc:
        _complete_with_header(s3, bucket, "k", upload_id, done, header, wrong)
    assert code_of(exc) == ("BadDigest", 400)
    assert db.commit_count(bucket) == commits
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    _complete_with_header(s3, bucket, "k", upload_id, done, header, right)
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ResponseMetadata"]["HTTPHeaders"].get(header) == right
