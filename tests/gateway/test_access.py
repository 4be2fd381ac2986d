"""The access log on a real server (the session's, whose stderr is not a
terminal: JSON lines): one line per request, with the request id the
client got as x-amz-request-id, who, which action, bucket, key, status,
bytes both ways and the time taken; control-API and /_loxo/ answers carry a
request id too."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from gateway.client import Client
from tests.conftest import LoxoServer


def access_lines(server: LoxoServer) -> list[dict[str, Any]]:
    """Every access-log record so far (stdout's lines, interleaved, are not JSON)."""
    out = []
    for line in server.log_text().splitlines():
        if line.startswith("{") and '"loxo.access"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:  # the last line, half written as we read: next time
                continue
    return out


def find_line(server: LoxoServer, what: str, **fields: Any) -> dict[str, Any]:
    """The last access record with these fields (it is written once the
    answer is sent, so possibly just after the client has it)."""
    deadline = time.monotonic() + 10
    while True:
        for record in reversed(access_lines(server)):
            if all(record.get(k) == v for k, v in fields.items()):
                return record
        assert time.monotonic() < deadline, f"no access line for {what}"
        time.sleep(0.1)


def access_line(server: LoxoServer, request_id: str) -> dict[str, Any]:
    return find_line(server, request_id, request_id=request_id)


def test_s3_requests_are_logged_under_the_id_the_client_got(server: LoxoServer, s3: Any) -> None:
    bucket = f"acc{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"x" * 100_000
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body)
    request_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert put["ResponseMetadata"]["RequestId"] == request_id
    line = access_line(server, request_id)
    assert line["logger"] == "loxo.access" and line["level"] == "INFO"
    assert line["message"] == f"PUT /{bucket}/dir/obj.bin 200"
    assert (line["api"], line["action"], line["method"]) == ("s3", "PutObject", "PUT")
    assert (line["user"], line["bucket"], line["key"]) == (server.access_key, bucket, "dir/obj.bin")
    assert (line["status"], line["error"], line["complete"]) == (200, None, True)
    assert line["bytes_in"] >= len(body)  # aws-chunked framing counts too
    assert line["bytes_out"] == 0
    assert line["duration_ms"] > 0 and line["remote"] == "127.0.0.1"
    assert line["path"] == f"/{bucket}/dir/obj.bin"
    assert line["time"].endswith("Z")

    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    line = access_line(server, got["ResponseMetadata"]["RequestId"])
    assert (line["action"], line["status"], line["bytes_out"]) == ("GetObject", 200, len(body))

    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="nothing-here")
    line = access_line(server, missing.value.response["ResponseMetadata"]["RequestId"])
    assert (line["action"], line["status"], line["error"]) == ("GetObject", 404, "NoSuchKey")
    assert line["user"] == server.access_key


def test_refused_signatures_are_logged_without_a_user(server: LoxoServer) -> None:
    bad = server.client(secret_key="not-the-secret", retries={"max_attempts": 1})
    with pytest.raises(ClientError) as refused:
        bad.list_buckets()
    line = access_line(server, refused.value.response["ResponseMetadata"]["RequestId"])
    assert (line["action"], line["status"], line["error"]) == (
        "ListBuckets",
        403,
        "SignatureDoesNotMatch",
    )
    assert line["user"] is None


def test_control_api_and_loxo_paths_carry_a_request_id(server: LoxoServer) -> None:
    repo = f"acc{uuid.uuid4().hex[:10]}"
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        api.create_repo(repo)
    record = find_line(
        server, "the repo's creation", method="POST", path="/_loxo/api/v1/repos", status=201
    )
    assert (record["api"], record["action"], record["status"]) == ("control", "create_repo", 201)
    assert record["user"] == server.access_key and record["bytes_in"] > 0

    answer = httpx.get(f"{server.endpoint}/_loxo/api/v1/repos/{repo}")  # unsigned
    line = access_line(server, answer.headers["x-amz-request-id"])
    assert (line["api"], line["action"], line["bucket"]) == ("control", "describe_repo", repo)
    assert (line["status"], line["error"], line["user"]) == (401, "unauthenticated", None)

    answer = httpx.get(f"{server.endpoint}/_loxo/nowhere?X-Amz-Signature=secret")
    line = access_line(server, answer.headers["x-amz-request-id"])
    assert (line["api"], line["action"], line["status"], line["error"]) == (
        "loxo",
        None,
        404,
        "not_found",
    )
    # A presigned URL's signature is in its query: never logged.
    assert line["path"] == "/_loxo/nowhere" and "secret" not in json.dumps(line)
