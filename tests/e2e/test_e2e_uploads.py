"""Multipart uploads in progress: ListMultipartUploads, ListParts paging, limits, expiry."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, REPO_ROOT, error_code, server_env

MiB = 1024 * 1024


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def start(s3: Any, bucket: str, key: str) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])


def test_list_multipart_uploads(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    keys = ["a/1", "a/2", "b", "c", "c", "d/x/1", "e"]
    started = [(key, start(s3, bucket, key)) for key in keys]
    expected = sorted(started, key=lambda u: (u[0], u[1]))
    # a key's uploads come in the order they were initiated
    assert [u for u in expected if u[0] == "c"] == [u for u in started if u[0] == "c"]
    s3.create_bucket(Bucket=f"{bucket}.other")
    start(s3, f"{bucket}.other", "a/elsewhere")

    resp = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in resp["Uploads"]] == expected
    assert resp["IsTruncated"] is False
    assert resp["MaxUploads"] == 1000
    first = resp["Uploads"][0]
    assert first["Initiator"]["ID"] == first["Owner"]["ID"] == "loxo"
    assert first["StorageClass"] == "STANDARD" and "Initiated" in first

    # pages of two, by the paginator (key-marker + upload-id-marker)
    pages = list(
        s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p.get("Uploads", [])) for p in pages] == [2, 2, 2, 1]
    paged = [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])]
    assert paged == expected
    assert pages[0]["IsTruncated"] and not pages[-1]["IsTruncated"]
    assert (pages[0]["NextKeyMarker"], pages[0]["NextUploadIdMarker"]) == expected[1]

    # key-marker alone: keys after it; with upload-id-marker: that key's later uploads too
    resp = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="c")
    assert [u["Key"] for u in resp["Uploads"]] == ["d/x/1", "e"]
    c_first = next(u for u in expected if u[0] == "c")[1]
    resp = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="c", UploadIdMarker=c_first)
    assert [u["Key"] for u in resp["Uploads"]] == ["c", "d/x/1", "e"]

    # prefix and delimiter: rolled-up keys are one CommonPrefix each
    resp = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in resp["Uploads"]] == ["b", "c", "c", "e"]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["a/", "d/"]
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="d/", Delimiter="/")
    assert "Uploads" not in resp
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["d/x/"]
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert [u["Key"] for u in resp["Uploads"]] == ["a/1", "a/2"]
    pages = list(
        s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}
        )
    )
    items = [
        *(u["Key"] for p in pages for u in p.get("Uploads", [])),
        *(c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])),
    ]
    assert sorted(items) == ["a/", "b", "c", "c", "d/", "e"]
    assert len(pages) == 6

    # encoding-type=url
    odd = "sp ace/ü"
    start(s3, bucket, odd)
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="sp ace/", EncodingType="url")
    assert [u["Key"] for u in resp["Uploads"]] == ["sp%20ace/%C3%BC"]
    assert resp["Prefix"] == "sp%20ace/"

    # a snapshot has no uploads; errors
    head = s3.put_object(Bucket=bucket, Key="obj", Body=b"x")["VersionId"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=f"{bucket}.{head}")
    with pytest.raises(ClientError) as exc:
        s3.list_multipart_uploads(Bucket="no-such-repo-zz")
    assert code_of(exc) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc:
        s3.list_multipart_uploads(Bucket=bucket, MaxUploads=-1)
    assert code_of(exc) == ("InvalidArgument", 400)

    # completed and aborted uploads leave the list
    s3.abort_multipart_upload(Bucket=bucket, Key="b", UploadId=dict(started)["b"])
    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="b")
    assert "Uploads" not in resp


def test_list_parts_pages(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload = start(s3, bucket, "k")
    for number in (1, 2, 3, 5, 8):
        s3.upload_part(
            Bucket=bucket, Key="k", UploadId=upload, PartNumber=number, Body=b"p%d" % number
        )
    pages = list(
        s3.get_paginator("list_parts").paginate(
            Bucket=bucket, Key="k", UploadId=upload, PaginationConfig={"PageSize": 2}
        )
    )
    assert [[p["PartNumber"] for p in page["Parts"]] for page in pages] == [[1, 2], [3, 5], [8]]
    assert pages[0]["Initiator"]["ID"] == "loxo"
    resp = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload, PartNumberMarker=3)
    assert [p["PartNumber"] for p in resp["Parts"]] == [5, 8]
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=upload, MaxParts=-2)
    assert code_of(exc) == ("InvalidArgument", 400)


def test_part_number_limits(s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload = start(s3, bucket, "k")
    for number in (0, 10001):
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=number, Body=b"x")
        assert code_of(exc) == ("InvalidArgument", 400)
    s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=10000, Body=b"x")


def test_part_over_5_gib_is_refused_before_its_body(server: Any, new_bucket: Any) -> None:
    """A part announcing more than 5 GiB is answered EntityTooLarge at once."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    bucket = new_bucket()
    s3 = server.client()
    upload = start(s3, bucket, "k")
    path = f"/{bucket}/k?partNumber=1&uploadId={upload}"
    headers = {"Content-Length": str(5 * 1024**3 + 1), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    signed = AWSRequest(method="PUT", url=server.endpoint + path, headers=headers)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(signed)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        for name, value in signed.headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(b"x" * 1024)  # a start of the body; the answer must not wait for the rest
        resp = conn.getresponse()
        assert (resp.status, error_code(resp.read())) == (400, "EntityTooLarge")
    finally:
        conn.close()


def test_idle_uploads_expire(make_server: Any) -> None:
    """--upload-expiry-hours 0.002 (7.2 s): an upload idle that long is aborted
    with its parts; one that received a part recently is kept."""
    server = make_server(extra_args=["--upload-expiry-hours", "0.002"])
    s3 = server.client()
    db = server.db()
    s3.create_bucket(Bucket="expiry")
    t0 = time.monotonic()
    idle = start(s3, "expiry", "idle")
    s3.upload_part(Bucket="expiry", Key="idle", UploadId=idle, PartNumber=1, Body=b"abandoned")
    busy = start(s3, "expiry", "busy")
    assert db.fetchval("SELECT count(*) FROM upload_parts WHERE upload_id = $1", idle) == 1

    def listed() -> list[str]:
        resp = s3.list_multipart_uploads(Bucket="expiry")
        return [u["Key"] for u in resp.get("Uploads", [])]

    time.sleep(max(0.0, t0 + 4 - time.monotonic()))
    s3.upload_part(Bucket="expiry", Key="busy", UploadId=busy, PartNumber=1, Body=b"active")
    deadline = t0 + 30
    while "idle" in listed() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert listed() == ["busy"], "the idle upload should have expired"
    # busy was created before idle's last part, but its own part keeps it alive
    assert time.monotonic() - t0 < 4 + 7.2, "too slow to check that busy outlives idle"
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="expiry", Key="idle", UploadId=idle, PartNumber=2, Body=b"late")
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="expiry", Key="idle", UploadId=idle)
    assert code_of(exc) == ("NoSuchUpload", 404)
    assert db.fetchval("SELECT count(*) FROM uploads WHERE id = $1", idle) == 0
    assert db.fetchval("SELECT count(*) FROM upload_parts WHERE upload_id = $1", idle) == 0
    while "busy" in listed() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert listed() == []
    assert "aborted 1 multipart uploads" in server.log_text()


def test_upload_expiry_option_is_checked(tmp_path: Any) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--upload-expiry-hours",
            "-1",
        ],
        cwd=REPO_ROOT,
        env=server_env(None, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--upload-expiry-hours" in proc.stderr
