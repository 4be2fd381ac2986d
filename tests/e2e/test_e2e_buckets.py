"""Buckets as repos, branches and snapshots: create, list, delete, names."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def bucket_names(s3: Any) -> set[str]:
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


def keys_of(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_create_bucket_then_list_buckets(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket(create=False)
    resp = s3.create_bucket(Bucket=repo)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # ListBuckets names the default branch by the bucket CreateBucket made.
    assert repo in bucket_names(s3)
    assert f"{repo}.main" not in bucket_names(s3)
    assert s3.head_bucket(Bucket=repo)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_bucket(Bucket=f"{repo}.main")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=repo).get("LocationConstraint") in (None, "")
    # Re-creating a bucket you own succeeds in us-east-1, as on AWS.
    s3.put_object(Bucket=repo, Key="kept", Body=b"still here")
    assert s3.create_bucket(Bucket=repo)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert keys_of(s3, repo) == ["kept"]


def test_create_branch_bucket_forks_from_main(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket()
    s3.put_object(Bucket=repo, Key="shared", Body=b"from main")
    s3.create_bucket(Bucket=f"{repo}.dev")
    assert {repo, f"{repo}.dev"} <= bucket_names(s3)
    assert keys_of(s3, f"{repo}.dev") == ["shared"]
    assert s3.get_object(Bucket=f"{repo}.dev", Key="shared")["Body"].read() == b"from main"

    # the branches diverge from here
    s3.put_object(Bucket=f"{repo}.dev", Key="dev-only", Body=b"d")
    s3.put_object(Bucket=repo, Key="main-only", Body=b"m")
    s3.put_object(Bucket=f"{repo}.main", Key="shared", Body=b"changed on main")
    assert keys_of(s3, f"{repo}.dev") == ["dev-only", "shared"]
    assert keys_of(s3, repo) == ["main-only", "shared"]
    assert s3.get_object(Bucket=f"{repo}.dev", Key="shared")["Body"].read() == b"from main"

    assert s3.create_bucket(Bucket=f"{repo}.dev")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert keys_of(s3, f"{repo}.dev") == ["dev-only", "shared"]  # untouched


def test_create_branch_of_new_repo(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket(create=False)
    s3.create_bucket(Bucket=f"{repo}.feature")
    assert {repo, f"{repo}.feature"} <= bucket_names(s3)
    assert keys_of(s3, f"{repo}.feature") == []


def test_delete_bucket(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket()
    s3.create_bucket(Bucket=f"{repo}.dev")
    s3.put_object(Bucket=f"{repo}.dev", Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=f"{repo}.dev")
    assert code_of(exc) == ("BucketNotEmpty", 409)
    assert f"{repo}.dev" in bucket_names(s3)

    s3.delete_object(Bucket=f"{repo}.dev", Key="k")
    resp = s3.delete_bucket(Bucket=f"{repo}.dev")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    names = bucket_names(s3)
    assert f"{repo}.dev" not in names
    assert repo in names
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=f"{repo}.dev")
    assert code_of(exc) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=f"{repo}.dev")
    assert code_of(exc) == ("NoSuchBucket", 404)

    # the last branch takes the repo with it; the name can be used again
    s3.delete_bucket(Bucket=repo)
    assert repo not in bucket_names(s3)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=repo)
    assert code_of(exc)[1] == 404
    s3.create_bucket(Bucket=repo)
    assert keys_of(s3, repo) == []


@pytest.mark.parametrize(
    "name",
    [
        "UpperCase",
        "under_score",
        "ab",
        "x" * 64,
        "one.two.three",
        "a.b.c.d",
        "dots...three",
        "-leading-hyphen",
        "trailing-hyphen-",
        "repo.",
        ".repo",
        "repo.Branch",
    ],
)
def test_invalid_bucket_names(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code_of(exc) == ("InvalidBucketName", 400)
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert code_of(exc) == ("InvalidBucketName", 400)


def test_snapshot_bucket_cannot_be_created(s3: Any, new_bucket: Any) -> None:
    repo = new_bucket()
    version = s3.put_object(Bucket=repo, Key="k", Body=b"v")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=f"{repo}.{version}")
    assert code_of(exc) == ("AccessDenied", 403)
    # a snapshot answers HeadBucket, but is not listed as a bucket
    assert s3.head_bucket(Bucket=f"{repo}.{version}")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert f"{repo}.{version}" not in bucket_names(s3)


def test_default_branch_deleted_while_other_branches_exist(s3: Any, new_bucket: Any) -> None:
    """Deleting `repo` (its main branch) while `repo.dev` exists must not wedge
    the repo: either the delete is refused, or main can be created again and new
    branches can still be made."""
    repo = new_bucket()
    s3.create_bucket(Bucket=f"{repo}.dev")
    s3.put_object(Bucket=f"{repo}.dev", Key="k", Body=b"on dev")
    try:
        s3.delete_bucket(Bucket=repo)
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 409)
        assert s3.head_bucket(Bucket=repo)["ResponseMetadata"]["HTTPStatusCode"] == 200
        return
    # The delete was accepted: main is gone, dev is untouched ...
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=repo)
    assert code_of(exc)[1] == 404
    assert s3.get_object(Bucket=f"{repo}.dev", Key="k")["Body"].read() == b"on dev"
    # ... and the bucket name can be created again, like any deleted bucket.
    s3.create_bucket(Bucket=repo)
    assert s3.head_bucket(Bucket=repo)["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.put_object(Bucket=repo, Key="again", Body=b"main again")
    s3.create_bucket(Bucket=f"{repo}.feature")
    assert keys_of(s3, f"{repo}.feature") == ["again"]


def test_create_bucket_you_own_outside_us_east_1(make_server: Any) -> None:
    """Outside us-east-1 AWS refuses to re-create a bucket you own."""
    srv = make_server(extra_args=["--region", "eu-west-1"])
    s3 = srv.client()
    s3.create_bucket(Bucket="owned", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for name in ("owned", "owned.dev"):
        if name == "owned.dev":
            s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        assert code_of(exc) == ("BucketAlreadyOwnedByYou", 409)
