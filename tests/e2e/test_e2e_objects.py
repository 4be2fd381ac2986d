"""boto3 against a real loxo server: object reads and writes, headers, ranges, versions."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_head_delete(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/hello.bin", Body=body)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"'

    got = s3.get_object(Bucket=bucket, Key="dir/hello.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{md5}"'
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "binary/octet-stream"
    assert got["AcceptRanges"] == "bytes"
    assert got["LastModified"] is not None

    head = s3.head_object(Bucket=bucket, Key="dir/hello.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == f'"{md5}"'

    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    deleted = s3.delete_object(Bucket=bucket, Key="dir/hello.bin")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/hello.bin")
    assert code_of(exc) == ("NoSuchKey", 404)


def test_overwrite_and_empty_object(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second version")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second version"
    empty = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert empty["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""


@pytest.mark.parametrize(
    "key",
    ["plain", "with space/and+plus", "unicode/ключ/日本語.txt", "a%2Fb", "trailing/", "x=y&z?w"],
)
def test_awkward_keys_round_trip(s3: Any, new_bucket: Any, key: str) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == [key]


def test_metadata_and_representation_headers_round_trip(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(
        Bucket=bucket,
        Key="doc.json.gz",
        Body=b"not really gzip",
        Metadata={"color": "blue", "project-name": "loxo"},
        ContentType="application/json",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="doc.json.gz"',
        CacheControl="max-age=3600, public",
        ContentLanguage="en-GB",
    )
    for response in (
        s3.head_object(Bucket=bucket, Key="doc.json.gz"),
        s3.get_object(Bucket=bucket, Key="doc.json.gz"),
    ):
        assert response["Metadata"] == {"color": "blue", "project-name": "loxo"}
        assert response["ContentType"] == "application/json"
        assert response["ContentEncoding"] == "gzip"
        assert response["ContentDisposition"] == 'attachment; filename="doc.json.gz"'
        assert response["CacheControl"] == "max-age=3600, public"
        assert response["ContentLanguage"] == "en-GB"
    got = s3.get_object(Bucket=bucket, Key="doc.json.gz")
    assert got["Body"].read() == b"not really gzip"


def test_response_header_overrides(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"abc", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="k",
        ResponseContentType="application/x-custom",
        ResponseContentDisposition="inline",
    )
    assert got["ContentType"] == "application/x-custom"
    assert got["ContentDisposition"] == "inline"


def test_etag_is_md5_and_content_md5_accepted(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = os.urandom(3 * 1024 * 1024 + 17)
    md5 = hashlib.md5(body)
    put = s3.put_object(
        Bucket=bucket, Key="big", Body=body, ContentMD5=base64.b64encode(md5.digest()).decode()
    )
    assert put["ETag"] == f'"{md5.hexdigest()}"'
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert listed[0]["ETag"] == f'"{md5.hexdigest()}"'
    assert listed[0]["Size"] == len(body)


def test_range_gets(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = os.urandom(5 * 1024 * 1024 + 123)  # several chunks
    size = len(body)
    s3.put_object(Bucket=bucket, Key="r", Body=body)

    def get(rng: str) -> Any:
        return s3.get_object(Bucket=bucket, Key="r", Range=rng)

    first = get("bytes=0-9")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert first["ContentRange"] == f"bytes 0-9/{size}"
    assert first["ContentLength"] == 10
    assert first["Body"].read() == body[:10]

    middle = get("bytes=1048570-3000000")
    assert middle["ContentRange"] == f"bytes 1048570-3000000/{size}"
    assert middle["Body"].read() == body[1048570:3000001]

    suffix = get("bytes=-100")
    assert suffix["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert suffix["ContentRange"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert suffix["Body"].read() == body[-100:]

    opened = get(f"bytes={size - 1000}-")
    assert opened["ContentRange"] == f"bytes {size - 1000}-{size - 1}/{size}"
    assert opened["Body"].read() == body[-1000:]

    past_end = get(f"bytes={size - 5}-{size + 1000}")
    assert past_end["ContentRange"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert past_end["Body"].read() == body[-5:]

    whole_suffix = get(f"bytes=-{size * 2}")
    assert whole_suffix["Body"].read() == body

    with pytest.raises(ClientError) as exc:
        get(f"bytes={size}-")
    assert code_of(exc) == ("InvalidRange", 416)
    with pytest.raises(ClientError) as exc:
        get(f"bytes={size + 10}-{size + 20}")
    assert code_of(exc) == ("InvalidRange", 416)
    # the client and connection still work after the error
    assert get("bytes=0-0")["Body"].read() == body[:1]


def test_delete_is_idempotent(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    for _ in range(2):
        resp = s3.delete_object(Bucket=bucket, Key="gone")
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    never = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert never["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_unknown_bucket_and_key(s3: Any, new_bucket: Any) -> None:
    missing = new_bucket(create=False)
    for call, kwargs in (
        (s3.get_object, {"Key": "k"}),
        (s3.put_object, {"Key": "k", "Body": b"x"}),
        (s3.list_objects_v2, {}),
        (s3.delete_object, {"Key": "k"}),
    ):
        with pytest.raises(ClientError) as exc:
            call(Bucket=missing, **kwargs)
        assert code_of(exc) == ("NoSuchBucket", 404), call
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=missing)
    assert code_of(exc)[1] == 404

    bucket = new_bucket()
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nope")
    assert code_of(exc) == ("404", 404)
    # unknown branch of an existing repo, unknown snapshot
    for name in (f"{bucket}.nobranch", f"{bucket}.{'0' * 32}"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=name, Key="k")
        assert code_of(exc) == ("NoSuchBucket", 404), name


def test_every_write_is_a_commit_and_snapshots_keep_history(
    s3: Any, db: Any, new_bucket: Any
) -> None:
    bucket = new_bucket()
    assert db.commit_count(bucket) == 0
    v1 = s3.put_object(Bucket=bucket, Key="a", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="a", Body=b"two")["VersionId"]
    v3 = s3.put_object(Bucket=bucket, Key="b", Body=b"bee")["VersionId"]
    v4 = s3.delete_object(Bucket=bucket, Key="a")["VersionId"]
    versions = [v1, v2, v3, v4]
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in versions), versions
    assert len(set(versions)) == 4
    assert db.commit_count(bucket) == 4
    for v in versions:
        assert db.commit_exists(bucket, v), v
    assert db.branch_head(bucket) == v4

    def snapshot(version: str) -> dict[str, bytes]:
        name = f"{bucket}.{version}"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
        return {k: s3.get_object(Bucket=name, Key=k)["Body"].read() for k in keys}

    assert snapshot(v1) == {"a": b"one"}
    assert snapshot(v2) == {"a": b"two"}
    assert snapshot(v3) == {"a": b"two", "b": b"bee"}
    assert snapshot(v4) == {"b": b"bee"}

    # versionId on the branch bucket reads the same history
    assert s3.get_object(Bucket=bucket, Key="a", VersionId=v1)["Body"].read() == b"one"
    # reads report the commit that last changed the object
    assert s3.head_object(Bucket=bucket, Key="b")["VersionId"] == v3
    assert s3.head_object(Bucket=f"{bucket}.{v2}", Key="a")["VersionId"] == v2

    # deleting a key that is not there changes nothing: no commit
    s3.delete_object(Bucket=bucket, Key="a")
    assert db.commit_count(bucket) == 4
    assert db.branch_head(bucket) == v4


def test_snapshots_are_read_only(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"v")["VersionId"]
    snap = f"{bucket}.{version}"
    attempts = [
        (s3.put_object, {"Bucket": snap, "Key": "k", "Body": b"new"}),
        (s3.put_object, {"Bucket": snap, "Key": "other", "Body": b"new"}),
        (s3.delete_object, {"Bucket": snap, "Key": "k"}),
        (s3.create_multipart_upload, {"Bucket": snap, "Key": "mp"}),
        (s3.delete_objects, {"Bucket": snap, "Delete": {"Objects": [{"Key": "k"}]}}),
        (s3.delete_bucket, {"Bucket": snap}),
    ]
    for call, kwargs in attempts:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert code_of(exc) == ("AccessDenied", 403), call
        assert "read-only" in exc.value.response["Error"]["Message"], call
    assert s3.get_object(Bucket=snap, Key="k")["Body"].read() == b"v"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_delete_objects_is_one_commit(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    before = db.commit_count(bucket)
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(4)] + [{"Key": "nx"}]}
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["k0", "k1", "k2", "k3", "nx"]
    assert not resp.get("Errors")
    assert db.commit_count(bucket) == before + 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k4"]


def test_presigned_urls(s3: Any, new_bucket: Any) -> None:
    import time

    import httpx

    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"presigned body")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=300
    )
    resp = httpx.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.content == b"presigned body"

    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploaded"}, ExpiresIn=300
    )
    assert httpx.put(put_url, content=b"via presigned put").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"via presigned put"

    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=1
    )
    time.sleep(2.1)
    expired = httpx.get(short)
    assert expired.status_code == 403
    assert b"<Code>AccessDenied</Code>" in expired.content


def test_conditional_get_and_head(s3: Any, new_bucket: Any) -> None:
    from datetime import UTC, datetime, timedelta

    bucket = new_bucket()
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"conditional")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k", IfMatch=etag)["Body"].read() == b"conditional"
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="k", IfNoneMatch=etag)
        assert code_of(exc)[1] == 304
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="k", IfMatch='"0123456789abcdef0123456789abcdef"')
        assert code_of(exc)[1] == 412
    future = datetime.now(UTC) + timedelta(days=1)
    past = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", IfModifiedSince=future)
    assert code_of(exc)[1] == 304
    assert s3.get_object(Bucket=bucket, Key="k", IfModifiedSince=past)["Body"].read()
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", IfUnmodifiedSince=past)
    assert code_of(exc) == ("PreconditionFailed", 412)


def test_conditional_put(s3: Any, db: Any, new_bucket: Any) -> None:
    """If-None-Match: * (create only) and If-Match on PutObject, as S3 does since
    2024 and Hadoop 3.4 / Delta / Iceberg commit protocols rely on: a precondition
    that does not hold is 412 and writes nothing; it is never silently ignored."""
    bucket = new_bucket()
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    commits = db.commit_count(bucket)

    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert code_of(exc) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"third", IfMatch='"0123456789abcdef0123456789abcdef"'
        )
    assert code_of(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    assert db.commit_count(bucket) == commits

    s3.put_object(Bucket=bucket, Key="k", Body=b"fourth", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"fourth"


def test_delete_objects_with_version_ids(s3: Any, new_bucket: Any) -> None:
    """DeleteObjects naming a VersionId deletes that version of the key (not
    the key), next to plain key deletes in the same batch; a VersionId that
    is no version id is an error item (InvalidArgument)."""
    bucket = new_bucket("dv")
    old = s3.put_object(Bucket=bucket, Key="keep", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="keep", Body=b"v2")
    s3.put_object(Bucket=bucket, Key="drop", Body=b"x")
    out = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "keep", "VersionId": old},
                {"Key": "drop"},
                {"Key": "keep", "VersionId": "not-a-version"},
            ]
        },
    )
    assert sorted((d["Key"], d.get("VersionId")) for d in out["Deleted"]) == [
        ("drop", None),
        ("keep", old),
    ]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("keep", "InvalidArgument")]
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"v2"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["keep"]
    versions = s3.list_object_versions(Bucket=bucket, Prefix="keep")["Versions"]
    assert old not in [v["VersionId"] for v in versions]
    assert len(versions) == 1
