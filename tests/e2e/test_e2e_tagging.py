"""Object tags with real clients: PutObjectTagging, GetObjectTagging,
DeleteObjectTagging, x-amz-tagging on PutObject, CopyObject and multipart
uploads, x-amz-tagging-count, and AWS's limits.

A tag change on a branch is ONE commit: the object keeps its content, ETag,
size and checksums, and gets a new version (the commit)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import error_code

MiB = 1024 * 1024


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def tag_set(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3: Any, bucket: str, key: str, **kwargs: Any) -> dict[str, str]:
    return {
        t["Key"]: t["Value"]
        for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kwargs)["TagSet"]
    }


def test_put_get_delete_object_tagging_are_commits(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("tags")
    body = b"tagged body"
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="SHA256")
    first = put["VersionId"]
    assert tags_of(s3, bucket, "k") == {}
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    commits = db.commit_count(bucket)

    resp = s3.put_object_tagging(
        Bucket=bucket, Key="k", Tagging=tag_set({"team": "data", "stage": "raw"})
    )
    second = resp["VersionId"]
    assert second != first
    assert db.commit_count(bucket) == commits + 1
    assert db.branch_head(bucket) == second
    got = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert got["TagSet"] == [{"Key": "stage", "Value": "raw"}, {"Key": "team", "Value": "data"}]
    assert got["VersionId"] == second
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["TagCount"] == 2
    assert head["VersionId"] == second
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == len(body)
    assert head["ChecksumSHA256"] == put["ChecksumSHA256"]
    obj = s3.get_object(Bucket=bucket, Key="k")
    assert obj["Body"].read() == body and obj["TagCount"] == 2

    # History is kept: the first version has no tags, and the tag change is a version.
    assert tags_of(s3, bucket, "k", VersionId=first) == {}
    assert tags_of(s3, bucket, "k", VersionId=second) == {"team": "data", "stage": "raw"}
    versions = s3.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == [second, first]
    assert {v["ETag"] for v in versions} == {put["ETag"]}

    # The same tags again change nothing: no commit, the current version answers.
    again = s3.put_object_tagging(
        Bucket=bucket, Key="k", Tagging=tag_set({"stage": "raw", "team": "data"})
    )
    assert again["VersionId"] == second
    assert db.commit_count(bucket) == commits + 1

    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    third = deleted["VersionId"]
    assert third not in (first, second)
    assert db.commit_count(bucket) == commits + 2
    assert tags_of(s3, bucket, "k") == {}
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    assert tags_of(s3, bucket, "k", VersionId=second) == {"team": "data", "stage": "raw"}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_tags_of_old_versions_are_read_only(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("tagv")
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    current = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=old, Tagging=tag_set({"a": "b"}))
    assert code_of(exc) == ("InvalidRequest", 400)
    assert "history is immutable" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=old)
    assert code_of(exc) == ("InvalidRequest", 400)
    # Naming the current version is fine.
    new = s3.put_object_tagging(
        Bucket=bucket, Key="k", VersionId=current, Tagging=tag_set({"a": "b"})
    )["VersionId"]
    assert tags_of(s3, bucket, "k") == {"a": "b"}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    # Snapshots are read-only; reading their tags works.
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=f"{bucket}.{new}", Key="k", Tagging=tag_set({"c": "d"}))
    assert code_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        s3.delete_object_tagging(Bucket=f"{bucket}.{new}", Key="k")
    assert code_of(exc) == ("AccessDenied", 403)
    assert tags_of(s3, f"{bucket}.{new}", "k") == {"a": "b"}
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=tag_set({"a": "b"}))
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="f" * 32)
    assert code_of(exc) == ("NoSuchVersion", 404)


def test_tagging_header_on_put_copy_and_multipart(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("tagh")
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1&b=two%20words&empty=")
    assert tags_of(s3, bucket, "src") == {"a": "1", "b": "two words", "empty": ""}
    assert s3.head_object(Bucket=bucket, Key="src")["TagCount"] == 3
    source = {"Bucket": bucket, "Key": "src"}
    # COPY (the default) keeps the source's tags, whatever x-amz-tagging says.
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=source, Tagging="z=9")
    assert tags_of(s3, bucket, "copied") == {"a": "1", "b": "two words", "empty": ""}
    s3.copy_object(
        Bucket=bucket, Key="replaced", CopySource=source, TaggingDirective="REPLACE", Tagging="z=9"
    )
    assert tags_of(s3, bucket, "replaced") == {"z": "9"}
    s3.copy_object(Bucket=bucket, Key="untagged", CopySource=source, TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "untagged") == {}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="bad", CopySource=source, TaggingDirective="MERGE")
    assert code_of(exc) == ("InvalidArgument", 400)

    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="k%C3%A9=v%C3%A9")
    part1 = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"a" * 5 * MiB
    )
    part2 = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=2, Body=b"b"
    )
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": part1["ETag"]},
                {"PartNumber": 2, "ETag": part2["ETag"]},
            ]
        },
    )
    assert tags_of(s3, bucket, "mp") == {"k\u00e9": "v\u00e9"}
    # Retagging a multipart object keeps its parts and multipart ETag.
    s3.put_object_tagging(Bucket=bucket, Key="mp", Tagging=tag_set({"x": "y"}))
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert head["ETag"] == done["ETag"] and head["PartsCount"] == 2
    assert head["ContentLength"] == 1


def test_tag_limits_answer_as_aws(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("tagl")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    ten = {f"k{i}": "v" for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(ten))
    assert tags_of(s3, bucket, "k") == ten
    longest = {"\u00e9" * 128: "\u00fc" * 256}  # characters, not bytes
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(longest))
    assert tags_of(s3, bucket, "k") == longest
    cases: list[tuple[list[dict[str, str]], tuple[str, int]]] = [
        ([{"Key": f"k{i}", "Value": "v"} for i in range(11)], ("BadRequest", 400)),
        ([{"Key": "k" * 129, "Value": "v"}], ("InvalidTag", 400)),
        ([{"Key": "k", "Value": "v" * 257}], ("InvalidTag", 400)),
        ([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}], ("InvalidTag", 400)),
        ([{"Key": "aws:reserved", "Value": "v"}], ("InvalidTag", 400)),
        ([{"Key": "semi;colon", "Value": "v"}], ("InvalidTag", 400)),
    ]
    for tagset, expected in cases:
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tagset})
        assert code_of(exc) == expected, tagset
    assert tags_of(s3, bucket, "k") == longest  # nothing refused was stored

    for header, expected in (
        ("&".join(f"k{i}=v" for i in range(11)), ("BadRequest", 400)),
        ("a=1&a=2", ("InvalidArgument", 400)),
        ("k=" + "v" * 257, ("InvalidTag", 400)),
    ):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="h", Body=b"x", Tagging=header)
        assert code_of(exc) == expected, header
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="h")
    assert code_of(exc) == ("404", 404)

    for body in (
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
        b"<Tagging/>",
        b"<nope",
    ):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, _, data = raw_s3.request(
            "PUT", bucket, "k", body=body, query="tagging", headers={"Content-MD5": md5}
        )
        assert (status, error_code(data)) == (400, "MalformedXML"), body


def test_aws_cli_object_tagging(
    server: Any, aws_cli: Any, require_tool: Any, s3: Any, new_bucket: Any
) -> None:
    require_tool("aws")
    bucket = new_bucket("tagcli")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    aws_cli(
        server,
        "s3api",
        "put-object-tagging",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--tagging",
        json.dumps(tag_set({"owner": "cli"})),
    )
    out = json.loads(
        aws_cli(server, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "k").stdout
    )
    assert out["TagSet"] == [{"Key": "owner", "Value": "cli"}]
    aws_cli(server, "s3api", "delete-object-tagging", "--bucket", bucket, "--key", "k")
    out = json.loads(
        aws_cli(server, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "k").stdout
    )
    assert out["TagSet"] == []
