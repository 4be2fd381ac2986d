"""gateway.signing.sigv2 against AWS's published SigV2 examples and botocore's signers
(HmacV1Auth for the header, HmacV1QueryAuth for presigned URLs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.signing import errors, sigv2

# The credentials of AWS's "Signing and authenticating REST requests" examples.
AWS_AK = "AKIAIOSFODNN7EXAMPLE"
AWS_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

AK = "AKIDLOXOTEST"
SK = "s3cr3t/Key+with=odd~chars"


def check(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    *,
    bucket: str | None = None,
    secret: str = AWS_SK,
    now: datetime | None = None,
) -> sigv2.SignedRequest:
    pairs = [
        (unquote(n), unquote(v)) for n, _, v in (p.partition("=") for p in query.split("&") if p)
    ]
    assert sigv2.carries(pairs, headers)
    req = sigv2.parse(pairs, headers)
    when = now or _date_of(headers)
    sigv2.verify(req, secret, method, path, query, headers, bucket=bucket, now=when)
    return req


def _date_of(headers: dict[str, str]) -> datetime:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(headers.get("x-amz-date") or headers["date"])


# --------------------------------------------------------------------------- AWS's examples


def test_aws_example_string_to_sign() -> None:
    text = sigv2.string_to_sign(
        "GET", "", "", "Tue, 27 Mar 2007 19:36:42 +0000", "", "/awsexamplebucket1/photos/puppy.jpg"
    )
    assert text == "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
    assert sigv2.sign(AWS_SK, text) == "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="


@pytest.mark.parametrize(
    ("bucket", "signature"),
    [
        ("awsexamplebucket1", "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="),
        ("johnsmith", "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
    ],
)
def test_aws_example_object_get_virtual_host(bucket: str, signature: str) -> None:
    headers = {
        "host": f"{bucket}.s3.amazonaws.com",
        "date": "Tue, 27 Mar 2007 19:36:42 +0000",
        "authorization": f"AWS {AWS_AK}:{signature}",
    }
    req = check("GET", "/photos/puppy.jpg", "", headers, bucket=bucket)
    assert req.access_key == AWS_AK and not req.presigned
    with pytest.raises(errors.SignatureDoesNotMatch) as info:
        check("GET", "/photos/puppy.jpg", "", headers)  # without the bucket
    assert info.value.extra["StringToSign"].endswith("\n/photos/puppy.jpg")


def test_aws_example_object_put() -> None:
    headers = {
        "host": "johnsmith.s3.amazonaws.com",
        "date": "Tue, 27 Mar 2007 21:15:45 +0000",
        "content-type": "image/jpeg",
        "content-length": "94328",
        "authorization": f"AWS {AWS_AK}:MyyxeRY7whkBe+bq8fHCL/2kKUg=",
    }
    check("PUT", "/photos/puppy.jpg", "", headers, bucket="johnsmith")
    with pytest.raises(errors.SignatureDoesNotMatch):
        check(
            "PUT",
            "/photos/puppy.jpg",
            "",
            {**headers, "content-type": "image/png"},
            bucket="johnsmith",
        )


def test_aws_example_list_ignores_ordinary_query_parameters() -> None:
    headers = {
        "host": "johnsmith.s3.amazonaws.com",
        "user-agent": "Mozilla/5.0",
        "date": "Tue, 27 Mar 2007 19:42:41 +0000",
        "authorization": f"AWS {AWS_AK}:htDYFYduRNen8P9ZfE/s9SuKy0U=",
    }
    check("GET", "/", "prefix=photos&max-keys=50&marker=puppy", headers, bucket="johnsmith")
    assert sigv2.canonical_resource("/", "prefix=photos&max-keys=50", "johnsmith") == "/johnsmith/"


def test_aws_example_acl_subresource() -> None:
    headers = {
        "host": "johnsmith.s3.amazonaws.com",
        "date": "Tue, 27 Mar 2007 19:44:46 +0000",
        "authorization": f"AWS {AWS_AK}:c2WLPFtWHVgbEmeEG93a4cG37dM=",
    }
    check("GET", "/", "acl", headers, bucket="johnsmith")
    with pytest.raises(errors.SignatureDoesNotMatch):
        check("GET", "/", "", headers, bucket="johnsmith")


@pytest.mark.parametrize(
    "signature", ["R4dJ53KECjStyBO5iTBJZ4XVOaI=", "lx3byBScXR6KzyMaifNkardMwNk="]
)
def test_aws_example_delete_with_x_amz_date(signature: str) -> None:
    # AWS's current example leaves the Date line empty and signs x-amz-date among
    # the x-amz-* headers; its older one put x-amz-date's value on the Date line.
    headers = {
        "host": "s3.amazonaws.com",
        "user-agent": "dotnet",
        "date": "Tue, 27 Mar 2007 21:20:27 +0000",
        "x-amz-date": "Tue, 27 Mar 2007 21:20:26 +0000",
        "authorization": f"AWS {AWS_AK}:{signature}",
    }
    check("DELETE", "/johnsmith/photos/puppy.jpg", "", headers)


def test_aws_example_upload_with_amz_headers_and_cname_bucket() -> None:
    headers = {
        "host": "static.johnsmith.net:8080",
        "date": "Tue, 27 Mar 2007 21:06:08 +0000",
        "user-agent": "curl/7.15.5",
        "x-amz-acl": "public-read",
        "content-type": "application/x-download",
        "content-md5": "4gJE4saaMU4BqNR0kLY+lw==",
        # two X-Amz-Meta-ReviewedBy headers, joined as the HTTP layer joins them
        "x-amz-meta-reviewedby": "joe@johnsmith.net,jane@johnsmith.net",
        "x-amz-meta-filechecksum": "0x02661779",
        "x-amz-meta-checksumalgorithm": "crc32",
        "content-disposition": "attachment; filename=database.dat",
        "content-encoding": "gzip",
        "content-length": "5913339",
        "authorization": f"AWS {AWS_AK}:ilyl83RwaSoYIEdixDQcA4OnAnc=",
    }
    check("PUT", "/db-backup.dat.gz", "", headers, bucket="static.johnsmith.net")
    assert sigv2.canonical_amz_headers(headers) == (
        "x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\n"
        "x-amz-meta-filechecksum:0x02661779\n"
        "x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n"
    )


def test_aws_example_list_all_buckets_and_unicode_keys() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "date": "Wed, 28 Mar 2007 01:29:59 +0000",
        "authorization": f"AWS {AWS_AK}:qGdzdERIC03wnaRNKh6OqZehG9s=",
    }
    check("GET", "/", "", headers)
    headers = {
        "host": "s3.amazonaws.com",
        "date": "Wed, 28 Mar 2007 01:49:49 +0000",
        "authorization": f"AWS {AWS_AK}:DNEZGsoieTZ92F3bUfSPQcbGmlM=",
    }
    check("GET", "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re", "", headers)


def test_aws_example_query_string_authentication() -> None:
    query = f"AWSAccessKeyId={AWS_AK}&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620"
    headers = {"host": "johnsmith.s3.amazonaws.com"}
    before = datetime.fromtimestamp(1175139620 - 60, UTC)
    req = check("GET", "/photos/puppy.jpg", query, headers, bucket="johnsmith", now=before)
    assert req.presigned and req.expires == 1175139620
    after = datetime.fromtimestamp(1175139620 + 1, UTC)
    with pytest.raises(errors.AccessDenied) as info:
        check("GET", "/photos/puppy.jpg", query, headers, bucket="johnsmith", now=after)
    assert info.value.message == "Request has expired"
    assert info.value.extra["Expires"] == "2007-03-29T03:40:20Z"


# --------------------------------------------------------------------------- botocore's signers

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def botocore_header(
    method: str, url: str, headers: dict[str, str] | None = None, auth_path: str | None = None
) -> tuple[str, str, dict[str, str]]:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    request.auth_path = auth_path
    HmacV1Auth(Credentials(AK, SK)).add_auth(request)
    parts = urlsplit(request.url)
    sent = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }
    sent["host"] = parts.netloc
    return parts.path, parts.query, sent


KEYS = ["plain.txt", "my key", "unicode/ключ/é", "plus+equals=tilde~", "weird !'()*@$&;,:"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "query",
    [
        "",
        "acl",
        "uploads",
        "uploadId=abc%2Bdef&partNumber=3",
        "versionId=v1&response-content-type=a%2Fb",
        "list-type=2&prefix=a%20b",
        "tagging&versionId=x",
    ],
)
def test_botocore_header_auth_verifies(key: str, query: str) -> None:
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/~')}" + (f"?{query}" if query else "")
    path, raw_query, headers = botocore_header(
        "PUT", url, {"Content-Type": "text/plain", "x-amz-meta-a": " b "}
    )
    req = check("PUT", path, raw_query, headers, secret=SK, now=_date_of(headers))
    assert req.access_key == AK
    headers["x-amz-meta-a"] = "c"
    with pytest.raises(errors.SignatureDoesNotMatch):
        check("PUT", path, raw_query, headers, secret=SK, now=_date_of(headers))


def test_botocore_virtual_host_auth_path() -> None:
    path, query, headers = botocore_header(
        "GET", "http://bucket.s3.localtest:9000/dir/k?versions", auth_path="/bucket/dir/k"
    )
    check("GET", path, query, headers, bucket="bucket", secret=SK)
    with pytest.raises(errors.SignatureDoesNotMatch):
        check("GET", path, query, headers, bucket="other", secret=SK)


def test_botocore_path_style_bucket_signs_a_trailing_slash() -> None:
    path, query, headers = botocore_header(
        "PUT", "http://127.0.0.1:9000/bucket", auth_path="/bucket/"
    )
    assert path == "/bucket"
    check("PUT", path, query, headers, secret=SK)


def botocore_presigned(
    url: str, expires: int = 3600, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    request = AWSRequest(method="GET", url=url, headers=headers or {})
    HmacV1QueryAuth(Credentials(AK, SK), expires=expires).add_auth(request)
    parts = urlsplit(request.url)
    return parts.path, parts.query


def test_botocore_presigned_url_verifies_until_it_expires() -> None:
    path, query = botocore_presigned("http://127.0.0.1:9000/b/" + quote("ключ é"), expires=60)
    check("GET", path, query, {"host": "h"}, secret=SK, now=datetime.now(UTC))
    with pytest.raises(errors.AccessDenied):
        check(
            "GET",
            path,
            query,
            {"host": "h"},
            secret=SK,
            now=datetime.now(UTC) + timedelta(minutes=2),
        )
    tampered = query.replace("Expires=", "Expires=9")
    with pytest.raises(errors.SignatureDoesNotMatch):
        check("GET", path, tampered, {"host": "h"}, secret=SK, now=datetime.now(UTC))


def test_botocore_presigned_headers_moved_into_the_query() -> None:
    # HmacV1QueryAuth signs Content-Type and x-amz-* headers, then puts them in the query.
    path, query = botocore_presigned(
        "http://127.0.0.1:9000/b/k?versionId=v",
        headers={"Content-Type": "text/x", "x-amz-meta-m": "v"},
    )
    assert "content-type=text%2Fx" in query and "x-amz-meta-m=v" in query
    check("GET", path, query, {"host": "h"}, secret=SK, now=datetime.now(UTC))
    check(
        "GET",
        path,
        query,
        {"host": "h", "content-type": "text/x"},
        secret=SK,
        now=datetime.now(UTC),
    )
    with pytest.raises(errors.SignatureDoesNotMatch):
        check(
            "GET",
            path,
            query,
            {"host": "h", "content-type": "text/y"},
            secret=SK,
            now=datetime.now(UTC),
        )


# --------------------------------------------------------------------------- refusals


def test_header_auth_time_window() -> None:
    path, query, headers = botocore_header("GET", "http://h/b/k")
    signed_at = _date_of(headers)
    check("GET", path, query, headers, secret=SK, now=signed_at + timedelta(minutes=14))
    for skew in (16, -16):
        with pytest.raises(errors.RequestTimeTooSkewed) as info:
            check("GET", path, query, headers, secret=SK, now=signed_at + timedelta(minutes=skew))
        assert info.value.extra["MaxAllowedSkewMilliseconds"] == "900000"
    del headers["date"]
    with pytest.raises(errors.AccessDenied):
        check("GET", path, query, headers, secret=SK, now=signed_at)
    headers["date"] = "yesterday"
    with pytest.raises(errors.AccessDenied):
        check("GET", path, query, headers, secret=SK, now=signed_at)


def test_x_amz_date_wins_over_date_for_the_time_window() -> None:
    headers = {
        "date": format_datetime(NOW - timedelta(days=1), usegmt=True),
        "x-amz-date": format_datetime(NOW, usegmt=True),
        "authorization": f"AWS {AK}:" + "A" * 27 + "=",
    }
    with pytest.raises(errors.SignatureDoesNotMatch):  # not RequestTimeTooSkewed
        check("GET", "/b/k", "", headers, secret=SK, now=NOW)


@pytest.mark.parametrize("authorization", ["AWS ", "AWS AKID", "AWS AKID:", "AWS :sig", "AWS  "])
def test_malformed_authorization(authorization: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        sigv2.parse([], {"authorization": authorization})


@pytest.mark.parametrize(
    "query",
    [
        [("AWSAccessKeyId", AK), ("Signature", "x")],
        [("AWSAccessKeyId", AK), ("Expires", "1")],
        [("Signature", "x"), ("Expires", "1")],
        [("AWSAccessKeyId", AK), ("Signature", "x"), ("Expires", "soon")],
        [("AWSAccessKeyId", AK), ("Signature", "x"), ("Expires", "-1")],
        [("AWSAccessKeyId", AK), ("Signature", "x"), ("Expires", "1" * 13)],
        [("AWSAccessKeyId", AK), ("Signature", "x"), ("Expires", "١٢")],
    ],
)
def test_malformed_query_auth(query: list[tuple[str, str]]) -> None:
    assert sigv2.carries(query, {})
    with pytest.raises(errors.AccessDenied):
        sigv2.parse(query, {})


def test_one_mechanism_only() -> None:
    query = [("AWSAccessKeyId", AK), ("Signature", "x"), ("Expires", "1")]
    with pytest.raises(errors.InvalidArgument):
        sigv2.parse(query, {"authorization": f"AWS {AK}:sig"})
    with pytest.raises(errors.InvalidArgument):
        sigv2.parse([("X-Amz-Signature", "a")], {"authorization": f"AWS {AK}:sig"})
    with pytest.raises(errors.InvalidArgument):
        sigv2.parse([*query, ("Expires", "2")], {})


def test_carries() -> None:
    assert sigv2.carries([], {"authorization": "AWS a:b"})
    assert not sigv2.carries([], {"authorization": "AWS4-HMAC-SHA256 Credential=..."})
    assert not sigv2.carries([("list-type", "2")], {})
    assert sigv2.carries([("Signature", "x")], {})
    assert not sigv2.carries([("Signature", "x"), ("X-Amz-Credential", "c")], {})


@pytest.mark.parametrize("key", ["ключ", "caf\u00e9", "tab\tkey", "\x00"])
def test_non_ascii_or_control_access_key_is_invalid(key: str) -> None:
    with pytest.raises(errors.InvalidAccessKeyId):
        sigv2.parse([], {"authorization": f"AWS {key}:sig"})
    with pytest.raises(errors.InvalidAccessKeyId):
        sigv2.parse([("AWSAccessKeyId", key), ("Signature", "x"), ("Expires", "1")], {})


@settings(max_examples=300, deadline=None)
@given(
    auth=st.text(),
    signature=st.text(),
    path=st.text(),
    query=st.text(),
    date=st.one_of(st.text(), st.just("Sun, 01 Jun 2025 12:00:00 GMT")),
)
def test_fuzz_raises_only_signing_errors(
    auth: str, signature: str, path: str, query: str, date: str
) -> None:
    headers: dict[str, Any] = {"authorization": f"AWS {auth}:{signature}", "date": date}
    try:
        req = sigv2.parse([], headers)
        sigv2.verify(req, SK, "GET", "/" + path, query, headers, now=NOW)
    except errors.SigningError:
        pass
    pairs = [("AWSAccessKeyId", auth), ("Signature", signature), ("Expires", date)]
    try:
        req = sigv2.parse(pairs, {})
        sigv2.verify(req, SK, "GET", "/" + path, query, {}, now=NOW)
    except errors.SigningError:
        pass
