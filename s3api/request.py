"""One S3 request as the operations see it, and how its body is read and verified.

Bodies are never held whole: `pieces()` streams them, counting bytes against
Content-Length. Integrity checks (payload SHA-256, Content-MD5,
x-amz-checksum-*) are computed by the content writer's threads while the body
streams, and compared by `verify()` after the last byte and before anything is
committed, so a body that fails a check is never visible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request

from s3api import checksums
from s3api.buckets import BucketRef
from s3api.errors import (
    BadDigest,
    EntityTooLarge,
    IncompleteBody,
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
    MissingContentLength,
    NotImplementedErr,
    XAmzContentSHA256Mismatch,
)
from versioning.content import Hasher, Ingested

MAX_OBJECT_SIZE = 5 * 1024**4  # 5 TiB, as S3
MAX_XML_BODY = 8 * 1024**2
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> Any:
        return self.http.headers

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
        if not value.isdigit():
            raise InvalidArgument("Content-Length must be a non-negative integer")
        return int(value)

    async def pieces(self) -> AsyncIterator[bytes]:
        content_sha = self.headers.get("x-amz-content-sha256", "")
        if content_sha.startswith("STREAMING-"):
            raise NotImplementedErr(
                f"aws-chunked uploads ({content_sha}) are not supported yet; "
                "send the body unframed (UNSIGNED-PAYLOAD or its SHA-256)"
            )
        expected = self.declared_length()
        if expected is None and "chunked" not in self.headers.get("transfer-encoding", ""):
            raise MissingContentLength()
        if expected is not None and expected > MAX_OBJECT_SIZE:
            raise EntityTooLarge()
        received = 0
        try:
            async for piece in self.http.stream():
                received += len(piece)
                if received > MAX_OBJECT_SIZE:
                    raise EntityTooLarge()
                yield piece
        except ClientDisconnect:
            raise IncompleteBody() from None
        if expected is not None and received != expected:
            raise IncompleteBody()

    async def small_body(self, limit: int = MAX_XML_BODY) -> bytes:
        """Read a small request document, verifying the payload hash and Content-MD5."""
        out = bytearray()
        async for piece in self.pieces():
            out += piece
            if len(out) > limit:
                raise EntityTooLarge(f"request documents are limited to {limit} bytes")
        body = bytes(out)
        sha = self.headers.get("x-amz-content-sha256", "")
        if _HEX64.match(sha) and hashlib.sha256(body).hexdigest() != sha:
            raise XAmzContentSHA256Mismatch()
        md5 = self.content_md5()
        if md5 is not None and hashlib.md5(body).digest() != md5:
            raise BadDigest()
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
        """Hashers the content writer must feed for this request's checks."""
        hashers: dict[str, Hasher] = {}
        if _HEX64.match(self.headers.get("x-amz-content-sha256", "")):
            hashers["payload-sha256"] = hashlib.sha256()
        for name in self.checksum_headers():
            hashers[name] = checksums.ALGORITHMS[name].new()  # type: ignore[assignment]
        algo = self.headers.get("x-amz-sdk-checksum-algorithm")
        if algo and algo.lower() not in checksums.ALGORITHMS:
            raise InvalidRequest(
                f"Checksum algorithm {algo!r} is not supported; use one of "
                + ", ".join(sorted(a.upper() for a in checksums.ALGORITHMS))
            )
        return hashers

    def checksum_headers(self) -> list[str]:
        names = []
        for header in self.headers:
            if header.startswith("x-amz-checksum-") and header != "x-amz-checksum-mode":
                name = header.removeprefix("x-amz-checksum-")
                if name not in checksums.ALGORITHMS:
                    raise InvalidRequest(
                        f"Checksum algorithm {name!r} is not supported; use one of "
                        + ", ".join(sorted(checksums.ALGORITHMS))
                    )
                names.append(name)
        return names

    def verify(self, result: Ingested) -> dict[str, str]:
        """Check the body against what the client declared; returns the
        checksums to store (algorithm -> base64)."""
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
        for name in self.checksum_headers():
            computed = checksums.encode(checksums.digest_of(result.hashers[name]))
            if computed != self.headers[f"x-amz-checksum-{name}"]:
                raise BadDigest(
                    f"The x-amz-checksum-{name} you specified did not match the calculated "
                    "checksum."
                )
            stored[name] = computed
        return stored
