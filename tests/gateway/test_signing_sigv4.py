"""gateway.signing.sigv4 against botocore's real signers and AWS's published examples."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.signing import errors, sigv4

AK = "AKIDLOXOTEST"
SK = "s3cr3t/Key+with=odd~chars"
REGION = "us-east-1"
ENDPOINT = "http://127.0.0.1:9000"
CREDS = Credentials(AK, SK)


@dataclass
class Wire:
    """A request as the HTTP layer would hand it to sigv4."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]

    def parse(self) -> sigv4.SignedRequest | None:
        return sigv4.parse(self.method, self.path, self.query, self.headers)

    def verify(self, secret: str = SK, now: datetime | None = None) -> sigv4.SignedRequest:
        req = self.parse()
        assert req is not None
        sigv4.verify(req, secret, self.method, self.path, self.query, self.headers, now=now)
        return req


def decode_query(query_string: str) -> list[tuple[str, str]]:
    """Percent-decode (name, value) pairs in order, '+' kept literal, as the HTTP layer does."""
    pairs = []
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name, errors="strict"), unquote(value, errors="strict")))
    return pairs


def to_wire(method: str, url: str, headers: Mapping[str, Any]) -> Wire:
    parts = urlsplit(url)
    hdrs = {
        k.lower(): (v.decode("latin-1") if isinstance(v, bytes) else str(v))
        for k, v in headers.items()
    }
    hdrs.setdefault("host", parts.netloc)
    return Wire(method, parts.path, decode_query(parts.query), hdrs)


def with_params(url: str, params: dict[str, str] | None) -> str:
    """Append params the way botocore's serializers do (RFC 3986, space as %20)."""
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + str(percent_encode_sequence(params))


def object_url(bucket: str, key: str, query: str = "") -> str:
    url = f"{ENDPOINT}/{bucket}/{quote(key, safe='/~')}"
    return f"{url}?{query}" if query else url


def header_signed(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    unsigned_payload: bool = False,
    creds: Credentials = CREDS,
) -> Wire:
    request = AWSRequest(
        method=method, url=with_params(url, params), data=body, headers=headers or {}
    )
    if unsigned_payload:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(creds, "s3", REGION).add_auth(request)
    prepared = request.prepare()
    return to_wire(method, prepared.url, prepared.headers)


def presigned(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Wire:
    request = AWSRequest(method=method, url=with_params(url, params), headers=headers or {})
    S3SigV4QueryAuth(CREDS, "s3", REGION, expires=expires).add_auth(request)
    prepared = request.prepare()
    return to_wire(method, prepared.url, prepared.headers)


# --------------------------------------------------------------------------- header auth


KEYS = [
    "plain.txt",
    "my key with spaces",
    "dir/sub dir/file.bin",
    "unicode/ключ/日本語/é",
    "plus+equals=tilde~",
    "weird !'()*@$&;,:?#[]%",
    "double//slash/./dot/../x",
    "trailing/",
    "emoji \U0001f600",
]


@pytest.mark.parametrize("key", KEYS)
def test_header_auth_get_keys(key: str) -> None:
    wire = header_signed("GET", object_url("bucket", key))
    req = wire.verify()
    assert req.credential == sigv4.Credential(AK, req.credential.date, REGION, "s3")
    assert req.payload_hash == sigv4.EMPTY_SHA256
    assert not req.presigned and req.expires is None
    assert "host" in req.signed_headers


@pytest.mark.parametrize("key", KEYS)
def test_header_auth_put_with_body_hash(key: str) -> None:
    body = b"hello world\n" * 100
    wire = header_signed(
        "PUT",
        object_url("bucket", key),
        body=body,
        headers={"Content-Type": "text/plain", "x-amz-meta-note": "  spaced   out  value "},
    )
    req = wire.verify()
    assert req.payload_hash == hashlib.sha256(body).hexdigest()
    assert "x-amz-meta-note" in req.signed_headers


def test_header_auth_unsigned_payload() -> None:
    wire = header_signed("PUT", object_url("b", "k"), body=b"data", unsigned_payload=True)
    req = wire.verify()
    assert req.payload_hash == sigv4.UNSIGNED_PAYLOAD


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&prefix=a%2Fb&delimiter=%2F",
        "uploads",
        "partNumber=3&uploadId=abc%2Bdef%3D%3D",
        "prefix=sp%20ace&max-keys=10&encoding-type=url",
        "versionId=%E2%9C%93&a=1&a=0",
    ],
)
def test_header_auth_query_in_url(query: str) -> None:
    header_signed("GET", f"{ENDPOINT}/bucket?{query}").verify()


def test_plus_in_query_is_literal() -> None:
    wire = header_signed("GET", f"{ENDPOINT}/bucket", params={"prefix": "a+b c"})
    assert ("prefix", "a+b c") in wire.query
    wire.verify()


def test_header_auth_query_params() -> None:
    params = {"list-type": "2", "prefix": "a/b", "delimiter": "/", "start-after": "x y+z~"}
    wire = header_signed("GET", f"{ENDPOINT}/bucket", params=params)
    assert ("delimiter", "/") in wire.query
    wire.verify()


def test_header_auth_with_date_header_instead_of_x_amz_date() -> None:
    wire = header_signed("GET", object_url("b", "k"), headers={"Date": "placeholder"})
    assert "x-amz-date" not in wire.headers
    req = wire.verify()
    assert req.amz_date.endswith("Z") and len(req.amz_date) == 16


def test_whitespace_tolerant_authorization_header() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    auth = wire.headers["authorization"]
    creds, signed, sig = auth[len("AWS4-HMAC-SHA256 ") :].split(", ")
    for variant in (
        f"AWS4-HMAC-SHA256 {creds},{signed},{sig}",
        f"  AWS4-HMAC-SHA256   {creds} ,  {signed},\t{sig}  ",
        f"AWS4-HMAC-SHA256 {creds.replace('=', ' = ')}, {signed}, {sig}",
        f"AWS4-HMAC-SHA256 {sig}, {creds}, {signed}",
    ):
        wire.headers["authorization"] = variant
        wire.verify()


# --------------------------------------------------------------------------- real boto3 client


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


@pytest.fixture
def client() -> Any:
    c = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name=REGION,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 0},
        ),
    )
    c.meta.events.register("before-send.s3", _capture)
    return c


def _sent(call: Any, **kwargs: Any) -> Wire:
    with pytest.raises(_Captured) as info:
        call(**kwargs)
    request = info.value.request
    return to_wire(request.method, request.url, request.headers)


@pytest.mark.parametrize("key", KEYS)
def test_boto3_client_put_and_get(client: Any, key: str) -> None:
    put = _sent(client.put_object, Bucket="bucket", Key=key, Body=b"payload", Metadata={"a": "b"})
    put.verify()
    get = _sent(client.get_object, Bucket="bucket", Key=key, Range="bytes=0-3")
    get.verify()


def test_boto3_client_list_with_prefix_and_delimiter(client: Any) -> None:
    wire = _sent(
        client.list_objects_v2, Bucket="bucket", Prefix="a/b c+d", Delimiter="/", MaxKeys=5
    )
    assert ("list-type", "2") in wire.query
    wire.verify()


def test_boto3_client_multipart_and_copy(client: Any) -> None:
    _sent(client.create_multipart_upload, Bucket="bucket", Key="big file").verify()
    _sent(
        client.upload_part,
        Bucket="bucket",
        Key="big file",
        UploadId="up/+id=",
        PartNumber=2,
        Body=b"x" * 1000,
    ).verify()
    _sent(
        client.copy_object,
        Bucket="bucket",
        Key="dst key",
        CopySource={"Bucket": "src", "Key": "src key/ü"},
    ).verify()


# --------------------------------------------------------------------------- presigned URLs


@pytest.mark.parametrize("key", KEYS)
def test_presigned_query_auth(key: str) -> None:
    wire = presigned("GET", object_url("bucket", key), expires=900)
    req = wire.verify()
    assert req.presigned
    assert req.expires == 900
    assert req.payload_hash == sigv4.UNSIGNED_PAYLOAD
    assert req.signed_headers == ("host",)


def test_presigned_with_extra_params_and_signed_header() -> None:
    wire = presigned(
        "PUT",
        object_url("bucket", "k k"),
        params={"partNumber": "1", "uploadId": "a+b/c="},
        headers={"x-amz-meta-color": "blue"},
    )
    req = wire.verify()
    assert req.signed_headers == ("host", "x-amz-meta-color")
    wire.headers["x-amz-meta-color"] = "red"
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


@pytest.mark.parametrize("key", KEYS)
def test_boto3_generate_presigned_url(key: str) -> None:
    c = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    for method, op, params in (
        ("GET", "get_object", {"Bucket": "bucket", "Key": key}),
        ("PUT", "put_object", {"Bucket": "bucket", "Key": key}),
        ("GET", "get_object", {"Bucket": "bucket", "Key": key, "VersionId": "v1+/="}),
        ("GET", "list_objects_v2", {"Bucket": "bucket", "Prefix": key, "Delimiter": "/"}),
    ):
        url = c.generate_presigned_url(op, Params=params, ExpiresIn=600)
        wire = to_wire(method, url, {})
        req = wire.verify()
        assert req.presigned and req.expires == 600


def test_presigned_payload_hash_from_header_when_present() -> None:
    wire = presigned("PUT", object_url("b", "k"))
    wire.headers["x-amz-content-sha256"] = sigv4.EMPTY_SHA256
    req = wire.parse()
    assert req is not None and req.payload_hash == sigv4.EMPTY_SHA256
    # botocore signed UNSIGNED-PAYLOAD, so a different hash must not verify.
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


def test_presigned_expired() -> None:
    wire = presigned("GET", object_url("b", "k"), expires=60)
    wire.verify(now=datetime.now(UTC) + timedelta(seconds=30))
    with pytest.raises(errors.AccessDenied) as info:
        wire.verify(now=datetime.now(UTC) + timedelta(minutes=5))
    assert info.value.message == "Request has expired"
    assert info.value.extra["X-Amz-Expires"] == "60"


def test_presigned_not_yet_valid() -> None:
    wire = presigned("GET", object_url("b", "k"))
    with pytest.raises(errors.AccessDenied):
        wire.verify(now=datetime.now(UTC) - timedelta(hours=1))


def test_presigned_long_lived_url_not_subject_to_skew() -> None:
    wire = presigned("GET", object_url("b", "k"), expires=sigv4.MAX_EXPIRES)
    wire.verify(now=datetime.now(UTC) + timedelta(days=6))


@pytest.mark.parametrize("expires", ["604801", "0", "-5", "abc", "", "1e3", "9" * 40])
def test_presigned_bad_expires(expires: str) -> None:
    wire = presigned("GET", object_url("b", "k"))
    wire.query = [(n, expires if n == "X-Amz-Expires" else v) for n, v in wire.query]
    with pytest.raises(errors.AuthorizationQueryParametersError):
        wire.parse()


def test_presigned_expires_over_a_week_from_botocore() -> None:
    wire = presigned("GET", object_url("b", "k"), expires=604801)
    with pytest.raises(errors.AuthorizationQueryParametersError):
        wire.parse()


def test_verify_rechecks_expires_on_constructed_request() -> None:
    wire = presigned("GET", object_url("b", "k"))
    req = wire.parse()
    assert req is not None
    with pytest.raises(errors.AuthorizationQueryParametersError):
        sigv4.verify(
            replace(req, expires=604801), SK, wire.method, wire.path, wire.query, wire.headers
        )


@pytest.mark.parametrize(
    "param", ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders"]
)
def test_presigned_missing_param(param: str) -> None:
    wire = presigned("GET", object_url("b", "k"))
    wire.query = [(n, v) for n, v in wire.query if n != param]
    with pytest.raises(errors.AuthorizationQueryParametersError):
        wire.parse()


def test_presigned_other_algorithm_and_duplicates() -> None:
    wire = presigned("GET", object_url("b", "k"))
    original = list(wire.query)
    wire.query = [
        (n, "AWS4-ECDSA-P256-SHA256" if n == "X-Amz-Algorithm" else v) for n, v in original
    ]
    with pytest.raises(errors.AuthorizationQueryParametersError):
        wire.parse()
    wire.query = [*original, ("X-Amz-Signature", "0" * 64)]
    with pytest.raises(errors.AuthorizationQueryParametersError):
        wire.parse()


def test_presigned_tampered_query_param() -> None:
    wire = presigned("GET", object_url("b", "k"), params={"versionId": "one"})
    wire.query = [(n, "two" if n == "versionId" else v) for n, v in wire.query]
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()
    wire.query.append(("extra", "param"))
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


# --------------------------------------------------------------------------- rejections


def test_tampered_signature() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    auth = wire.headers["authorization"]
    sig = auth[-64:]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    wire.headers["authorization"] = auth[:-64] + flipped
    with pytest.raises(errors.SignatureDoesNotMatch) as info:
        wire.verify()
    assert info.value.extra["SignatureProvided"] == flipped
    assert info.value.extra["AWSAccessKeyId"] == AK


def test_tampered_presigned_signature() -> None:
    wire = presigned("GET", object_url("b", "k"))
    wire.query = [(n, "f" * 64 if n == "X-Amz-Signature" else v) for n, v in wire.query]
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


def test_wrong_secret() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        header_signed("GET", object_url("b", "k")).verify(secret=SK + "x")
    with pytest.raises(errors.SignatureDoesNotMatch):
        presigned("GET", object_url("b", "k")).verify(secret="nope")


def test_changed_signed_header_value() -> None:
    wire = header_signed("PUT", object_url("b", "k"), headers={"x-amz-meta-a": "1"})
    wire.headers["x-amz-meta-a"] = "2"
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


def test_changed_host_method_path_query() -> None:
    base = header_signed("GET", object_url("b", "k", "versionId=1"))
    changes: list[dict[str, Any]] = [
        {"headers": {**base.headers, "host": "evil.example"}},
        {"method": "DELETE"},
        {"path": "/b/other"},
        {"query": [("versionId", "2")]},
        {"query": []},
    ]
    for change in changes:
        with pytest.raises(errors.SignatureDoesNotMatch):
            replace(base, **change).verify()


def test_unsigned_header_may_change() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    wire.headers["user-agent"] = "something else"
    wire.verify()


def test_payload_hash_header_change_breaks_signature() -> None:
    wire = header_signed("PUT", object_url("b", "k"), body=b"abc")
    wire.headers["x-amz-content-sha256"] = hashlib.sha256(b"evil").hexdigest()
    with pytest.raises(errors.SignatureDoesNotMatch):
        wire.verify()


@pytest.mark.parametrize("minutes", [16, -16, 60 * 24])
def test_skewed_time(minutes: int) -> None:
    wire = header_signed("GET", object_url("b", "k"))
    wire.verify(now=datetime.now(UTC) + timedelta(minutes=14 if minutes > 0 else -14))
    with pytest.raises(errors.RequestTimeTooSkewed) as info:
        wire.verify(now=datetime.now(UTC) + timedelta(minutes=minutes))
    assert info.value.extra["MaxAllowedSkewMilliseconds"] == "900000"


def test_naive_now_is_utc() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    wire.verify(now=datetime.now(UTC).replace(tzinfo=None))


def test_anonymous_returns_none() -> None:
    assert sigv4.parse("GET", "/b/k", [], {"host": "h"}) is None
    assert sigv4.parse("GET", "/b", [("list-type", "2"), ("prefix", "x")], {"host": "h"}) is None


def test_missing_content_sha256() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    del wire.headers["x-amz-content-sha256"]
    with pytest.raises(errors.InvalidRequest) as info:
        wire.parse()
    assert info.value.message == "Missing required header for this request: x-amz-content-sha256"


def test_invalid_content_sha256_value() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    wire.headers["x-amz-content-sha256"] = "not-a-hash"
    with pytest.raises(errors.InvalidArgument):
        wire.parse()


def test_missing_or_bad_date() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    del wire.headers["x-amz-date"]
    with pytest.raises(errors.AccessDenied):
        wire.parse()
    for bad in ("yesterday", "20250230T000000Z", "2025-01-01T00:00:00Z"):
        wire.headers["x-amz-date"] = bad
        with pytest.raises(errors.AccessDenied):
            wire.parse()


def test_credential_date_must_match_request_date() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    req = wire.parse()
    assert req is not None
    wire.headers["x-amz-date"] = "19990101T000000Z"
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        wire.parse()


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS AKIDLOXOTEST:c2lnbmF0dXJl",
        "Bearer abc",
        "AWS4-ECDSA-P256-SHA256 Credential=a/20250101/s3/aws4_request, SignedHeaders=host, "
        "Signature=00",
        "",
        "   ",
    ],
)
def test_unsupported_or_empty_authorization(authorization: str) -> None:
    headers = {
        "host": "h",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "authorization": authorization,
    }
    with pytest.raises(errors.InvalidRequest) as info:
        sigv4.parse("GET", "/b/k", [], headers)
    assert "AWS4-HMAC-SHA256" in info.value.message


def test_sigv2_presigned_url_rejected() -> None:
    query = [("AWSAccessKeyId", AK), ("Expires", "1700000000"), ("Signature", "abc=")]
    with pytest.raises(errors.InvalidRequest) as info:
        sigv4.parse("GET", "/b/k", query, {"host": "h"})
    assert "Signature Version 4" in info.value.message


def test_both_header_and_query_auth() -> None:
    wire = header_signed("GET", object_url("b", "k"))
    wire.query.append(("X-Amz-Signature", "0" * 64))
    with pytest.raises(errors.InvalidArgument):
        wire.parse()


GOOD_CRED = f"Credential={AK}/20250101/us-east-1/s3/aws4_request"
GOOD_SH = "SignedHeaders=host;x-amz-content-sha256;x-amz-date"
GOOD_SIG = "Signature=" + "a" * 64


@pytest.mark.parametrize(
    "fields",
    [
        f"{GOOD_CRED}, {GOOD_SH}",
        f"{GOOD_SH}, {GOOD_SIG}",
        f"{GOOD_CRED}, {GOOD_SH}, {GOOD_SIG}, {GOOD_SIG}",
        f"{GOOD_CRED}, {GOOD_SH}, {GOOD_SIG}, Extra=1",
        f"Credential={AK}/20250101/us-east-1/s3, {GOOD_SH}, {GOOD_SIG}",
        f"Credential={AK}/20250101/us-east-1/ec2/aws4_request, {GOOD_SH}, {GOOD_SIG}",
        f"Credential={AK}/2025-1-1/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
        f"Credential={AK}/20251399/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
        f"Credential=/20250101/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
        f"{GOOD_CRED}, SignedHeaders=x-amz-date, {GOOD_SIG}",
        f"{GOOD_CRED}, SignedHeaders=host;;x-amz-date, {GOOD_SIG}",
        f"{GOOD_CRED}, {GOOD_SH}, Signature=xyz",
        f"{GOOD_CRED}, {GOOD_SH}, Signature={'a' * 63}",
        f"{GOOD_CRED} {GOOD_SH} Signature",
    ],
)
def test_malformed_authorization_header(fields: str) -> None:
    headers = {
        "host": "h",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "x-amz-date": "20250101T000000Z",
        "authorization": f"AWS4-HMAC-SHA256 {fields}",
    }
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        sigv4.parse("GET", "/b/k", [], headers)


_HEADERS_BASE = {
    "host": "127.0.0.1:9000",
    "x-amz-content-sha256": sigv4.EMPTY_SHA256,
    "x-amz-date": "20250101T000000Z",
}
_NOW = datetime(2025, 1, 1, 0, 1, tzinfo=UTC)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_fuzz_authorization_header_raises_only_s3_errors(rest: str) -> None:
    headers = {**_HEADERS_BASE, "authorization": "AWS4-HMAC-SHA256 " + rest}
    try:
        req = sigv4.parse("GET", "/b/k", [], headers)
        if req is not None:
            sigv4.verify(req, SK, "GET", "/b/k", [], headers, now=_NOW)
    except errors.SigningError:
        pass


_cred_piece = st.text(
    st.sampled_from("abcAKID0123456789/-_ s3aws4_requestusest"), min_size=0, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    creds=st.one_of(
        st.text(),
        st.builds(
            lambda a, d, r, s: f"{a}/{d}/{r}/{s}/aws4_request",
            _cred_piece,
            st.sampled_from(["20250101", "2025010", "20251301", ""]),
            _cred_piece,
            st.sampled_from(["s3", "S3", "", "iam"]),
        ),
    ),
    signed=st.one_of(st.text(), st.sampled_from(["host", "host;x-amz-date", "HOST;X-Amz-Date"])),
    sig=st.one_of(st.text(), st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)),
    sep=st.sampled_from([", ", ",", " ", " , ", "\t,\n"]),
)
def test_fuzz_structured_authorization(creds: str, signed: str, sig: str, sep: str) -> None:
    auth = f"AWS4-HMAC-SHA256 Credential={creds}{sep}SignedHeaders={signed}{sep}Signature={sig}"
    headers = {**_HEADERS_BASE, "authorization": auth}
    try:
        req = sigv4.parse("GET", "/b/k", [], headers)
        assert req is not None
        sigv4.verify(req, SK, "GET", "/b/k", [], headers, now=_NOW)
    except errors.SigningError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
                "X-Amz-Content-Sha256",
            ]
        ),
        st.one_of(
            st.text(),
            st.sampled_from(
                [
                    "AWS4-HMAC-SHA256",
                    f"{AK}/20250101/us-east-1/s3/aws4_request",
                    "20250101T000000Z",
                    "3600",
                    "host",
                    "a" * 64,
                ]
            ),
        ),
        min_size=1,
    )
)
def test_fuzz_query_auth_raises_only_s3_errors(params: dict[str, str]) -> None:
    query = list(params.items())
    try:
        req = sigv4.parse("GET", "/b/k", query, {"host": "h"})
        if req is not None:
            sigv4.verify(req, SK, "GET", "/b/k", query, {"host": "h"}, now=_NOW)
    except errors.SigningError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    date=st.one_of(
        st.text(),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        st.datetimes().map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
    ),
    use_amz=st.booleans(),
)
def test_fuzz_date_headers_raise_only_s3_errors(date: str, use_amz: bool) -> None:
    headers = {k: v for k, v in _HEADERS_BASE.items() if k != "x-amz-date"}
    headers["x-amz-date" if use_amz else "date"] = date
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={AK}/{date[:8]}/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'a' * 64}"
    )
    try:
        req = sigv4.parse("GET", "/b/k", [], headers)
        assert req is not None
        sigv4.verify(req, SK, "GET", "/b/k", [], headers, now=_NOW)
    except errors.SigningError:
        pass


@pytest.mark.parametrize("amz_date", ["99991231T235959Z", "00010101T000000Z"])
@pytest.mark.parametrize("now", [_NOW, datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
def test_presigned_extreme_dates(amz_date: str, now: datetime) -> None:
    query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{AK}/{amz_date[:8]}/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(sigv4.MAX_EXPIRES)),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "a" * 64),
    ]
    wire = Wire("GET", "/b/k", query, {"host": "h"})
    with pytest.raises((errors.AccessDenied, errors.SignatureDoesNotMatch)):
        wire.verify(now=now)


_key_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=_key_text,
    params=st.dictionaries(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=10),
        st.text(st.characters(codec="utf-8"), max_size=20),
        max_size=4,
    ),
)
def test_property_botocore_signatures_verify(key: str, params: dict[str, str]) -> None:
    header_signed("PUT", object_url("bucket", key), body=key.encode(), params=params).verify()
    presigned("GET", object_url("bucket", key), params=params).verify()


# --------------------------------------------------------------------------- canonical forms


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/bucket/my%20key", "/bucket/my%20key"),
        ("/bucket/a+b", "/bucket/a%2Bb"),
        ("/bucket/a%2bb", "/bucket/a%2Bb"),
        ("/bucket/%7Etilde~", "/bucket/~tilde~"),
        ("/bucket/a%2Fb", "/bucket/a/b"),
        ("/bucket/x/../y/./z//", "/bucket/x/../y/./z//"),
        ("/bucket/%E2%9C%93", "/bucket/%E2%9C%93"),
        ("/bucket/é", "/bucket/%C3%A9"),
        ("", "/"),
    ],
)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert sigv4.canonical_uri(raw) == canonical


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(),
    query=st.lists(st.tuples(st.text(), st.text()), max_size=3),
    value=st.text(),
)
def test_fuzz_wire_inputs_raise_only_s3_errors(
    path: str, query: list[tuple[str, str]], value: str
) -> None:
    # Whatever the HTTP layer hands over (non-ASCII, lone surrogates from a
    # surrogateescape decode, odd percent escapes), verify answers with an S3Error.
    wire = header_signed("GET", object_url("b", "k"), headers={"x-amz-meta-v": "x"})
    wire.headers["x-amz-meta-v"] = value
    with pytest.raises(errors.SigningError):
        replace(wire, path="/" + path + "\udcff", query=query).verify()


def test_raw_utf8_path_verifies() -> None:
    # A client that sends the key as raw UTF-8 bytes signs its percent-encoded form.
    wire = header_signed("GET", object_url("b", "ключ é"))
    raw = "/b/ключ é".encode().decode("utf-8", "surrogateescape")
    replace(wire, path=raw).verify()
    latin = b"/b/\xff".decode("utf-8", "surrogateescape")
    assert sigv4.canonical_uri(latin) == "/b/%FF"


def test_canonical_query_sorting_and_encoding() -> None:
    query = [("prefix", "a/b c"), ("list-type", "2"), ("a", "2"), ("a", "10"), ("uploads", "")]
    assert sigv4.canonical_query(query) == "a=10&a=2&list-type=2&prefix=a%2Fb%20c&uploads="
    presign = [("X-Amz-Signature", "x"), ("b", "~*")]
    assert sigv4.canonical_query(presign, exclude_signature=True) == "b=~%2A"


def test_canonical_headers_trim_and_collapse() -> None:
    headers = {"host": " h ", "x-amz-meta-a": "  a   b \t c  "}
    assert (
        sigv4.canonical_headers(("host", "x-amz-meta-a"), headers) == "host:h\nx-amz-meta-a:a b c\n"
    )


def test_raw_path_fallback_for_clients_signing_their_own_escaping() -> None:
    # botocore signs the path exactly as it appears in the URL; a client that
    # escapes '/' or uses lower-case hex still verifies.
    for raw in ("/bucket/a%2Fb", "/bucket/a%2bb"):
        header_signed("GET", ENDPOINT + raw).verify()


def test_signing_key_is_cached() -> None:
    sigv4.signing_key.cache_clear()
    a = sigv4.signing_key(SK, "20250101", REGION, "s3")
    b = sigv4.signing_key(SK, "20250101", REGION, "s3")
    assert a == b and sigv4.signing_key.cache_info().hits == 1


# --------------------------------------------------------------------------- AWS published examples

AWS_AK = "AKIAIOSFODNN7EXAMPLE"
AWS_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_NOW = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)
AWS_CRED = f"{AWS_AK}/20130524/us-east-1/s3/aws4_request"


def test_aws_example_get_object_with_range() -> None:
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": f"AWS4-HMAC-SHA256 Credential={AWS_CRED},"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    Wire("GET", "/test.txt", [], headers).verify(AWS_SK, now=AWS_NOW)


def test_aws_example_presigned_url() -> None:
    query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", AWS_CRED),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
    ]
    wire = Wire("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})
    wire.verify(AWS_SK, now=AWS_NOW)
    with pytest.raises(errors.AccessDenied):
        wire.verify(AWS_SK, now=AWS_NOW + timedelta(days=2))


def _aws_streaming_headers(payload_hash: str, signed: str, signature: str) -> dict[str, str]:
    return {
        "host": "s3.amazonaws.com",
        "content-encoding": "aws-chunked",
        "content-length": "66824",
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": "20130524T000000Z",
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "authorization": f"AWS4-HMAC-SHA256 Credential={AWS_CRED},SignedHeaders={signed},"
        f"Signature={signature}",
    }


def _chain(req: sigv4.SignedRequest, chunks: list[bytes]) -> list[str]:
    key = sigv4.signing_key(AWS_SK, "20130524", "us-east-1", "s3")
    previous, out = req.signature, []
    for chunk in chunks:
        previous = sigv4.chunk_signature(
            key, req.amz_date, req.credential.scope, previous, hashlib.sha256(chunk).hexdigest()
        )
        out.append(previous)
    return out


AWS_CHUNKS = [b"a" * 65536, b"a" * 1024, b""]


def test_aws_example_streaming_chunk_signatures() -> None:
    headers = _aws_streaming_headers(
        sigv4.STREAMING_PAYLOAD,
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    )
    req = Wire("PUT", "/examplebucket/chunkObject.txt", [], headers).verify(AWS_SK, now=AWS_NOW)
    assert _chain(req, AWS_CHUNKS) == [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]


def test_aws_example_streaming_trailer_signature() -> None:
    headers = _aws_streaming_headers(
        sigv4.STREAMING_PAYLOAD_TRAILER,
        "content-encoding;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    )
    req = Wire("PUT", "/examplebucket/chunkObject.txt", [], headers).verify(AWS_SK, now=AWS_NOW)
    signatures = _chain(req, AWS_CHUNKS)
    assert signatures == [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ]
    trailer = sigv4.canonical_trailer([("x-amz-checksum-crc32c", "sOO8/Q==")])
    assert trailer == b"x-amz-checksum-crc32c:sOO8/Q==\n"
    key = sigv4.signing_key(AWS_SK, "20130524", "us-east-1", "s3")
    assert (
        sigv4.trailer_signature(
            key,
            req.amz_date,
            req.credential.scope,
            signatures[-1],
            hashlib.sha256(trailer).hexdigest(),
        )
        == "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    )


def test_string_to_sign_and_canonical_request_shape() -> None:
    wire = header_signed("GET", object_url("b", "k", "x=1"))
    req = wire.parse()
    assert req is not None
    cr = sigv4.canonical_request(req, wire.method, wire.path, wire.query, wire.headers)
    lines = cr.split("\n")
    assert lines[:3] == ["GET", "/b/k", "x=1"]
    assert lines[-2] == ";".join(req.signed_headers)
    assert lines[-1] == req.payload_hash
    sts = sigv4.string_to_sign(req, "00")
    assert sts == f"AWS4-HMAC-SHA256\n{req.amz_date}\n{req.credential.scope}\n00"
