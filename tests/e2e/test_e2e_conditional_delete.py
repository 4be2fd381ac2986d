"""Conditional deletes with boto3: If-Match, x-amz-if-match-size and
x-amz-if-match-last-modified-time on DeleteObject, and the per-object ETag,
Size and LastModifiedTime of DeleteObjects. They are checked when the delete
commits (the committer's check), and a failing one deletes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def test_delete_object_conditions(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("cdel")
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"12345")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    commits = db.commit_count(bucket)
    for kwargs in (
        {"IfMatch": '"0123456789abcdef0123456789abcdef"'},
        {"IfMatchSize": 6},
        {"IfMatchLastModifiedTime": modified + timedelta(seconds=5)},
        {"IfMatch": etag, "IfMatchSize": 4},
    ):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k", **kwargs)
        assert code_of(exc) == ("PreconditionFailed", 412), kwargs
        assert exists(s3, bucket, "k")
    assert db.commit_count(bucket) == commits  # nothing was committed

    resp = s3.delete_object(
        Bucket=bucket, Key="k", IfMatch=etag, IfMatchSize=5, IfMatchLastModifiedTime=modified
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert resp["DeleteMarker"] is True
    assert not exists(s3, bucket, "k")
    assert db.commit_count(bucket) == commits + 1

    # A missing key: If-Match is NoSuchKey, as S3; size and time conditions hold.
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert code_of(exc) == ("NoSuchKey", 404)
    s3.delete_object(Bucket=bucket, Key="k", IfMatchSize=5)

    s3.put_object(Bucket=bucket, Key="any", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="any", IfMatch="*")
    assert not exists(s3, bucket, "any")


def test_delete_objects_conditions_per_key(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("cdels")
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"] for k in "abcdef"}
    modified = s3.head_object(Bucket=bucket, Key="e")["LastModified"]
    commits = db.commit_count(bucket)
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "ETag": etags["b"]},  # wrong ETag: kept
                {"Key": "b", "ETag": etags["b"]},  # deleted
                {"Key": "c"},  # deleted
                {"Key": "d", "Size": 99},  # wrong size: kept
                {"Key": "e", "Size": 1, "LastModifiedTime": modified},  # deleted
                {"Key": "f", "LastModifiedTime": modified + timedelta(days=1)},  # kept
                {"Key": "missing", "ETag": etags["a"]},  # NoSuchKey
            ]
        },
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["b", "c", "e"]
    errors = {e["Key"]: e["Code"] for e in resp["Errors"]}
    assert errors == {
        "a": "PreconditionFailed",
        "d": "PreconditionFailed",
        "f": "PreconditionFailed",
        "missing": "NoSuchKey",
    }
    assert db.commit_count(bucket) == commits + 1  # still one commit
    assert {k for k in "abcdef" if exists(s3, bucket, k)} == {"a", "d", "f"}

    # Every condition failing: nothing is committed.
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a", "ETag": '"nope"'}], "Quiet": True}
    )
    assert [e["Code"] for e in resp["Errors"]] == ["PreconditionFailed"]
    assert db.commit_count(bucket) == commits + 1
