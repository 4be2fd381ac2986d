"""AWS Signature Version 2 for S3: ``Authorization: AWS AKID:signature`` and
presigned URLs with ``AWSAccessKeyId``, ``Expires`` and ``Signature``.

boto3 still presigns with SigV2 when no signature version is configured (its
``generate_presigned_url`` snippet), and older tools sign every request with
it. The signature is base64(HMAC-SHA1(secret, StringToSign)) where::

    StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Date \\n
                   CanonicalizedAmzHeaders CanonicalizedResource

Date is the Date header (empty when x-amz-date is given: the x-amz-date
header is then signed among the x-amz-* headers), or a presigned URL's
Expires. CanonicalizedResource is ``/bucket/key`` as sent, whatever the
addressing style, plus the sub-resources of ``SUBRESOURCES`` in the query.

SigV2 signs no body hash: a body is covered only through Content-MD5 when
the client sends one (which the S3 layer verifies), and aws-chunked bodies
need SigV4. Pure functions; failures are ``gateway.signing.errors``.

    req = sigv2.parse(query, headers)           # when sigv2.carries(query, headers)
    secret = lookup(req.access_key)             # unknown -> InvalidAccessKeyId
    sigv2.verify(req, secret, method, raw_path, raw_query, headers, bucket=vhost_bucket)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, unquote_to_bytes

from gateway.signing.clock import iso8601, utc
from gateway.signing.errors import (
    AccessDenied,
    InvalidArgument,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    check_access_key,
)

__all__ = [
    "MAX_SKEW",
    "SUBRESOURCES",
    "SignedRequest",
    "canonical_amz_headers",
    "canonical_resource",
    "carries",
    "parse",
    "sign",
    "string_to_sign",
    "verify",
]

#: Header-signed requests may be this far from the server's clock.
MAX_SKEW = timedelta(minutes=15)

#: Query parameters that are part of the signed resource (S3's sub-resources,
#: the response overrides, and what botocore's SigV2 signer adds to them).
SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)

_PREFIX = "AWS "
_Q_ACCESS_KEY = "AWSAccessKeyId"
_Q_SIGNATURE = "Signature"
_Q_EXPIRES = "Expires"
_V4_QUERY = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
_MISSING_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_MISSING_QUERY = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)
_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a SigV2 request claims, before any secret is consulted."""

    access_key: str
    signature: str  # base64, as sent
    presigned: bool
    expires: int | None  # epoch seconds, presigned only


def carries(query: Sequence[tuple[str, str]], headers: Mapping[str, str]) -> bool:
    """Whether the request is signed with SigV2 (an ``AWS `` Authorization header, or
    the AWSAccessKeyId/Signature query parameters of a SigV2 presigned URL)."""
    authorization = headers.get("authorization")
    if authorization is not None:
        return authorization.startswith(_PREFIX)
    names = {name for name, _ in query}
    if any(name in names for name in _V4_QUERY):
        return False
    return _Q_ACCESS_KEY in names or _Q_SIGNATURE in names


def parse(query: Sequence[tuple[str, str]], headers: Mapping[str, str]) -> SignedRequest:
    """Read the SigV2 signature of a request that `carries` one.

    ``query`` holds decoded (name, value) pairs; ``headers`` lower-cased names.
    """
    names = [name for name, _ in query]
    authorization = headers.get("authorization")
    if authorization is not None:
        if any(n in names for n in (*_V4_QUERY, _Q_ACCESS_KEY, _Q_SIGNATURE)):
            raise InvalidArgument(_ONE_MECHANISM, ArgumentName="Authorization")
        access_key, colon, signature = authorization[len(_PREFIX) :].strip().rpartition(":")
        if not colon or not access_key or not signature:
            raise InvalidArgument(
                "AWS authorization header is invalid. Expected AwsAccessKeyId:signature",
                ArgumentName="Authorization",
            )
        check_access_key(access_key)
        return SignedRequest(access_key, signature, presigned=False, expires=None)
    params: dict[str, str] = {}
    for name, value in query:
        if name in (_Q_ACCESS_KEY, _Q_SIGNATURE, _Q_EXPIRES):
            if name in params:
                raise InvalidArgument(f"{name} appears more than once", ArgumentName=name)
            params[name] = value
    if any(n not in params for n in (_Q_ACCESS_KEY, _Q_SIGNATURE, _Q_EXPIRES)):
        raise AccessDenied(_MISSING_QUERY)
    check_access_key(params[_Q_ACCESS_KEY])
    expires = params[_Q_EXPIRES].strip()
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        raise AccessDenied(f"Invalid date (should be seconds since epoch): {params[_Q_EXPIRES]}")
    return SignedRequest(
        params[_Q_ACCESS_KEY], params[_Q_SIGNATURE], presigned=True, expires=int(expires)
    )


# --------------------------------------------------------------------------- canonical forms


def canonical_resource(path: str, query_string: str, bucket: str | None = None) -> str:
    """``/bucket/key`` as sent (``bucket`` is a virtual host's bucket, prefixed to the
    path), then ``?`` and the sub-resources among the query parameters, sorted by name,
    values decoded. ``query_string`` is raw: ``?uploads`` and ``?uploads=`` sign apart."""
    resource = f"/{bucket}{path or '/'}" if bucket is not None else (path or "/")
    subresources: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        name, equals, value = part.partition("=")
        if name in SUBRESOURCES:
            subresources.append((name, f"{name}={unquote(value)}" if equals else name))
    if subresources:
        subresources.sort(key=lambda item: item[0])
        resource += "?" + "&".join(text for _, text in subresources)
    return resource


def canonical_amz_headers(headers: Mapping[str, str], *, skip_date: bool = False) -> str:
    """``name:value\\n`` for each x-amz-* header: names lower-cased and sorted, values
    trimmed (``headers`` joins repeated headers with commas)."""
    amz = sorted(
        (name.lower(), value.strip())
        for name, value in headers.items()
        if name.lower().startswith("x-amz-") and not (skip_date and name.lower() == "x-amz-date")
    )
    return "".join(f"{name}:{value}\n" for name, value in amz)


def string_to_sign(
    method: str, content_md5: str, content_type: str, date: str, amz_headers: str, resource: str
) -> str:
    return f"{method.upper()}\n{content_md5}\n{content_type}\n{date}\n{amz_headers}{resource}"


def sign(secret_key: str, text: str) -> str:
    """base64(HMAC-SHA1(secret, text)): the signature of a string to sign."""
    digest = hmac.new(secret_key.encode(), text.encode("utf-8", "surrogatepass"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode()


# --------------------------------------------------------------------------- verification


def verify(
    req: SignedRequest,
    secret_key: str,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    *,
    bucket: str | None = None,
    now: datetime | None = None,
) -> None:
    """Check the time window and the signature; return quietly or raise a SigningError.

    ``path`` is the raw request path; ``bucket`` the bucket a virtual-host-style
    Host header names. A header-signed request must be within MAX_SKEW of the
    server's clock; a presigned URL is good until its Expires.
    """
    current = utc(now if now is not None else datetime.now(UTC))
    if req.presigned:
        assert req.expires is not None
        if current.timestamp() > req.expires:
            raise AccessDenied(
                "Request has expired",
                Expires=iso8601(datetime.fromtimestamp(req.expires, UTC)),
                ServerTime=iso8601(current),
            )
    else:
        _check_time(headers, current)

    fields = {name.lower(): value for name, value in headers.items()}
    amz = {name: value for name, value in fields.items() if name.startswith("x-amz-")}
    if req.presigned:
        # Presigners move signed x-amz-*, Content-Type and Content-MD5 headers
        # into the query; the request may or may not send them as headers too.
        query = [(name.lower(), value) for name, value in _decoded_pairs(query_string)]
        for name, value in query:
            if name.startswith("x-amz-"):
                amz.setdefault(name, value)
            elif name in ("content-type", "content-md5"):
                fields.setdefault(name, value)
    md5 = fields.get("content-md5", "").strip()
    content_type = fields.get("content-type", "").strip()

    candidates: list[str] = []
    for resource in _resources(path, query_string, bucket):
        for date, amz_text in _date_lines(req, fields, amz):
            candidates.append(string_to_sign(method, md5, content_type, date, amz_text, resource))
    provided = req.signature.encode("utf-8", "surrogatepass")
    for text in candidates:
        if hmac.compare_digest(sign(secret_key, text).encode(), provided):
            return
    raise SignatureDoesNotMatch(
        AWSAccessKeyId=req.access_key,
        StringToSign=candidates[0],
        SignatureProvided=req.signature,
    )


def _resources(path: str, query_string: str, bucket: str | None) -> list[str]:
    """The resource as sent, and (when they differ) with the path percent-encoded as
    botocore does, and a path-style bucket as ``/bucket/`` (S3's form for a bucket,
    which botocore signs for ``/bucket``): each names the same thing, so this admits
    nothing the client did not sign."""
    paths = [path]
    encoded = quote(unquote_to_bytes(path.encode("utf-8", "surrogateescape")), safe="/~")
    if encoded != path:
        paths.append(encoded)
    if bucket is None and len(path) > 1 and path.count("/") == 1:
        paths.append(path + "/")
    return [canonical_resource(p, query_string, bucket) for p in paths]


def _date_lines(
    req: SignedRequest, fields: Mapping[str, str], amz: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(Date line, x-amz-* lines) pairs the signer may have used."""
    if req.presigned:
        assert req.expires is not None
        return [(str(req.expires), canonical_amz_headers(amz))]
    with_date = canonical_amz_headers(amz)
    date = fields.get("date", "").strip()
    if "x-amz-date" not in amz:
        return [(date, with_date)]
    # AWS's documented form leaves Date empty; its older examples put x-amz-date's
    # value there instead; botocore signs the Date header it sends beside x-amz-date.
    lines = [
        ("", with_date),
        (amz["x-amz-date"].strip(), canonical_amz_headers(amz, skip_date=True)),
    ]
    if date:
        lines.append((date, with_date))
    return lines


def _decoded_pairs(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _check_time(headers: Mapping[str, str], now: datetime) -> None:
    raw = headers.get("x-amz-date") or headers.get("date")
    moment = _parse_date(raw.strip()) if raw else None
    if moment is None:
        raise AccessDenied(_MISSING_DATE)
    if abs(now - moment) > MAX_SKEW:
        raise RequestTimeTooSkewed(
            RequestTime=raw.strip() if raw else "",
            ServerTime=iso8601(now),
            MaxAllowedSkewMilliseconds=str(int(MAX_SKEW.total_seconds() * 1000)),
        )


def _parse_date(value: str) -> datetime | None:
    """An RFC 7231 date (``Tue, 27 Mar 2007 19:36:42 +0000``) or ISO 8601 basic
    (``20070327T193642Z``), as UTC; None when it is neither."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return utc(parsed)
    except (ValueError, OverflowError):
        return None
