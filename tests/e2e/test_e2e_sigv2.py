"""AWS Signature Version 2 end to end, and access keys no server could hold.

boto3's `generate_presigned_url` signs with SigV2 when the client names
us-east-1 and configures no signature version (the snippet most code
copies); `Config(signature_version="s3")` signs every request with SigV2.
Both are fetched from a live server. Non-ASCII access keys, in a header or a
presigned URL, SigV4 or SigV2, must answer a clean 4xx error document and
leave no traceback in the server's log.
"""

from __future__ import annotations

import http.client
import json
import os
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import boto3
import httpx
import pytest
from conftest import REGION, LoxoServer, unique_name

KEY = "dir/sigv2 ключ+é (1).bin"
BODY = bytes(range(256)) * 300 + os.urandom(10_000)


def default_presigner(server: LoxoServer) -> Any:
    """A boto3 client as the common snippet makes it: a region, keys, no Config."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )


def error_of(body: bytes) -> tuple[str | None, str | None]:
    root = ET.fromstring(body)
    return root.findtext("Code"), root.findtext("Message")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    pairs = [(k, changes.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote)))


def test_default_presigned_get_and_put_are_sigv2_and_round_trip(server: LoxoServer) -> None:
    s3 = server.client()
    bucket = unique_name("v2")
    s3.create_bucket(Bucket=bucket)
    presigner = default_presigner(server)

    put_url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": KEY}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in put_url and "X-Amz-Signature" not in put_url, put_url
    resp = httpx.put(put_url, content=BODY, timeout=60)
    assert resp.status_code == 200, resp.text
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY

    get_url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": KEY}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in get_url, get_url
    resp = httpx.get(get_url, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.content == BODY

    # sub-resources and response overrides are part of what SigV2 signs
    versions = s3.list_object_versions(Bucket=bucket, Prefix=KEY)["Versions"]
    url = presigner.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": KEY,
            "VersionId": versions[0]["VersionId"],
            "ResponseContentType": "text/x-loxo",
        },
        ExpiresIn=300,
    )
    resp = httpx.get(url, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.content == BODY and resp.headers["content-type"] == "text/x-loxo"


def test_expired_and_tampered_sigv2_urls_are_refused(server: LoxoServer) -> None:
    s3 = server.client()
    bucket = unique_name("v2")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    presigner = default_presigner(server)

    expired = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=-60
    )
    resp = httpx.get(expired, timeout=60)
    assert resp.status_code == 403
    assert error_of(resp.content) == ("AccessDenied", "Request has expired")

    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300
    )
    signature = dict(parse_qsl(urlsplit(url).query))["Signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    resp = httpx.get(with_query(url, Signature=flipped), timeout=60)
    assert resp.status_code == 403
    assert error_of(resp.content)[0] == "SignatureDoesNotMatch"
    # a longer lifetime than was signed
    expires = dict(parse_qsl(urlsplit(url).query))["Expires"]
    resp = httpx.get(with_query(url, Expires=str(int(expires) + 3600)), timeout=60)
    assert resp.status_code == 403
    assert error_of(resp.content)[0] == "SignatureDoesNotMatch"
    # another key than was signed
    other = url.replace(f"/{bucket}/k?", f"/{bucket}/other?")
    assert httpx.get(other, timeout=60).status_code == 403


def test_boto3_sigv2_header_auth_put_get_list_delete(server: LoxoServer) -> None:
    s3 = server.client(signature_version="s3")
    urls: list[str] = []
    auths: list[str] = []

    def seen(request: Any, **_: Any) -> None:
        urls.append(request.url)
        auths.append(request.headers.get("Authorization", b"").decode())

    s3.meta.events.register("before-send.s3", seen)
    bucket = unique_name("v2")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=KEY, Body=BODY, ContentType="application/x-test")
    s3.put_object(Bucket=bucket, Key="dir/other.txt", Body=b"other", Metadata={"who": "v2"})
    got = s3.get_object(Bucket=bucket, Key=KEY)
    assert got["Body"].read() == BODY
    assert got["ContentType"] == "application/x-test"
    head = s3.head_object(Bucket=bucket, Key="dir/other.txt")
    assert head["Metadata"] == {"who": "v2"}
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted([KEY, "dir/other.txt"])
    assert s3.get_object_acl(Bucket=bucket, Key=KEY)["Grants"]
    s3.delete_object(Bucket=bucket, Key=KEY)
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dir/other.txt"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["dir/other.txt"]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert auths and all(a.startswith(f"AWS {server.access_key}:") for a in auths), auths

    wrong = server.client(signature_version="s3", secret_key="not-the-secret")
    with pytest.raises(Exception) as info:
        wrong.get_object(Bucket=bucket, Key="dir/other.txt")
    assert "SignatureDoesNotMatch" in str(info.value)


# --------------------------------------------------------------------------- non-ASCII keys

ODD_KEY = "ключ"


def raw_request(
    server: LoxoServer, method: str, target: str, headers: dict[str, bytes]
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


def _odd_key_requests() -> list[tuple[str, str, dict[str, bytes]]]:
    odd = ODD_KEY.encode()
    date = b"20250101T000000Z"
    quoted = quote(ODD_KEY)
    v4_header = (
        b"AWS4-HMAC-SHA256 Credential=" + odd + b"/20250101/us-east-1/s3/aws4_request, "
        b"SignedHeaders=host;x-amz-date, Signature=" + b"a" * 64
    )
    v4_query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
        + quote(f"{ODD_KEY}/20250101/us-east-1/s3/aws4_request", safe="")
        + "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        + "&X-Amz-Signature="
        + "a" * 64
    )
    return [
        (
            "sigv4-header",
            "/",
            {
                "Authorization": v4_header,
                "x-amz-date": date,
                "x-amz-content-sha256": b"UNSIGNED-PAYLOAD",
            },
        ),
        ("sigv4-query", "/?" + v4_query, {}),
        (
            "sigv2-header",
            "/",
            {
                "Authorization": b"AWS " + odd + b":c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmE=",
                "Date": b"Thu, 01 Jan 2099 00:00:00 GMT",
            },
        ),
        ("sigv2-query", f"/?AWSAccessKeyId={quoted}&Expires=4102444800&Signature=abc%3D", {}),
    ]


@pytest.mark.parametrize("case", _odd_key_requests(), ids=lambda c: c[0])
def test_non_ascii_access_key_is_a_clean_s3_error(
    server: LoxoServer, case: tuple[str, str, dict[str, bytes]]
) -> None:
    _, target, headers = case
    before = len(server.log_text())
    for path in (target, target.replace("/", f"/{unique_name('v2')}/k", 1)):
        status, content_type, body = raw_request(server, "GET", path, headers)
        assert 400 <= status < 500, (status, body)
        assert content_type.startswith("application/xml"), content_type
        code, _ = error_of(body)
        assert code == "InvalidAccessKeyId", body
    assert "Traceback" not in server.log_text()[before:], server.log_text()[before:]


@pytest.mark.parametrize("case", _odd_key_requests()[:2], ids=lambda c: c[0])
def test_non_ascii_access_key_on_the_control_api(
    server: LoxoServer, case: tuple[str, str, dict[str, bytes]]
) -> None:
    _, target, headers = case
    before = len(server.log_text())
    path = "/_loxo/api/v1/repos" + target[1:]
    status, content_type, body = raw_request(server, "GET", path, headers)
    assert 400 <= status < 500, (status, body)
    assert content_type.startswith("application/json"), content_type
    assert "error" in json.loads(body), body
    assert "Traceback" not in server.log_text()[before:], server.log_text()[before:]
