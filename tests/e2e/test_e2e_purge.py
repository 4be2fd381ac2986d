"""Purge end to end: a real server and PostgreSQL, boto3 and the `loxo` CLI.

A file with several versions (big chunked ones and a small inline one) is
purged with `loxo purge`; every read path answers InvalidObjectState with the
purge's reason, commit ids and the log do not change, identical bytes under
another path of the repo are erased too, identical bytes in another repo are
kept, and after `loxo gc --grace-minutes 0` the chunk files and the manifest
rows are gone from the chunk store and the database, and `loxo fsck` is clean.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client
from tests.conftest import LoxoServer, loxo_cli
from versioning.chunker import StreamChunker, chunk_id

MiB = 1024 * 1024
REASON = "GDPR erasure request 4411"


def body(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def chunk_files(data: bytes, server: LoxoServer) -> list[Path]:
    """The chunk files `data` is stored as (server default chunking)."""
    assert server.data_dir is not None
    chunker = StreamChunker()
    pieces = chunker.feed(data) + chunker.finish()
    root = server.data_dir / "chunks"
    return [root / h[:2] / h[2:4] / h for h in (chunk_id(p).hex() for p in pieces)]


def refused(call: Callable[[], Any]) -> str:
    """The message of an InvalidObjectState 403 that `call` must raise."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidObjectState", caught.value.response
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(error["Message"])


@pytest.fixture
def srv(make_server: Callable[..., LoxoServer]) -> LoxoServer:
    return make_server(extra_args=["--gc-interval-hours", "0"])


def test_purge_erases_every_version_and_keeps_history(srv: LoxoServer, tmp_path: Path) -> None:
    s3 = srv.client()
    env = {
        "LOXO_CONFIG": str(tmp_path / "cfg.json"),
        "LOXO_ENDPOINT": srv.endpoint,
        "LOXO_ACCESS_KEY": srv.access_key or "",
        "LOXO_SECRET_KEY": srv.secret_key or "",
    }
    s3.create_bucket(Bucket="crm")
    s3.create_bucket(Bucket="other")
    v0, v1, v2 = body(1, 3 * MiB), body(2, 2 * MiB), b"id,name\n7,Ada Lovelace\n"
    key = "exports/customers.csv"
    versions = [s3.put_object(Bucket="crm", Key=key, Body=v)["VersionId"] for v in (v0, v1, v2)]
    s3.put_object(Bucket="crm", Key="backup/copy.csv", Body=v1)  # same bytes, same repo
    s3.put_object(Bucket="crm", Key="keep.txt", Body=b"unrelated")
    s3.put_object(Bucket="other", Key="mine.csv", Body=v0)  # same bytes, another repo
    with Client(srv.endpoint, srv.access_key or "", srv.secret_key or "") as api:
        api.create_branch("crm", "dev")
        api.create_tag("crm", "v1", versions[1])
        log_before = [c.id for c in api.log("crm")]
        dev_before = api.get_branch("crm", "dev").head
    assert all(p.exists() for p in chunk_files(v1, srv))

    # Without --yes: what would be erased, exit 2, nothing erased.
    dry = loxo_cli("purge", "crm", key, env=env)
    assert dry.returncode == 2, dry.stderr
    assert "3 versions in 3 commits" in dry.stdout, dry.stdout
    assert "backup/copy.csv" in dry.stdout, dry.stdout
    assert s3.get_object(Bucket="crm", Key=key)["Body"].read() == v2
    assert loxo_cli("purge", "crm", key, "--yes", env=env).returncode == 2  # no --reason

    done = loxo_cli("purge", "crm", key, "--reason", REASON, "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert "purge #1" in done.stdout, done.stdout

    # Every read of every version answers InvalidObjectState, naming the purge.
    message = refused(lambda: s3.get_object(Bucket="crm", Key=key))
    assert REASON in message and key in message, message
    for version in versions:
        refused(lambda v=version: s3.get_object(Bucket="crm", Key=key, VersionId=v))
        refused(lambda v=version: s3.get_object(Bucket=f"crm.{v}", Key=key))
    refused(lambda: s3.get_object(Bucket="crm.dev", Key=key))
    refused(lambda: s3.get_object(Bucket="crm.v1", Key=key))
    refused(lambda: s3.get_object(Bucket="crm", Key="backup/copy.csv"))  # same bytes
    # Copies cannot read it either, and the same bytes cannot be stored again.
    refused(
        lambda: s3.copy_object(
            Bucket="other", Key="stolen.csv", CopySource={"Bucket": "crm", "Key": key}
        )
    )
    upload = s3.create_multipart_upload(Bucket="other", Key="parts.csv")["UploadId"]
    refused(
        lambda: s3.upload_part_copy(
            Bucket="other",
            Key="parts.csv",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": "crm", "Key": key, "VersionId": versions[1]},
        )
    )
    s3.abort_multipart_upload(Bucket="other", Key="parts.csv", UploadId=upload)
    refused(lambda: s3.put_object(Bucket="crm", Key="again.csv", Body=v1))
    cat = loxo_cli("cat", f"crm@{versions[0]}:{key}", env=env)
    assert cat.returncode == 1 and "InvalidObjectState" in cat.stderr, cat.stderr  # not "log in"
    assert REASON in cat.stderr
    # HEAD still describes the version (as S3 does for archived objects).
    assert s3.head_object(Bucket="crm", Key=key)["ContentLength"] == len(v2)

    # History is unchanged; everything else reads back.
    with Client(srv.endpoint, srv.access_key or "", srv.secret_key or "") as api:
        assert [c.id for c in api.log("crm")] == log_before
        assert api.get_branch("crm", "dev").head == dev_before
        assert [v.commit for v in api.history("crm", key)] == versions[::-1]
        log = list(api.list_purges("crm"))
    assert s3.get_object(Bucket="crm", Key="keep.txt")["Body"].read() == b"unrelated"
    assert s3.get_object(Bucket="other", Key="mine.csv")["Body"].read() == v0

    # The audit log.
    assert len(log) == 1
    assert (log[0].path, log[0].reason, log[0].purged_by) == (key, REASON, srv.access_key)
    assert (log[0].versions, log[0].commits, log[0].contents) == (3, 3, 3)
    assert log[0].bytes == len(v0) + len(v1) + len(v2)
    listed = loxo_cli("purge", "crm", "--list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["reason"] == REASON

    # gc erases the bytes no other repo holds: chunk files and inline rows.
    report = srv.maintenance("gc", "--json", "--grace-minutes", "0")
    assert report.returncode == 0, report.stderr
    assert not any(p.exists() for p in chunk_files(v1, srv)), "purged chunks survived gc"
    assert all(p.exists() for p in chunk_files(v0, srv)), "another repo's chunks were deleted"
    db = srv.db()
    assert (
        db.fetchval("SELECT count(*) FROM contents WHERE position($1::bytea in manifest) > 0", v2)
        == 0
    )
    assert s3.get_object(Bucket="other", Key="mine.csv")["Body"].read() == v0
    refused(lambda: s3.get_object(Bucket="crm", Key=key, VersionId=versions[0]))
    fsck = srv.maintenance("fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
