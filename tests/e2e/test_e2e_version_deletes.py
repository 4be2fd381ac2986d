"""Deleting versions through S3, as S3 behaves, with history kept whole.

On a branch bucket, DeleteObject?versionId removes that version from the
bucket's version listing; deleting the current version makes the previous one
current again (or the key is gone). Snapshot buckets, other branches and the
control API still see every commit (docs/design/versions.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client
from tests.conftest import LoxoServer, aws_cli


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def listed(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, str, bool, bool]]:
    """(key, version, is latest, is delete marker), in listing order."""
    out = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    rows = [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in out.get("Versions", [])]
    rows += [(m["Key"], m["VersionId"], m["IsLatest"], True) for m in out.get("DeleteMarkers", [])]
    return sorted(rows, key=lambda r: (r[0], [x[1] for x in rows].index(r[1])))


def api_for(srv: LoxoServer) -> Client:
    assert srv.access_key is not None and srv.secret_key is not None
    return Client(srv.endpoint, srv.access_key, srv.secret_key)


def test_deleting_a_noncurrent_version(
    server: LoxoServer, s3: Any, db: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("vd")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    commits = db.commit_count(bucket)
    out = s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert out["VersionId"] == v1
    assert db.commit_count(bucket) == commits  # no commit: only the listing changes
    assert [(k, v, latest) for k, v, latest, _ in listed(s3, bucket)] == [("k", v2, True)]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert code_of(exc) == ("NoSuchVersion", 404)
    # History itself is whole: the snapshot bucket and the control API have it.
    assert s3.get_object(Bucket=f"{bucket}.{v1}", Key="k")["Body"].read() == b"one"
    with api_for(server) as api:
        assert [v.commit for v in api.history(bucket, "k")] == [v2, v1]


def test_deleting_the_current_version_restores_the_previous(
    server: LoxoServer, s3: Any, db: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("vd")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one", ContentType="text/one")["VersionId"]
    first = s3.head_object(Bucket=bucket, Key="k")
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    commits = db.commit_count(bucket)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert db.commit_count(bucket) == commits + 1  # ONE commit restores v1
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"one"
    assert got["VersionId"] == v1  # v1 is current again, as itself
    assert got["ContentType"] == "text/one"
    assert got["LastModified"] == first["LastModified"]
    assert [(k, v, latest) for k, v, latest, _ in listed(s3, bucket)] == [("k", v1, True)]
    # Delete it too: no version left, the key is gone, history is not.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert listed(s3, bucket) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert s3.get_object(Bucket=f"{bucket}.{v2}", Key="k")["Body"].read() == b"two"
    with api_for(server) as api:
        assert {v1, v2} <= {v.commit for v in api.history(bucket, "k")}


def test_deleting_a_delete_marker_undeletes(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("vd")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"alive")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")
    out = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
    assert out["DeleteMarker"] is True and out["VersionId"] == marker["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"alive"
    assert [(k, v, latest, m) for k, v, latest, m in listed(s3, bucket)] == [("k", v1, True, False)]


def test_unknown_and_malformed_version_ids(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("vd")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    commits = db.commit_count(bucket)
    out = s3.delete_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204  # nothing to delete
    assert db.commit_count(bucket) == commits
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", VersionId="nope")
    assert code_of(exc) == ("InvalidArgument", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_snapshots_and_other_branches_keep_every_version(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("vd")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    s3.create_bucket(Bucket=f"{bucket}.dev")
    s3.delete_object(Bucket=f"{bucket}.dev", Key="k", VersionId=v1)
    assert "Contents" not in s3.list_objects_v2(Bucket=f"{bucket}.dev")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    assert [v for _, v, _, _ in listed(s3, bucket)] == [v1]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=f"{bucket}.{v1}", Key="k", VersionId=v1)
    assert code_of(exc) == ("AccessDenied", 403)


def test_delete_objects_empties_a_bucket_version_by_version(s3: Any, new_bucket: Any) -> None:
    """What `rclone purge` and the conformance suite's cleanup do: list every
    version, delete them all, then delete the bucket."""
    bucket = new_bucket("vd")
    for n in range(3):
        for key in ("a", "b/c", "d"):
            s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{n}".encode())
    s3.delete_object(Bucket=bucket, Key="d")
    everything = [{"Key": k, "VersionId": v} for k, v, _, _ in listed(s3, bucket)]
    assert len(everything) == 10
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": everything})
    assert len(out["Deleted"]) == 10 and "Errors" not in out
    assert listed(s3, bucket) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_aws_cli_delete_object_version(server: LoxoServer, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("vd")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    aws_cli(server, "s3api", "delete-object", "--bucket", bucket, "--key", "k", "--version-id", v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    assert [v for _, v, _, _ in listed(s3, bucket)] == [v1]
