"""Directory markers: the zero-byte `folder/` objects s3fs, pyarrow and Spark
write. Re-writing one that is already there makes no commit, so dataframe
jobs leave no empty commits (and no `~ folder/ (0 B -> 0 B)` diffs) behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import LoxoServer


def test_rewriting_a_marker_makes_no_commit(s3: Any, db: Any, new_bucket: Any) -> None:
    bucket = new_bucket("dm")
    first = s3.put_object(Bucket=bucket, Key="parts/", Body=b"")
    commits = db.commit_count(bucket)
    again = s3.put_object(Bucket=bucket, Key="parts/", Body=b"")
    assert db.commit_count(bucket) == commits
    assert again["VersionId"] == first["VersionId"] and again["ETag"] == first["ETag"]
    assert len(s3.list_object_versions(Bucket=bucket, Prefix="parts/")["Versions"]) == 1
    # Anything else is a write as ever: other attributes, a body, a plain key.
    s3.put_object(Bucket=bucket, Key="parts/", Body=b"", ContentType="application/x-directory")
    assert db.commit_count(bucket) == commits + 1
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert db.commit_count(bucket) == commits + 3


def test_pyarrow_rewriting_a_dataset_commits_only_its_files(
    server: LoxoServer, db: Any, s3: Any, new_bucket: Any, require_module: Callable[[str], Any]
) -> None:
    pa = require_module("pyarrow")
    ds = require_module("pyarrow.dataset")
    from pyarrow import fs

    filesystem = fs.S3FileSystem(
        access_key=server.access_key,
        secret_key=server.secret_key,
        region="us-east-1",
        scheme="http",
        endpoint_override=f"127.0.0.1:{server.port}",
    )
    bucket = new_bucket("dm")
    table = pa.table({"year": [2020, 2021] * 50, "v": list(range(100))})

    def write() -> None:
        ds.write_dataset(
            table,
            f"{bucket}/ds",
            filesystem=filesystem,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("year", pa.int32())]), flavor="hive"),
            existing_data_behavior="overwrite_or_ignore",
        )

    def changed_keys() -> list[str]:
        versions = s3.list_object_versions(Bucket=bucket)["Versions"]
        return [v["Key"] for v in versions]

    write()
    before = db.commit_count(bucket)
    keys_before = changed_keys()
    write()
    new = db.commit_count(bucket) - before
    files = [k for k in keys_before if k.endswith(".parquet")]
    markers = [k for k in set(keys_before) if k.endswith("/")]
    assert markers, keys_before  # pyarrow writes folder markers
    # The second write commits its files again, and none of its markers.
    assert new == len(files), (new, files, markers)
    written_again = changed_keys()
    assert sorted(k for k in written_again if k.endswith("/")) == sorted(
        k for k in keys_before if k.endswith("/")
    )
