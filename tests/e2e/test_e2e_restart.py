"""Stopping and starting loxo: clean exits, nothing lost, credentials generated once."""

from __future__ import annotations

import json
import os
import signal
import stat
from typing import Any

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def snapshot_contents(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


@pytest.mark.slow
def test_data_survives_restart(make_server: Any) -> None:
    srv = make_server()
    s3 = srv.client()
    s3.create_bucket(Bucket="keep")
    big = os.urandom(3 * MiB)
    v1 = s3.put_object(Bucket="keep", Key="small", Body=b"small body")["VersionId"]
    v2 = s3.put_object(Bucket="keep", Key="big", Body=big, Metadata={"m": "1"})["VersionId"]
    v3 = s3.delete_object(Bucket="keep", Key="small")["VersionId"]
    s3.create_bucket(Bucket="keep.dev")
    upload = s3.create_multipart_upload(Bucket="keep", Key="pending")["UploadId"]
    part = s3.upload_part(
        Bucket="keep", Key="pending", UploadId=upload, PartNumber=1, Body=b"part survives"
    )
    port = srv.port

    exit_code = srv.stop(signal.SIGTERM)
    assert "Traceback" not in srv.log_text(), srv.log_text()

    srv.restart()
    if srv.port != port:
        print(f"note: restarted on port {srv.port} (was {port})")
    s3 = srv.client()
    assert snapshot_contents(s3, "keep") == {"big": big}
    assert snapshot_contents(s3, f"keep.{v1}") == {"small": b"small body"}
    assert snapshot_contents(s3, f"keep.{v2}") == {"small": b"small body", "big": big}
    assert snapshot_contents(s3, f"keep.{v3}") == {"big": big}
    assert snapshot_contents(s3, "keep.dev") == {"big": big}
    head = s3.head_object(Bucket="keep", Key="big")
    assert head["Metadata"] == {"m": "1"}
    assert head["VersionId"] == v2
    assert {"keep", "keep.dev"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}

    # an upload started before the restart can be completed after it
    done = s3.complete_multipart_upload(
        Bucket="keep",
        Key="pending",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket="keep", Key="pending")["Body"].read() == b"part survives"

    # writes continue the same history
    v5 = s3.put_object(Bucket="keep", Key="after", Body=b"after restart")["VersionId"]
    assert len({v1, v2, v3, done["VersionId"], v5}) == 5
    assert srv.db().commit_count("keep") == 5

    # checked last, so that a bad exit code does not hide the checks above
    assert exit_code == 0, (
        f"after SIGTERM loxo exited with {exit_code} (negative: killed by that signal), "
        f"not 0; output:\n{srv.log_text(0)}"
    )


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(make_server: Any) -> None:
    srv = make_server()
    s3 = srv.client()
    s3.create_bucket(Bucket="crash")
    bodies = {f"k{i}": os.urandom(100_000 + i) for i in range(20)}
    for key, body in bodies.items():
        s3.put_object(Bucket="crash", Key=key, Body=body)
    srv.stop(signal.SIGKILL)
    srv.restart()
    s3 = srv.client()
    assert snapshot_contents(s3, "crash") == bodies


def test_generated_credentials(make_server: Any) -> None:
    srv = make_server(credentials=False)
    first_log = srv.log_text()
    path = srv.data_dir / "credentials.json"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["access_key"] == srv.access_key and doc["secret_key"] == srv.secret_key
    assert first_log.count(f"LOXO_ACCESS_KEY={srv.access_key}") == 1, first_log
    assert first_log.count(f"LOXO_SECRET_KEY={srv.secret_key}") == 1, first_log
    assert str(path) in first_log

    s3 = srv.client()
    s3.create_bucket(Bucket="creds")
    s3.put_object(Bucket="creds", Key="k", Body=b"v")
    with pytest.raises(ClientError) as exc:
        srv.client(secret_key="guess", retries={"max_attempts": 1}).list_buckets()
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    keys = (srv.access_key, srv.secret_key)
    srv.stop()
    srv.restart()
    assert (srv.access_key, srv.secret_key) == keys
    second_log = srv.log_text()
    assert srv.secret_key not in second_log, second_log
    assert "Generated" not in second_log, second_log
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert srv.client().get_object(Bucket="creds", Key="k")["Body"].read() == b"v"
