"""Bucket names up to S3's 63 characters: a repo may be named with any valid
bucket name, and its snapshot (and open-commit) buckets use the commit-id
prefix that fits."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client, LoxoError
from tests.conftest import LoxoServer, aws_cli, lists_bucket


def long_name(length: int) -> str:
    """A unique repo name of exactly `length` characters."""
    return ("long-" + uuid.uuid4().hex * 2)[:length]


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def api_for(srv: LoxoServer) -> Client:
    assert srv.access_key is not None and srv.secret_key is not None
    return Client(srv.endpoint, srv.access_key, srv.secret_key)


def test_a_63_character_repo_works_with_the_aws_cli(server: LoxoServer, tmp_path: Path) -> None:
    repo = long_name(63)
    assert len(repo) == 63
    aws_cli(server, "s3", "mb", f"s3://{repo}")
    assert lists_bucket(aws_cli(server, "s3", "ls").stdout, repo)
    first = tmp_path / "first.txt"
    first.write_text("first\n")
    aws_cli(server, "s3", "cp", "--no-progress", str(first), f"s3://{repo}/dir/a.txt")
    first.write_text("second\n")
    aws_cli(server, "s3", "cp", "--no-progress", str(first), f"s3://{repo}/dir/a.txt")
    listing = aws_cli(server, "s3", "ls", f"s3://{repo}/dir/").stdout
    assert "a.txt" in listing, listing
    assert aws_cli(server, "s3", "cp", f"s3://{repo}/dir/a.txt", "-").stdout == "second\n"
    # No snapshot bucket fits next to 63 characters: old versions are read by versionId.
    versions = server.client().list_object_versions(Bucket=repo, Prefix="dir/a.txt")["Versions"]
    oldest = versions[-1]["VersionId"]
    out = tmp_path / "old.txt"
    aws_cli(
        server,
        "s3api",
        "get-object",
        "--bucket",
        repo,
        "--key",
        "dir/a.txt",
        "--version-id",
        oldest,
        str(out),
    )
    assert out.read_text() == "first\n"
    with api_for(server) as api:
        assert api.inspect(repo).bucket is None
        with pytest.raises(LoxoError) as exc:
            api.start_commit(repo)
        assert exc.value.status == 400 and "at most 54" in exc.value.message
    aws_cli(server, "s3", "rm", f"s3://{repo}/dir/a.txt")
    aws_cli(server, "s3", "rb", f"s3://{repo}")
    assert not lists_bucket(aws_cli(server, "s3", "ls").stdout, repo)


@pytest.mark.parametrize("length", [31, 40, 54])
def test_snapshot_buckets_of_long_repos_use_a_prefix_that_fits(
    server: LoxoServer, s3: Any, length: int
) -> None:
    repo = long_name(length)
    s3.create_bucket(Bucket=repo)
    v1 = s3.put_object(Bucket=repo, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=repo, Key="k", Body=b"two")
    with api_for(server) as api:
        bucket = api.inspect(repo, v1).bucket
    assert bucket is not None and len(bucket) == 63
    assert bucket == f"{repo}.{v1[: 63 - length - 1]}"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    assert aws_cli(server, "s3", "cp", f"s3://{bucket}/k", "-").stdout == "one"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"no")
    assert code_of(exc) == ("AccessDenied", 403)
    # A prefix that names no commit is no bucket.
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=f"{repo}.{'0' * (63 - length - 1)}")
    assert code_of(exc)[1] == 404


def test_open_commit_bucket_of_a_long_repo(server: LoxoServer, s3: Any) -> None:
    repo = long_name(45)
    s3.create_bucket(Bucket=repo)
    with api_for(server) as api:
        opened = api.start_commit(repo)
        assert len(opened.bucket) == 63 and opened.bucket.startswith(f"{repo}.")
        for n in range(3):
            s3.put_object(Bucket=opened.bucket, Key=f"f{n}", Body=b"x")
        assert s3.list_objects_v2(Bucket=repo).get("KeyCount") == 0  # not on the branch yet
        commit = api.finish_commit(repo, opened.id, "three files")
    assert commit is not None
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=repo)["Contents"]]
    assert keys == ["f0", "f1", "f2"]
    assert len(s3.list_object_versions(Bucket=repo)["Versions"]) == 3  # one commit, three keys
