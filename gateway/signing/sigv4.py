"""AWS Signature Version 4: who signed a request, and whether the signature holds.

This module owns the SigV4 concept, for S3 and for loxo's control API: parsing the signature a
request carries (``Authorization: AWS4-HMAC-SHA256 ...`` header or a presigned
URL's ``X-Amz-*`` query parameters), rebuilding S3's canonical request and
string to sign, deriving the signing key, and checking the signature in
constant time, plus the chunk and trailer signatures of ``aws-chunked``
streaming uploads. Everything here is a pure function of its arguments: no
HTTP framework, no I/O, no credential store.

The expected call sequence from the HTTP layer is::

    req = sigv4.parse(method, raw_path, query, headers)
    if req is None:
        ...                                  # anonymous request
    secret = lookup(req.credential.access_key)  # unknown -> InvalidAccessKeyId
    sigv4.verify(req, secret, method, raw_path, query, headers)

``verify`` checks the signature over the request line and headers only. The
body is covered through ``req.payload_hash``: when it is a hex SHA-256 the
caller must compare it with the body actually received
(``XAmzContentSHA256Mismatch``); when it is one of the ``STREAMING-*`` values
the caller must check every chunk with ``chunk_signature`` /
``trailer_signature``, seeded with ``req.signature``.

Only AWS4-HMAC-SHA256 is accepted here; Signature Version 2 is `sigv2`;
SigV4a (ECDSA) and POST-policy form uploads are not handled. Every failure is
a `gateway.signing.errors.SigningError`.

The module is over 400 lines because it is one algorithm end to end: the two
ways a signature travels (header, query), its canonical request, its time
window and the chunk signatures chained from it share the same helpers and
constants, and splitting them would only spread one specification over files.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from gateway.signing.clock import iso8601, utc
from gateway.signing.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidArgument,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SigningError,
    check_access_key,
)

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_EXPIRES",
    "MAX_SKEW",
    "STREAMING_PAYLOAD",
    "STREAMING_PAYLOAD_TRAILER",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "UNSIGNED_PAYLOAD",
    "Credential",
    "SignedRequest",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_trailer",
    "canonical_uri",
    "chunk_signature",
    "chunk_string_to_sign",
    "parse",
    "signing_key",
    "string_to_sign",
    "trailer_signature",
    "trailer_string_to_sign",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

#: Header-signed requests may be this far from the server's clock.
MAX_SKEW = timedelta(minutes=15)
#: Longest lifetime of a presigned URL, in seconds (seven days).
MAX_EXPIRES = 604800

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SCOPE_DATE_RE = re.compile(r"[0-9]{8}")
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_EXPIRES_RE = re.compile(r"-?[0-9]{1,12}")
# RFC 9110 token characters, lower case (header names are compared lower-cased).
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_EQUALS_RE = re.compile(r"\s*=\s*")
_SEPARATORS_RE = re.compile(r"[\s,]+")

_PAYLOAD_KEYWORDS = frozenset(
    {
        UNSIGNED_PAYLOAD,
        STREAMING_PAYLOAD,
        STREAMING_PAYLOAD_TRAILER,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    }
)

# The query parameters of a SigV4 presigned URL; the presence of the algorithm,
# credential or signature is what marks a URL as presigned.
_Q_ALGORITHM = "X-Amz-Algorithm"
_Q_CREDENTIAL = "X-Amz-Credential"
_Q_DATE = "X-Amz-Date"
_Q_EXPIRES = "X-Amz-Expires"
_Q_SIGNED_HEADERS = "X-Amz-SignedHeaders"
_Q_SIGNATURE = "X-Amz-Signature"
_Q_CONTENT_SHA256 = "X-Amz-Content-Sha256"
_QUERY_AUTH_PARAMS = (
    _Q_ALGORITHM,
    _Q_CREDENTIAL,
    _Q_DATE,
    _Q_EXPIRES,
    _Q_SIGNED_HEADERS,
    _Q_SIGNATURE,
)

_UNSUPPORTED = (
    "The authorization mechanism you have provided is not supported. "
    "Please use AWS4-HMAC-SHA256 (Signature Version 4)."
)
_MISSING_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_MISSING_QUERY_PARAMS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, "
    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
    "and X-Amz-Expires parameters."
)


@dataclass(frozen=True, slots=True)
class Credential:
    """The credential scope of a signature: ``access_key/date/region/service/aws4_request``."""

    access_key: str
    date: str  # YYYYMMDD
    region: str
    service: str

    @property
    def scope(self) -> str:
        """The scope as it appears in the string to sign (without the access key)."""
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a request claims about its signature, before any secret is consulted."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str  # lower-case hex
    amz_date: str  # YYYYMMDDTHHMMSSZ
    payload_hash: str  # x-amz-content-sha256, or UNSIGNED-PAYLOAD for presigned URLs
    presigned: bool
    expires: int | None  # seconds, presigned only


# --------------------------------------------------------------------------- parsing


def parse(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    *,
    any_service: bool = False,
) -> SignedRequest | None:
    """Read the SigV4 signature a request carries; None when it carries none (anonymous).

    The credential scope must name the service "s3", unless ``any_service``
    (loxo's control API takes any signer's service name).

    ``headers`` maps lower-cased names to values; ``query`` holds decoded
    (name, value) pairs in request order. Raises a SigningError, and nothing else,
    when the signature is present but malformed or of an unsupported kind.
    """
    del method, path  # part of the interface; the signature's shape does not depend on them
    authorization = headers.get("authorization")
    names = {name for name, _ in query}
    query_v4 = any(name in names for name in (_Q_ALGORITHM, _Q_CREDENTIAL, _Q_SIGNATURE))
    if authorization is not None and query_v4:
        raise InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        return _parse_header_auth(authorization, headers, any_service)
    if query_v4:
        return _parse_query_auth(query, headers, any_service)
    if "AWSAccessKeyId" in names or "Signature" in names:
        raise InvalidRequest(_UNSUPPORTED)
    return None


def _parse_header_auth(
    authorization: str, headers: Mapping[str, str], any_service: bool = False
) -> SignedRequest:
    text = authorization.strip()
    if not text.startswith(ALGORITHM):
        raise InvalidRequest(_UNSUPPORTED)
    rest = text[len(ALGORITHM) :]
    if rest and not rest[0].isspace():
        if rest[0] == "-" or rest[0].isalnum():
            # e.g. AWS4-HMAC-SHA256-PAYLOAD or a SigV4a-like name: not our algorithm.
            raise InvalidRequest(_UNSUPPORTED)
        raise AuthorizationHeaderMalformed(
            "The authorization header is malformed; expected a space after AWS4-HMAC-SHA256."
        )
    fields = _parse_auth_fields(rest)
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise AuthorizationHeaderMalformed(
            f"The authorization header is malformed; missing {', '.join(missing)}."
        )
    credential = _parse_credential(fields["Credential"], AuthorizationHeaderMalformed, any_service)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], AuthorizationHeaderMalformed)
    signature = _parse_signature(fields["Signature"], AuthorizationHeaderMalformed)

    payload_hash = headers.get("x-amz-content-sha256")
    if payload_hash is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    payload_hash = payload_hash.strip()
    _check_payload_hash(payload_hash)

    amz_date = _header_amz_date(headers)
    if credential.date != amz_date[:8]:
        raise AuthorizationHeaderMalformed(
            "The authorization header is malformed; Invalid credential date. "
            "Date is not the same as X-Amz-Date."
        )
    return SignedRequest(
        credential=credential,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        payload_hash=payload_hash,
        presigned=False,
        expires=None,
    )


def _parse_auth_fields(rest: str) -> dict[str, str]:
    """``Credential=..., SignedHeaders=..., Signature=...`` -> dict, tolerant of spacing."""
    normalized = _EQUALS_RE.sub("=", rest.strip())
    fields: dict[str, str] = {}
    for part in _SEPARATORS_RE.split(normalized):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or key not in ("Credential", "SignedHeaders", "Signature"):
            raise AuthorizationHeaderMalformed(
                "The authorization header is malformed; expected "
                "'Credential=..., SignedHeaders=..., Signature=...'."
            )
        if key in fields:
            raise AuthorizationHeaderMalformed(
                f"The authorization header is malformed; {key} appears more than once."
            )
        fields[key] = value
    return fields


def _parse_query_auth(
    query: list[tuple[str, str]], headers: Mapping[str, str], any_service: bool = False
) -> SignedRequest:
    params: dict[str, str] = {}
    for name, value in query:
        if name in _QUERY_AUTH_PARAMS or name == _Q_CONTENT_SHA256:
            if name in params:
                raise AuthorizationQueryParametersError(
                    f"The query-string authorization is malformed; {name} appears more than once."
                )
            params[name] = value
    if any(name not in params for name in _QUERY_AUTH_PARAMS):
        raise AuthorizationQueryParametersError(_MISSING_QUERY_PARAMS)
    if params[_Q_ALGORITHM] != ALGORITHM:
        raise AuthorizationQueryParametersError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    credential = _parse_credential(
        params[_Q_CREDENTIAL], AuthorizationQueryParametersError, any_service
    )
    signed_headers = _parse_signed_headers(
        params[_Q_SIGNED_HEADERS], AuthorizationQueryParametersError
    )
    signature = _parse_signature(params[_Q_SIGNATURE], AuthorizationQueryParametersError)
    amz_date = params[_Q_DATE]
    if _parse_amz_date(amz_date) is None:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    if credential.date != amz_date[:8]:
        raise AuthorizationQueryParametersError(
            "Invalid credential date. Date is not the same as X-Amz-Date."
        )
    expires = _parse_expires(params[_Q_EXPIRES])

    payload_hash = headers.get("x-amz-content-sha256")
    if payload_hash is None:
        payload_hash = params.get(_Q_CONTENT_SHA256, UNSIGNED_PAYLOAD)
    payload_hash = payload_hash.strip()
    _check_payload_hash(payload_hash)
    return SignedRequest(
        credential=credential,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        payload_hash=payload_hash,
        presigned=True,
        expires=expires,
    )


def _parse_credential(
    value: str, error: type[SigningError], any_service: bool = False
) -> Credential:
    parts = value.strip().rsplit("/", 4)
    expected = 'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'
    if len(parts) != 5 or not all(parts):
        raise error(f"The Credential is mal-formed; {expected}.")
    access_key, date, region, service, terminator = parts
    check_access_key(access_key)
    if not _SCOPE_DATE_RE.fullmatch(date) or _parse_scope_date(date) is None:
        raise error(f'Invalid credential date "{date}". This date is not the expected format.')
    if terminator != TERMINATOR:
        raise error(f'The Credential is mal-formed; incorrect terminal "{terminator}". {expected}.')
    if service != SERVICE and not any_service:
        raise error(
            f'The Credential is mal-formed; incorrect service "{service}". '
            f'This endpoint belongs to "{SERVICE}".'
        )
    return Credential(access_key=access_key, date=date, region=region, service=service)


def _parse_signed_headers(value: str, error: type[SigningError]) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in value.strip().split(";"))
    if not names or not all(_HEADER_NAME_RE.fullmatch(name) for name in names):
        raise error("SignedHeaders is mal-formed; expected header names separated by ';'.")
    if "host" not in names:
        raise error("SignedHeaders must include the host header.")
    return names


def _parse_signature(value: str, error: type[SigningError]) -> str:
    signature = value.strip()
    if not _SIGNATURE_RE.fullmatch(signature):
        raise error("The Signature is mal-formed; expected 64 hexadecimal characters.")
    return signature.lower()


def _parse_expires(value: str) -> int:
    text = value.strip()
    if not _EXPIRES_RE.fullmatch(text):
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number")
    expires = int(text)
    _check_expires(expires)
    return expires


def _check_expires(expires: int | None) -> None:
    if expires is None or expires < 1:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise AuthorizationQueryParametersError(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES} seconds"
        )


def _check_payload_hash(value: str) -> None:
    if value in _PAYLOAD_KEYWORDS or _SHA256_RE.fullmatch(value):
        return
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


def _header_amz_date(headers: Mapping[str, str]) -> str:
    """The request time as YYYYMMDDTHHMMSSZ, from x-amz-date or else Date."""
    amz = headers.get("x-amz-date")
    if amz is not None:
        amz = amz.strip()
        if _parse_amz_date(amz) is None:
            raise AccessDenied(_MISSING_DATE)
        return amz
    date = headers.get("date")
    if date is None:
        raise AccessDenied(_MISSING_DATE)
    date = date.strip()
    if _parse_amz_date(date) is not None:
        return date
    try:
        parsed = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise AccessDenied(_MISSING_DATE) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        amz = parsed.astimezone(UTC).strftime(_AMZ_DATE_FORMAT)
    except (ValueError, OverflowError):
        raise AccessDenied(_MISSING_DATE) from None
    if _parse_amz_date(amz) is None:  # e.g. a year before 1000
        raise AccessDenied(_MISSING_DATE)
    return amz


def _parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE_RE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_scope_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return None


# --------------------------------------------------------------------------- canonical forms


def _uri_encode(text: str | bytes, safe: str = "") -> str:
    """RFC 3986 encoding: everything but A-Z a-z 0-9 - _ . ~ (and ``safe``)."""
    return quote(text, safe="-_.~" + safe)


def canonical_uri(path: str) -> str:
    """S3's canonical URI: percent-decode the raw path, re-encode all but unreserved and '/'.

    S3 neither normalizes ``.``/``..`` segments nor double-encodes. A path
    holding raw non-ASCII characters is taken as UTF-8; bytes that were not
    valid UTF-8 survive if the caller decoded with ``surrogateescape``.
    """
    if not path:
        return "/"
    return _uri_encode(unquote_to_bytes(_utf8(path)), safe="/")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def canonical_query(query: Iterable[tuple[str, str]], *, exclude_signature: bool = False) -> str:
    """Encoded ``name=value`` pairs sorted by name then value, joined by ``&``."""
    pairs = sorted(
        (_uri_encode(name), _uri_encode(value))
        for name, value in query
        if not (exclude_signature and name == _Q_SIGNATURE)
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def _header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_headers(signed_headers: Iterable[str], headers: Mapping[str, str]) -> str:
    """``name:value\\n`` for each signed header, values trimmed and inner spaces collapsed."""
    return "".join(f"{name}:{_header_value(headers.get(name, ''))}\n" for name in signed_headers)


def canonical_request(
    req: SignedRequest,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    *,
    raw_path: bool = False,
) -> str:
    """The canonical request the signer must have hashed.

    With ``raw_path`` the path is used exactly as received instead of being
    re-encoded (see ``verify``).
    """
    return "\n".join(
        [
            method.upper(),
            (path or "/") if raw_path else canonical_uri(path),
            canonical_query(query, exclude_signature=req.presigned),
            canonical_headers(req.signed_headers, headers),
            ";".join(req.signed_headers),
            req.payload_hash,
        ]
    )


def string_to_sign(req: SignedRequest, canonical_request_hash: str) -> str:
    """``AWS4-HMAC-SHA256 \\n amz_date \\n scope \\n hex(sha256(canonical request))``."""
    return f"{ALGORITHM}\n{req.amz_date}\n{req.credential.scope}\n{canonical_request_hash}"


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- verification


def verify(
    req: SignedRequest,
    secret_key: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    now: datetime | None = None,
    *,
    double_encoded: bool = False,
) -> None:
    """Check the request's time window and signature; return quietly or raise a SigningError.

    With ``double_encoded``, a signature over the path encoded twice (as
    non-S3 signers compute it) is accepted too.

    ``path`` is the raw, still percent-encoded request path. The signature is
    checked against S3's canonical URI; if that fails and the raw path differs
    from it (a client that signed its own, differently escaped, path) the raw
    path is tried too: both decode to the same key, so this admits nothing
    the client did not sign.
    """
    current = utc(now if now is not None else datetime.now(UTC))
    request_time = _parse_amz_date(req.amz_date)
    if request_time is None:
        error = AuthorizationQueryParametersError if req.presigned else AccessDenied
        raise error(_MISSING_DATE)
    _check_time(req, request_time, current)

    key = signing_key(
        secret_key, req.credential.date, req.credential.region, req.credential.service
    )
    canonical = canonical_request(req, method, path, query, headers)
    to_sign = string_to_sign(req, hashlib.sha256(_utf8(canonical)).hexdigest())
    if hmac.compare_digest(_sign(key, to_sign), req.signature):
        return
    if path and path != canonical_uri(path):
        raw = canonical_request(req, method, path, query, headers, raw_path=True)
        raw_to_sign = string_to_sign(req, hashlib.sha256(_utf8(raw)).hexdigest())
        if hmac.compare_digest(_sign(key, raw_to_sign), req.signature):
            return
    if double_encoded and "%" in path:
        # Signers for services other than S3 encode the already-encoded path
        # once more (the SigV4 default).
        twice = canonical_request(
            req, method, _uri_encode(path, safe="/"), query, headers, raw_path=True
        )
        twice_to_sign = string_to_sign(req, hashlib.sha256(_utf8(twice)).hexdigest())
        if hmac.compare_digest(_sign(key, twice_to_sign), req.signature):
            return
    raise SignatureDoesNotMatch(
        AWSAccessKeyId=req.credential.access_key,
        StringToSign=to_sign,
        SignatureProvided=req.signature,
        CanonicalRequest=_utf8(canonical).decode("utf-8", "replace"),
    )


def _check_time(req: SignedRequest, request_time: datetime, now: datetime) -> None:
    if not req.presigned:
        if abs(now - request_time) > MAX_SKEW:
            raise RequestTimeTooSkewed(
                RequestTime=req.amz_date,
                ServerTime=iso8601(now),
                MaxAllowedSkewMilliseconds=str(int(MAX_SKEW.total_seconds() * 1000)),
            )
        return
    _check_expires(req.expires)
    assert req.expires is not None  # _check_expires rejects None
    if request_time - now > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    lifetime = timedelta(seconds=req.expires)
    if now - request_time > lifetime:
        expiry = request_time + lifetime  # earlier than now, so representable
        raise AccessDenied(
            "Request has expired",
            **{
                "X-Amz-Expires": str(req.expires),
                "Expires": iso8601(expiry),
                "ServerTime": iso8601(now),
            },
        )


# --------------------------------------------------------------------------- aws-chunked


def chunk_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str
) -> str:
    """String to sign for one chunk of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body."""
    return (
        f"{ALGORITHM}-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256_hex}"
    )


def chunk_signature(
    key: bytes, amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str
) -> str:
    """Signature of one body chunk; the first chunk's previous signature is the seed,
    i.e. ``SignedRequest.signature``. The final, empty chunk is signed like any other."""
    return _sign(key, chunk_string_to_sign(amz_date, scope, previous_signature, chunk_sha256_hex))


def canonical_trailer(trailers: Iterable[tuple[str, str]]) -> bytes:
    """The trailing-header chunk as it is hashed for its signature: ``name:value\\n`` each,
    names lower-cased, values trimmed, in the order given, ``x-amz-trailer-signature``
    itself excluded."""
    return "".join(
        f"{name.strip().lower()}:{value.strip()}\n"
        for name, value in trailers
        if name.strip().lower() != "x-amz-trailer-signature"
    ).encode()


def trailer_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, trailer_sha256_hex: str
) -> str:
    """String to sign for the trailer of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER body."""
    return f"{ALGORITHM}-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{trailer_sha256_hex}"


def trailer_signature(
    key: bytes, amz_date: str, scope: str, previous_signature: str, trailer_sha256_hex: str
) -> str:
    """Value of ``x-amz-trailer-signature``: chained from the final (empty) chunk's
    signature, over sha256 of ``canonical_trailer(...)``."""
    return _sign(
        key, trailer_string_to_sign(amz_date, scope, previous_signature, trailer_sha256_hex)
    )
