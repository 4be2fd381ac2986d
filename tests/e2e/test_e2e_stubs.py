"""What clients probe (ACLs, tags, versioning, unsupported sub-resources), and clean
S3 errors for malformed requests: never a 500."""

from __future__ import annotations

import base64
import hashlib
import socket
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import REGION, error_code

from s3api import routing

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


# --------------------------------------------------------------------------- ACLs


def test_acls_are_the_owner_with_full_control(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    for acl in (
        s3.get_bucket_acl(Bucket=bucket),
        s3.get_object_acl(Bucket=bucket, Key="k"),
        s3.get_object_acl(Bucket=bucket, Key="k", VersionId=version),
        s3.get_bucket_acl(Bucket=f"{bucket}.{version}"),
    ):
        assert acl["Owner"] == {"ID": "loxo", "DisplayName": "loxo"}
        assert acl["Grants"] == [
            {
                "Grantee": {"ID": "loxo", "DisplayName": "loxo", "Type": "CanonicalUser"},
                "Permission": "FULL_CONTROL",
            }
        ]
    status, _, data = raw_s3.request("GET", bucket, query="acl")
    assert status == 200
    root = ET.fromstring(data)
    assert root.tag == f"{NS}AccessControlPolicy"
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_acl(Bucket="no-such-repo-acl")
    assert code_of(exc) == ("NoSuchBucket", 404)


def test_only_the_private_acl_can_be_set(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    owner_only = {
        "Owner": {"ID": "loxo"},
        "Grants": [
            {"Grantee": {"ID": "loxo", "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}
        ],
    }
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=owner_only)
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=owner_only)
    public = {
        "Owner": {"ID": "loxo"},
        "Grants": [
            {
                "Grantee": {
                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                    "Type": "Group",
                },
                "Permission": "READ",
            }
        ],
    }
    refused: list[dict[str, Any]] = [
        {"ACL": "public-read"},
        {"ACL": "authenticated-read"},
        {"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
        {"AccessControlPolicy": public},
    ]
    for kwargs in refused:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_acl(Bucket=bucket, **kwargs)
        assert code_of(exc) == ("NotImplemented", 501), kwargs
        with pytest.raises(ClientError) as exc:
            s3.put_object_acl(Bucket=bucket, Key="k", **kwargs)
        assert code_of(exc) == ("NotImplemented", 501), kwargs
    body = b"<AccessControlPolicy><oops"
    status, _, data = raw_s3.request(
        "PUT", bucket, body=body, query="acl", headers=md5_header(body)
    )
    assert (status, error_code(data)) == (400, "MalformedACLError")
    status, _, data = raw_s3.request("PUT", bucket, query="acl")
    assert (status, error_code(data)) == (400, "MissingSecurityHeader")
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert code_of(exc) == ("NoSuchKey", 404)


# --------------------------------------------------------------------------- tags


def test_bucket_tagging(s3: Any, new_bucket: Any) -> None:
    """Buckets have no tags (objects do: test_e2e_tagging.py)."""
    bucket = new_bucket()
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code_of(exc) == ("NoSuchTagSet", 404)
    resp = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert resp["TagSet"] == []
    assert resp["VersionId"] == version
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=version)["TagSet"] == []
    s3.delete_bucket_tagging(Bucket=bucket)
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    tags = {"TagSet": [{"Key": "a", "Value": "b"}]}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tags)
    assert code_of(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="bad")
    assert code_of(exc) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="no-such-repo-tags")
    assert code_of(exc) == ("NoSuchBucket", 404)


# --------------------------------------------------------------------------- versioning


def test_versioning_is_always_enabled(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert code_of(exc) == ("InvalidBucketState", 409)
    assert "cannot be suspended" in exc.value.response["Error"]["Message"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    body = b"<VersioningConfiguration><Status>Sometimes</Status></VersioningConfiguration>"
    status, _, data = raw_s3.request(
        "PUT", bucket, body=body, query="versioning", headers=md5_header(body)
    )
    assert (status, error_code(data)) == (400, "MalformedXML")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket="no-such-repo-ver")
    assert code_of(exc) == ("NoSuchBucket", 404)


def test_unsupported_sub_resources_answer_not_implemented(raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    for method, query in (
        ("GET", "policy"),
        ("GET", "lifecycle"),
        ("GET", "cors"),
        ("GET", "website"),
        ("GET", "object-lock"),
        ("GET", "encryption"),
        ("PUT", "tagging"),
        ("DELETE", "acl"),
        ("DELETE", "versioning"),
        ("POST", "uploads"),
    ):
        status, _, data = raw_s3.request(method, bucket, query=query)
        assert (status, error_code(data)) == (501, "NotImplemented"), (method, query)


def test_routing_of_the_new_actions() -> None:
    assert routing.route("GET", "b", None, ["versions"]) == "ListObjectVersions"
    assert routing.route("GET", "b", None, ["uploads"]) == "ListMultipartUploads"
    assert routing.route("GET", "b", None, ["versioning"]) == "GetBucketVersioning"
    assert routing.route("GET", "b", "k", ["acl", "versionId"]) == "GetObjectAcl"
    assert routing.route("PUT", "b", "k", ["tagging"]) == "PutObjectTagging"
    assert routing.route("PUT", "b", None, ["tagging"]) == "NotImplemented"
    assert routing.route("GET", "b", "k", ["attributes"]) == "GetObjectAttributes"
    assert routing.route("PUT", "b", "k", ["attributes"]) == "NotImplemented"
    assert routing.route("GET", "b", "k", ["uploads"]) == "NotImplemented"
    assert routing.route("PUT", "b", "k", ["partNumber", "uploadId"]) == "UploadPart"


def test_control_paths_under_virtual_hosts_are_keys(make_server: Any) -> None:
    """With --domain, `<bucket>.<domain>/_loxo/...` is a key of that bucket; path
    style, /_loxo/ stays loxo's control surface."""
    import http.client

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    server = make_server(domains=["s3.localtest"])
    s3 = server.client()
    s3.create_bucket(Bucket="vhost")
    s3.put_object(Bucket="vhost", Key="_loxo/health", Body=b"just a key")

    def get(host: str, path: str) -> tuple[int, bytes]:
        request = AWSRequest(method="GET", url=f"http://{host}{path}")
        creds = Credentials(server.access_key, server.secret_key)
        S3SigV4Auth(creds, "s3", REGION).add_auth(request)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": host, **dict(request.headers.items())})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    assert get(f"vhost.s3.localtest:{server.port}", "/_loxo/health") == (200, b"just a key")
    status, data = get(f"vhost.s3.localtest:{server.port}", "/_loxo/missing")
    assert (status, error_code(data)) == (404, "NoSuchKey")
    status, data = get(f"127.0.0.1:{server.port}", "/_loxo/health")
    assert status == 200 and b'"ok"' in data
    status, data = get(f"s3.localtest:{server.port}", "/_loxo/health")
    assert status == 200 and b'"ok"' in data


# --------------------------------------------------------------------------- errors


def test_malformed_xml_bodies(s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key></Object></Delete>'
    )
    complete_bodies = [
        b"not xml at all",
        b"<CompleteMultipartUpload><Part>",
        b"<Wrong/>",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>1</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><ETag>1</ETag></Part></CompleteMultipartUpload>",
    ]
    for body in complete_bodies:
        status, _, data = raw_s3.request("POST", bucket, "k", body=body, query=f"uploadId={upload}")
        assert (status, error_code(data)) == (400, "MalformedXML"), body
    delete_bodies = [
        b"<Delete><Object><Key>a</Key>",
        b"<Delete></Delete>",
        b"<Delete><Object><Version>1</Version></Object></Delete>",
        b"<NotDelete><Object><Key>a</Key></Object></NotDelete>",
        bomb,
        b"\xff\xfe\x00garbage",
    ]
    for body in delete_bodies:
        status, _, data = raw_s3.request(
            "POST", bucket, body=body, query="delete", headers=md5_header(body)
        )
        assert (status, error_code(data)) == (400, "MalformedXML"), body
    # the upload is still there
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=upload)["UploadId"] == upload


def test_oversized_request_documents(raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    body = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 330_000 + b"</Delete>"  # ~9 MiB
    status, _, data = raw_s3.request(
        "POST", bucket, body=body, query="delete", headers=md5_header(body)
    )
    assert (status, error_code(data)) == (400, "EntityTooLarge")


def send_raw(server: Any, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are; returns the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        out = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            out += piece
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


def test_bad_headers(server: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    # Content-Length that is not a number: refused by the HTTP parser, yet with
    # an S3 error document (tests/e2e/test_e2e_errors.py covers more)
    for value in (b"abc", b"-5", b"1x"):
        status, body = send_raw(
            server,
            b"PUT /" + bucket.encode() + b"/k HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: " + value + b"\r\n\r\n",
        )
        assert (status, error_code(body)) == (400, "InvalidArgument"), value
        request_id = ET.fromstring(body).findtext("RequestId")
        assert request_id is not None and len(request_id) == 16, body
    # a malformed x-amz-date: AccessDenied, as S3 answers
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    for date in ("yesterday", "20261301T000000Z", ""):
        request = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}")
        S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(
            request
        )
        headers = dict(request.headers.items())
        headers["X-Amz-Date"] = date
        raw_s3.conn.request("GET", f"/{bucket}", headers=headers)
        resp = raw_s3.conn.getresponse()
        assert (resp.status, error_code(resp.read())) == (403, "AccessDenied"), date
    # an unknown checksum algorithm
    status, _, data = raw_s3.request(
        "PUT", bucket, "k", body=b"x", headers={"x-amz-sdk-checksum-algorithm": "MD17"}
    )
    assert (status, error_code(data)) == (400, "InvalidRequest")


def test_keys_outside_the_key_space(server: Any, s3: Any, raw_s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket()
    long_key = "k" * 1025
    for call in (
        lambda: s3.put_object(Bucket=bucket, Key=long_key, Body=b"x"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key=long_key),
        lambda: s3.put_object(Bucket=bucket, Key="é" * 513, Body=b"x"),  # 1,026 bytes
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == ("KeyTooLongError", 400)
    s3.put_object(Bucket=bucket, Key="é" * 512, Body=b"x")  # exactly 1,024 bytes
    # far too long for any key: still a clean error
    status, _, data = raw_s3.request("PUT", bucket, "k" * 60_000, body=b"x")
    assert (status, error_code(data)) == (400, "KeyTooLongError")
    # invalid UTF-8, percent-encoded and raw
    status, _ = send_raw(
        server,
        b"GET /" + bucket.encode() + b"/bad%FFkey HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    assert status == 400
    status, _ = send_raw(
        server, b"GET /" + bucket.encode() + b"/bad\xffkey HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert status == 400
    status, _, data = raw_s3.request("GET", bucket, query="prefix=%FF")
    assert (status, error_code(data)) == (400, "InvalidArgument")
