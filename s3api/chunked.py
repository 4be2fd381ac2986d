"""aws-chunked request bodies: the framing S3 clients wrap around streamed uploads.

A body whose ``x-amz-content-sha256`` is one of the ``STREAMING-*`` values is
not the object but a sequence of chunks::

    hex-size[;chunk-signature=<64 hex>]\\r\\n
    <hex-size bytes of data>\\r\\n
    ...
    0[;chunk-signature=<64 hex>]\\r\\n        the last chunk is empty
    name:value\\r\\n                         optional trailer lines, e.g.
    ...                                     x-amz-checksum-crc32:AAAAAA==
    x-amz-trailer-signature:<64 hex>\\r\\n   signed trailers only
    \\r\\n

The three modes:

- ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: every chunk carries a signature
  chained from the previous one, the first from the seed signature (the one
  in the Authorization header); no trailer.
- ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, plus a trailer
  whose ``x-amz-trailer-signature`` is chained from the last chunk's.
- ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``: no signatures; a trailer.

`ChunkedDecoder.decode` streams: it yields the data bytes as they arrive (never
more than one received piece at a time, whatever the chunk size), and keeps
only a bounded header line in memory. A chunk's signature is checked when the
chunk ends, before anything after it is yielded; since the caller commits
nothing until the stream is exhausted, a body with a bad chunk never becomes
visible. Every failure is an S3Error: malformed framing is InvalidRequest,
a body that ends early or holds more or fewer bytes than announced is
IncompleteBody, a wrong signature is SignatureDoesNotMatch.

`encode` is the client side, for tests and tools.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from gateway.signing import sigv4
from s3api.errors import (
    EntityTooLarge,
    IncompleteBody,
    InvalidRequest,
    SignatureDoesNotMatch,
)

__all__ = [
    "MAX_LINE",
    "MAX_TRAILER_BYTES",
    "MODES",
    "ChunkSigning",
    "ChunkedDecoder",
    "encode",
    "is_streaming",
]

MODES = frozenset(
    {
        sigv4.STREAMING_PAYLOAD,
        sigv4.STREAMING_PAYLOAD_TRAILER,
        sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    }
)
SIGNED_MODES = frozenset({sigv4.STREAMING_PAYLOAD, sigv4.STREAMING_PAYLOAD_TRAILER})
TRAILER_MODES = frozenset(
    {sigv4.STREAMING_PAYLOAD_TRAILER, sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER}
)

#: Longest chunk header or trailer line, CRLF included. A signed chunk header is
#: at most 16 hex digits + ";chunk-signature=" + 64 = 97 bytes.
MAX_LINE = 4096
#: The whole trailer (all its lines) at most this large, and at most this many lines.
MAX_TRAILER_BYTES = 16384
MAX_TRAILER_LINES = 64

_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_HEX64 = re.compile(rb"[0-9a-fA-F]{64}")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


def is_streaming(payload_hash: str) -> bool:
    """Whether an x-amz-content-sha256 value announces aws-chunked framing."""
    return payload_hash.startswith("STREAMING-")


def _malformed(reason: str) -> InvalidRequest:
    return InvalidRequest(f"malformed aws-chunked body: {reason}")


def _incomplete(reason: str) -> IncompleteBody:
    return IncompleteBody(f"The aws-chunked body is incomplete: {reason}")


@dataclass(frozen=True, slots=True)
class ChunkSigning:
    """What checking chunk signatures needs: the request's signing key, date and
    scope, and the seed (the request's own signature)."""

    key: bytes
    amz_date: str
    scope: str
    seed: str

    @classmethod
    def of(cls, signed: sigv4.SignedRequest, key: bytes) -> ChunkSigning:
        return cls(key, signed.amz_date, signed.credential.scope, signed.signature)

    def chunk(self, previous: str, sha256_hex: str) -> str:
        return sigv4.chunk_signature(self.key, self.amz_date, self.scope, previous, sha256_hex)

    def trailer(self, previous: str, trailers: Iterable[tuple[str, str]]) -> str:
        digest = hashlib.sha256(sigv4.canonical_trailer(trailers)).hexdigest()
        return sigv4.trailer_signature(self.key, self.amz_date, self.scope, previous, digest)


class _Reader:
    """Byte-level access to an async stream of pieces: lines (bounded) and runs of data."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._piece = b""
        self._pos = 0
        self.received = 0  # framed bytes taken from the source

    async def _fill(self) -> bool:
        """Make unread bytes available; False at the end of the stream."""
        while self._pos >= len(self._piece):
            try:
                piece = await anext(self._source)
            except StopAsyncIteration:
                return False
            self._piece = bytes(piece)
            self._pos = 0
            self.received += len(piece)
        return True

    async def line(self, limit: int, what: str) -> bytes | None:
        """The next CRLF-terminated line without its CRLF; None at a clean end of stream
        (nothing read). Longer than `limit` (CRLF included): InvalidRequest."""
        partial = bytearray()
        while True:
            if not await self._fill():
                if partial:
                    raise _incomplete(f"the stream ended inside a {what} line")
                return None
            end = self._piece.find(b"\n", self._pos, self._pos + limit - len(partial))
            if end < 0:
                partial += self._piece[self._pos : self._pos + limit + 1]
                self._pos = len(self._piece)
                if len(partial) > limit:
                    raise _malformed(f"a {what} line is longer than {limit} bytes")
                continue
            partial += self._piece[self._pos : end + 1]
            self._pos = end + 1
            if len(partial) < 2 or partial[-2] != 0x0D:
                raise _malformed(f"a {what} line does not end with CRLF")
            return bytes(partial[:-2])

    async def data(self, size: int) -> AsyncIterator[bytes]:
        """Exactly `size` bytes, in the pieces they arrived in."""
        remaining = size
        while remaining:
            if not await self._fill():
                raise _incomplete("the stream ended inside a chunk's data")
            take = min(remaining, len(self._piece) - self._pos)
            if self._pos == 0 and take == len(self._piece):
                out = self._piece
            else:
                out = self._piece[self._pos : self._pos + take]
            self._pos += take
            remaining -= take
            yield out

    async def crlf(self) -> None:
        for expected in b"\r\n":
            if not await self._fill():
                raise _incomplete("the stream ended before the CRLF after a chunk's data")
            if self._piece[self._pos] != expected:
                raise _malformed("a chunk's data is not followed by CRLF (wrong chunk size?)")
            self._pos += 1

    async def at_end(self) -> bool:
        """True when nothing but the end of the stream is left."""
        return not await self._fill()


class ChunkedDecoder:
    """Decode one aws-chunked body; after `decode` has been iterated to its end,
    `trailers` holds the trailer (lower-cased names; the trailer signature, once
    verified, left out) and `decoded` the number of data bytes."""

    def __init__(
        self,
        mode: str,
        *,
        signing: ChunkSigning | None = None,
        decoded_length: int | None = None,
        max_size: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidRequest(
                f"x-amz-content-sha256 {mode!r} is not a supported aws-chunked mode; use one of "
                + ", ".join(sorted(MODES))
            )
        if mode in SIGNED_MODES and signing is None:
            raise InvalidRequest(f"{mode} needs a request signed with AWS4-HMAC-SHA256")
        self.mode = mode
        self.signing = signing if mode in SIGNED_MODES else None
        self.decoded_length = decoded_length
        self.max_size = max_size
        self.trailers: dict[str, str] = {}
        self.decoded = 0
        self.received = 0
        self.finished = False

    async def decode(self, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        reader = _Reader(source)
        try:
            async for piece in self._decode(reader):
                yield piece
        finally:
            self.received = reader.received

    async def _decode(self, reader: _Reader) -> AsyncIterator[bytes]:
        previous = self.signing.seed if self.signing is not None else ""
        while True:
            header = await reader.line(MAX_LINE, "chunk header")
            if header is None:
                raise _incomplete("the stream ended before the final 0-size chunk")
            size, signature = self._parse_header(header)
            self._check_size(size)
            hasher = hashlib.sha256() if self.signing is not None else None
            async for piece in reader.data(size):
                if hasher is not None:
                    hasher.update(piece)
                self.decoded += len(piece)
                yield piece
            if self.signing is not None:
                assert hasher is not None and signature is not None
                expected = self.signing.chunk(previous, hasher.hexdigest())
                if not hmac.compare_digest(expected, signature):
                    raise SignatureDoesNotMatch(
                        f"The chunk signature of the chunk ending at decoded byte {self.decoded} "
                        "does not match the signature we calculated.",
                        SignatureProvided=signature,
                    )
                previous = expected
            if size == 0:
                break
            await reader.crlf()
        await self._read_trailer(reader, previous)
        if self.decoded_length is not None and self.decoded != self.decoded_length:
            raise _incomplete(
                f"it holds {self.decoded} bytes of data but x-amz-decoded-content-length "
                f"is {self.decoded_length}"
            )
        if not await reader.at_end():
            raise _malformed("there are bytes after the end of the aws-chunked body")
        self.finished = True

    def _parse_header(self, header: bytes) -> tuple[int, str | None]:
        size_part, _, extensions = header.partition(b";")
        if not _HEX_SIZE.fullmatch(size_part):
            raise _malformed(f"bad chunk size {_show(size_part)}")
        signature = None
        for extension in extensions.split(b";") if extensions else ():
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                if not _HEX64.fullmatch(value.strip()):
                    raise _malformed("a chunk-signature is not 64 hexadecimal digits")
                signature = value.strip().decode("ascii").lower()
        if self.signing is not None and signature is None:
            raise SignatureDoesNotMatch(
                f"{self.mode} requires a chunk-signature on every chunk; "
                f"the chunk at decoded byte {self.decoded} has none."
            )
        return int(size_part, 16), signature

    def _check_size(self, size: int) -> None:
        total = self.decoded + size
        if self.decoded_length is not None and total > self.decoded_length:
            raise _incomplete(
                f"it holds more data than x-amz-decoded-content-length ({self.decoded_length})"
            )
        if self.max_size is not None and total > self.max_size:
            raise EntityTooLarge()

    async def _read_trailer(self, reader: _Reader, previous: str) -> None:
        pairs: list[tuple[str, str]] = []
        size = 0
        while True:
            line = await reader.line(MAX_LINE, "trailer")
            if line is None or line == b"":
                # The final CRLF ends the body; a body that simply stops after
                # the last chunk or trailer line is accepted too.
                break
            size += len(line) + 2
            if size > MAX_TRAILER_BYTES or len(pairs) >= MAX_TRAILER_LINES:
                raise _malformed(
                    f"the trailer exceeds {MAX_TRAILER_BYTES} bytes or {MAX_TRAILER_LINES} lines"
                )
            name, colon, value = line.partition(b":")
            name = name.strip()
            if not colon or not _TOKEN.fullmatch(name):
                raise _malformed(f"bad trailer line {_show(line)}")
            try:
                text = value.decode("ascii").strip()
            except UnicodeDecodeError:
                raise _malformed(f"bad trailer value for {_show(name)}") from None
            lowered = name.decode("ascii").lower()
            if any(lowered == seen for seen, _ in pairs):
                raise _malformed(f"the trailer repeats {lowered}")
            pairs.append((lowered, text))
        if pairs and self.mode not in TRAILER_MODES:
            raise _malformed(f"{self.mode} bodies carry no trailer")
        provided = next((v for n, v in pairs if n == _TRAILER_SIGNATURE), None)
        if self.mode == sigv4.STREAMING_PAYLOAD_TRAILER:
            assert self.signing is not None
            if provided is None:
                raise SignatureDoesNotMatch(
                    f"{self.mode} requires an x-amz-trailer-signature in the trailer."
                )
            expected = self.signing.trailer(previous, pairs)
            if not hmac.compare_digest(expected, provided.lower()):
                raise SignatureDoesNotMatch(
                    "The trailer signature does not match the signature we calculated.",
                    SignatureProvided=provided,
                )
        self.trailers = {n: v for n, v in pairs if n != _TRAILER_SIGNATURE}


def _show(raw: bytes) -> str:
    return repr(raw[:64].decode("latin-1"))


def encode(
    chunks: Sequence[bytes],
    *,
    signing: ChunkSigning | None = None,
    trailers: Sequence[tuple[str, str]] = (),
    signed_trailer: bool = False,
) -> bytes:
    """Frame data chunks as aws-chunked (the final empty chunk is added here).

    With `signing` every chunk is signed, chained from `signing.seed`; with
    `signed_trailer` an x-amz-trailer-signature is appended to the trailer.
    """
    out = bytearray()
    previous = signing.seed if signing is not None else ""
    for chunk in [*(c for c in chunks if c), b""]:
        out += f"{len(chunk):x}".encode()
        if signing is not None:
            previous = signing.chunk(previous, hashlib.sha256(chunk).hexdigest())
            out += f";chunk-signature={previous}".encode()
        out += b"\r\n" + chunk
        if chunk:
            out += b"\r\n"
    lines = list(trailers)
    if signed_trailer:
        if signing is None:
            raise ValueError("a signed trailer needs signing")
        lines.append((_TRAILER_SIGNATURE, signing.trailer(previous, lines)))
    for name, value in lines:
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)
