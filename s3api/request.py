"""One S3 request as the operations see it, and how its body is read and verified.

Bodies are never held whole: `pieces()` streams them, counting bytes against
Content-Length, and decodes aws-chunked framing (s3api.chunked) when
x-amz-content-sha256 announces it, checking chunk signatures as they pass.
Integrity checks (payload SHA-256, Content-MD5, x-amz-checksum-*) are computed
by the content writer's threads while the body streams, and compared by
`verify()` after the last byte and before anything is committed, so a body that
fails a check is never visible. A checksum announced by x-amz-trailer is
computed the same way and compared with the value the trailer brings at the end
of the body; a trailer carrying anything x-amz-trailer did not announce is
refused (InvalidRequest), so no checksum that arrives goes unchecked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from gateway.signing import sigv4
from s3api import checksums, chunked
from s3api.buckets import BucketRef
from s3api.errors import (
    BadDigest,
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
    MissingContentLength,
    XAmzContentSHA256Mismatch,
)
from s3api.inputs import decimal
from versioning.content import Hasher, Ingested
from versioning.model import Manifest

MAX_OBJECT_SIZE = 5 * 1024**4  # 5 TiB, as S3
MAX_XML_BODY = 8 * 1024**2
# x-amz-checksum-* headers that are settings, not checksums.
_NOT_ALGORITHMS = frozenset(
    {"x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm"}
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(slots=True)
class S3Request:
    http: Request
    method: str
    bucket_name: str | None
    key: str | None
    query: dict[str, str]
    request_id: str
    bucket: BucketRef | None = None
    # The headers as signers see them: lower-cased names, repeated headers
    # joined with commas (what `headers` below hands the operations differs).
    headers_lower: Mapping[str, str] = field(default_factory=dict)
    # Decoded query (name, value) pairs in request order, repeats kept.
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    # The SigV4 signature that authenticated the request, and its signing key:
    # aws-chunked bodies chain their chunk signatures from them. None for SigV2.
    signed: sigv4.SignedRequest | None = None
    signing_key: bytes | None = None
    # The access key that signed the request (SigV4 or SigV2): the author of
    # the commits it makes.
    access_key: str | None = None
    # The trailing headers of an aws-chunked body, once `pieces()` has read it.
    trailers: dict[str, str] = field(default_factory=dict)
    # False when x-amz-checksum-<alg> headers describe another object than the
    # body (CompleteMultipartUpload: the assembled object, not the XML).
    checksums_describe_body: bool = True
    _headers: Headers | None = field(default=None, repr=False)

    @property
    def headers(self) -> Headers:
        """The request headers as the operations see them: the body is handed on
        decoded, so the aws-chunked content coding is dropped from Content-Encoding
        (as S3 does: it is never stored with the object nor returned on GET)."""
        if self._headers is None:
            self._headers = _without_aws_chunked(self.http.headers)
        return self._headers

    @property
    def author(self) -> str:
        """Who a commit this request makes is by: the signing access key."""
        assert self.access_key is not None, "authenticated requests only"
        return self.access_key

    @property
    def resource(self) -> str:
        if self.bucket_name is None:
            return "/"
        return f"/{self.bucket_name}/{self.key}" if self.key else f"/{self.bucket_name}"

    # -- streaming bodies -----------------------------------------------------

    def declared_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        length = decimal(value)
        if length is None:
            raise InvalidArgument("Content-Length must be a non-negative integer")
        return length

    def payload_hash(self) -> str:
        """x-amz-content-sha256 as signed (a hex SHA-256, UNSIGNED-PAYLOAD or STREAMING-*):
        the signature's (a presigned URL may carry it in the query), else the header."""
        if self.signed is not None:
            return self.signed.payload_hash
        return str(self.headers.get("x-amz-content-sha256", "")).strip()

    def decoded_length(self) -> int | None:
        """x-amz-decoded-content-length: the object's size inside aws-chunked framing."""
        value = self.headers.get("x-amz-decoded-content-length")
        if value is None:
            return None
        length = decimal(value.strip())
        if length is None:
            raise InvalidArgument(
                "x-amz-decoded-content-length must be a non-negative integer",
                ArgumentName="x-amz-decoded-content-length",
                ArgumentValue=value.strip()[:100],
            )
        return length

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body, streamed. For aws-chunked bodies (x-amz-content-sha256
        STREAMING-*, with or without Content-Encoding: aws-chunked) the decoded
        data; the trailer lands in `trailers` once the stream is done."""
        mode = self.payload_hash()
        if not chunked.is_streaming(mode):
            async for piece in self._raw_pieces(MAX_OBJECT_SIZE):
                yield piece
            return
        decoder = self._decoder(mode)
        # The framing adds a little to each chunk, so the raw stream is bounded
        # by the decoder's limit on decoded bytes rather than MAX_OBJECT_SIZE.
        async for piece in decoder.decode(self._raw_pieces(None)):
            yield piece
        self.trailers = decoder.trailers

    def _decoder(self, mode: str) -> chunked.ChunkedDecoder:
        decoded = self.decoded_length()
        if decoded is not None and decoded > MAX_OBJECT_SIZE:
            raise EntityTooLarge()
        signing = None
        if mode in chunked.SIGNED_MODES:
            if self.signed is None or self.signing_key is None:
                raise InvalidRequest(f"{mode} needs a request signed with AWS4-HMAC-SHA256")
            signing = chunked.ChunkSigning.of(self.signed, self.signing_key)
        return chunked.ChunkedDecoder(
            mode, signing=signing, decoded_length=decoded, max_size=MAX_OBJECT_SIZE
        )

    async def _raw_pieces(self, limit: int | None) -> AsyncIterator[bytes]:
        """The body as received, counted against Content-Length (and `limit`)."""
        expected = self.declared_length()
        if expected is None and "chunked" not in self.headers.get("transfer-encoding", ""):
            raise MissingContentLength()
        if limit is not None and expected is not None and expected > limit:
            raise EntityTooLarge()
        received = 0
        try:
            async for piece in self.http.stream():
                received += len(piece)
                if limit is not None and received > limit:
                    raise EntityTooLarge()
                yield piece
        except ClientDisconnect:
            raise IncompleteBody() from None
        if expected is not None and received != expected:
            raise IncompleteBody()

    async def small_body(self, limit: int = MAX_XML_BODY) -> bytes:
        """Read a small request document, verifying it as `verify` does a stored body:
        payload hash, Content-MD5, and x-amz-checksum-* headers or trailer."""
        hashers = self.body_hashers()
        out = bytearray()
        async for piece in self.pieces():
            out += piece
            if len(out) > limit:
                raise EntityTooLarge(f"request documents are limited to {limit} bytes")
        body = bytes(out)
        for hasher in hashers.values():
            hasher.update(body)
        self.verify(Ingested(Manifest(()), len(body), hashlib.md5(body).digest(), hashers))
        return body

    def content_md5(self) -> bytes | None:
        value = self.headers.get("content-md5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidDigest() from None
        if len(digest) != 16:
            raise InvalidDigest()
        return digest

    def body_hashers(self) -> dict[str, Hasher]:
        """Hashers the content writer must feed for this request's checks: the
        payload SHA-256, and one per checksum in a header or announced for the trailer."""
        hashers: dict[str, Hasher] = {}
        if _HEX64.match(self.headers.get("x-amz-content-sha256", "")):
            hashers["payload-sha256"] = hashlib.sha256()
        for name in [*self.checksum_headers(), *self.trailer_checksums()]:
            if name not in hashers:
                hashers[name] = checksums.ALGORITHMS[name].new()  # type: ignore[assignment]
        algo = self.headers.get("x-amz-sdk-checksum-algorithm")
        if algo is not None and algo.strip().lower() not in checksums.ALGORITHMS:
            raise InvalidRequest(
                f"x-amz-sdk-checksum-algorithm {algo!r} is not supported; use one of "
                + _supported()
            )
        return hashers

    def checksum_headers(self) -> list[str]:
        """Algorithms of the x-amz-checksum-<alg> headers that describe this
        request's body (none when `checksums_describe_body` is off)."""
        names = []
        for header in self.headers:
            if header.startswith("x-amz-checksum-") and header not in _NOT_ALGORITHMS:
                name = header.removeprefix("x-amz-checksum-")
                if name not in checksums.ALGORITHMS:
                    raise InvalidRequest(
                        f"Checksum algorithm {name!r} (header {header}) is not supported; "
                        "use one of " + _supported()
                    )
                names.append(name)
        return names if self.checksums_describe_body else []

    def trailer_checksums(self) -> list[str]:
        """Algorithms whose x-amz-checksum-<alg> the x-amz-trailer header announces."""
        announced = self.headers.get("x-amz-trailer")
        if announced is None:
            return []
        if self.payload_hash() not in chunked.TRAILER_MODES:
            raise InvalidRequest(
                "x-amz-trailer needs an aws-chunked body with a trailer: x-amz-content-sha256 "
                f"must be {sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER} or "
                f"{sigv4.STREAMING_PAYLOAD_TRAILER}"
            )
        names = []
        for item in announced.split(","):
            trailer = item.strip().lower()
            if not trailer:
                continue
            name = trailer.removeprefix("x-amz-checksum-")
            if name == trailer or name == "mode":
                raise InvalidRequest(
                    f"x-amz-trailer {item.strip()!r} is not supported; only "
                    "x-amz-checksum-<algorithm> trailers are, for " + _supported()
                )
            if name not in checksums.ALGORITHMS:
                raise InvalidRequest(
                    f"Checksum algorithm {name!r} (x-amz-trailer {item.strip()}) is not "
                    "supported; use one of " + _supported()
                )
            if name not in names:
                names.append(name)
        return names

    def verify(self, result: Ingested) -> dict[str, str]:
        """Check the body against what the client declared (headers, and the trailer
        of an aws-chunked body); returns the checksums to store (algorithm -> base64)."""
        sha = result.hashers.get("payload-sha256")
        if (
            sha is not None
            and checksums.digest_of(sha).hex() != self.headers["x-amz-content-sha256"]
        ):
            raise XAmzContentSHA256Mismatch()
        md5 = self.content_md5()
        if md5 is not None and md5 != result.md5:
            raise BadDigest()
        stored: dict[str, str] = {}
        declared = [
            (name, self.headers[f"x-amz-checksum-{name}"]) for name in self.checksum_headers()
        ]
        trailers = self.trailers
        announced = self.trailer_checksums()
        unannounced = sorted(set(trailers) - {f"x-amz-checksum-{n}" for n in announced})
        if unannounced:
            # A checksum that arrives is verified or refused, never ignored.
            raise InvalidRequest(
                f"The body's trailer carries {', '.join(unannounced)}, which the x-amz-trailer "
                "header does not announce"
            )
        for name in announced:
            value = trailers.get(f"x-amz-checksum-{name}")
            if value is None:
                raise InvalidRequest(
                    f"x-amz-trailer announced x-amz-checksum-{name}, but the body's trailer "
                    "does not carry it"
                )
            declared.append((name, value))
        for name, value in declared:
            computed = checksums.encode(checksums.digest_of(result.hashers[name]))
            if computed != value.strip():
                raise BadDigest(
                    f"The x-amz-checksum-{name} you specified did not match the calculated "
                    "checksum."
                )
            stored[name] = computed
        return stored


def _without_aws_chunked(headers: Headers) -> Headers:
    encoding = headers.get("content-encoding")
    if encoding is None or "aws-chunked" not in encoding.lower():
        return headers
    codings = [c.strip() for c in encoding.split(",")]
    kept = ", ".join(c for c in codings if c and c.lower() != "aws-chunked")
    raw = [(k, v) for k, v in headers.raw if k.lower() != b"content-encoding"]
    if kept:
        raw.append((b"content-encoding", kept.encode("latin-1")))
    return Headers(raw=raw)


def _supported() -> str:
    return ", ".join(sorted(a.upper() for a in checksums.ALGORITHMS))
