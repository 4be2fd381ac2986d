"""Reads of versions as S3 answers them: an unknown version is NoSuchVersion,
a version that deleted the key is a delete marker (405 with
x-amz-delete-marker), and a 304 carries ETag, Last-Modified and the version."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

UNKNOWN = "0" * 32


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def headers_of(exc: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return dict(exc.value.response["ResponseMetadata"]["HTTPHeaders"])


def test_unknown_version_is_no_such_version(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("nsv")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=UNKNOWN)
    assert code_of(exc) == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k", VersionId=UNKNOWN)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="c",
            CopySource={"Bucket": bucket, "Key": "k", "VersionId": UNKNOWN},
        )
    assert code_of(exc) == ("NoSuchVersion", 404)
    # a malformed version id stays InvalidArgument; a missing key stays NoSuchKey
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId="nope")
    assert code_of(exc) == ("InvalidArgument", 400)
    v1 = s3.put_object(Bucket=bucket, Key="other", Body=b"y")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing", VersionId=v1)
    assert code_of(exc) == ("NoSuchKey", 404)


def test_head_object_by_version(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("hov")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"second")["VersionId"]
    first = s3.head_object(Bucket=bucket, Key="k", VersionId=v1)
    second = s3.head_object(Bucket=bucket, Key="k", VersionId=v2)
    assert (first["ContentLength"], first["VersionId"]) == (3, v1)
    assert (second["ContentLength"], second["VersionId"]) == (6, v2)
    assert first["ETag"] != second["ETag"]
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == v2


def test_a_delete_marker_version_is_method_not_allowed(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("dm")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    marker = deleted["VersionId"]
    assert deleted["DeleteMarker"] is True
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="k", VersionId=marker)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
        headers = headers_of(exc)
        assert headers["x-amz-delete-marker"] == "true"
        assert headers["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert code_of(exc) == ("MethodNotAllowed", 405)
    # without a version: NoSuchKey, saying the current version is a delete marker
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert code_of(exc) == ("NoSuchKey", 404)
    assert headers_of(exc)["x-amz-delete-marker"] == "true"
    assert headers_of(exc)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="never-existed")
    assert "x-amz-delete-marker" not in headers_of(exc)
    # the version before the delete still reads
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    # a later commit that did not touch the key: the key is just absent there
    later = s3.put_object(Bucket=bucket, Key="other", Body=b"z")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=later)
    assert code_of(exc) == ("NoSuchKey", 404)
    # a delete marker cannot be a copy source
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k", "VersionId": marker}
        )
    assert code_of(exc) == ("InvalidRequest", 400)


def test_not_modified_carries_etag_last_modified_and_version(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("nm")
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"body")["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="k")
    for call in (s3.get_object, s3.head_object):
        for condition in (
            {"IfNoneMatch": head["ETag"]},
            {"IfModifiedSince": head["LastModified"]},
        ):
            with pytest.raises(ClientError) as exc:
                call(Bucket=bucket, Key="k", **condition)
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
            headers = headers_of(exc)
            assert headers["etag"] == head["ETag"]
            assert (
                headers["last-modified"] == head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
            )
            assert headers["x-amz-version-id"] == version
