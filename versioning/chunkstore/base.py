"""The chunk store contract and the on-store chunk encoding every backend shares.

A chunk store is a content-addressed blob store keyed by ChunkId (BLAKE3-256 of
the chunk's plain bytes). Writes are idempotent and durable on return; reads
verify the hash, so a store can lose or damage data but never silently return
the wrong bytes.

Stored format, identical on every backend so data can be copied between them
byte for byte: one header byte, then the payload.
    0x00  raw: the payload is the chunk itself
    0x01  zstd: the payload is one zstd frame (with its content size)
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from typing import Protocol

import zstandard

from versioning.chunker import chunk_id
from versioning.errors import CorruptData
from versioning.ids import ChunkId

RAW = 0x00
ZSTD = 0x01

# Level 1: on typical compressible data (JSON, logs, CSV) it compresses about as
# well as level 3 at twice the speed, and it rejects random data at GB/s.
ZSTD_LEVEL = 1
# Compression must save at least this fraction, else we store raw: a small saving
# is not worth a decompression on every read.
MIN_SAVING = 0.10
# A sanity bound on a zstd frame's declared size, checked before decompressing:
# a damaged header must not make us allocate gigabytes. FastCDC's largest
# max_size is 16 MiB; the margin leaves room for chunks not cut by FastCDC.
MAX_DECODED_SIZE = 64 * 1024 * 1024

# zstd contexts are not safe to share between threads, and encode/decode run in
# worker threads; one pair per thread avoids re-allocating a context per chunk.
_local = threading.local()


class ChunkMissing(CorruptData):
    """A chunk a manifest refers to is not in the store.

    A CorruptData because a referenced chunk going missing means the store lost
    data, not that the caller asked for something that never existed.
    """


def _compressor() -> zstandard.ZstdCompressor:
    c: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


# Chunks larger than this are first judged on three slices of SAMPLE bytes:
# random data (media, compressed formats) never shrinks, and compressing a
# whole 1 MiB chunk to learn that costs a full zstd pass per chunk.
SAMPLE = 16 * 1024


def _worth_compressing(data: bytes) -> bool:
    if len(data) <= 8 * SAMPLE:
        return True  # small enough to just try
    mid = len(data) // 2
    sample = data[:SAMPLE] + data[mid : mid + SAMPLE] + data[-SAMPLE:]
    return len(_compressor().compress(sample)) <= len(sample) * (1 - MIN_SAVING)


def encode_chunk_parts(data: bytes) -> tuple[bytes, bytes]:
    """The stored form of a chunk as (header, payload), so writers need not
    copy the payload: compressed only when that saves >= 10%."""
    if data and _worth_compressing(data):
        packed = _compressor().compress(data)
        if len(packed) <= len(data) * (1 - MIN_SAVING):
            return bytes((ZSTD,)), packed
    return bytes((RAW,)), data


def encode_chunk(data: bytes) -> bytes:
    """The stored form of a chunk: compressed only when that saves >= 10%."""
    header, payload = encode_chunk_parts(data)
    return header + payload


def decode_chunk(cid: ChunkId, stored: bytes) -> bytes:
    """The chunk bytes from their stored form, verified against cid.

    Raises CorruptData on an unknown header, an undecodable payload or a hash
    mismatch.
    """
    if not stored:
        raise CorruptData(f"chunk {cid.hex()}: empty stored object")
    return decode_chunk_parts(cid, stored[0], memoryview(stored)[1:])


def decode_chunk_parts(cid: ChunkId, header: int, payload: bytes | memoryview) -> bytes:
    """decode_chunk for a header and payload read separately: a reader that
    reads the header byte first gets a raw chunk's bytes without the copy
    that slicing them off the stored form would cost."""
    if header == RAW:
        data = payload if isinstance(payload, bytes) else bytes(payload)
    elif header == ZSTD:
        try:
            declared = zstandard.frame_content_size(payload)
            if not 0 <= declared <= MAX_DECODED_SIZE:
                raise CorruptData(f"chunk {cid.hex()}: bad zstd content size {declared}")
            data = _decompressor().decompress(payload)
        except zstandard.ZstdError as e:
            raise CorruptData(f"chunk {cid.hex()}: bad zstd payload: {e}") from e
    else:
        raise CorruptData(f"chunk {cid.hex()}: unknown encoding header {header:#04x}")
    if chunk_id(data) != cid:
        raise CorruptData(f"chunk {cid.hex()}: content does not match its id")
    return data


def check_id(cid: ChunkId, data: bytes) -> None:
    """Refuse to store data under an id that is not its hash.

    Costs one BLAKE3 pass (~4 GB/s), and saves us from a bug that would
    otherwise be permanent: because puts deduplicate by id, a wrong-content file
    would make every later correct put of that id a no-op.
    """
    if chunk_id(data) != cid:
        raise ValueError(f"chunk id {cid.hex()} is not the BLAKE3 of the given data")


class ChunkStore(Protocol):
    """A content-addressed, durable store of chunks.

    Every method is safe to call concurrently from many tasks, including puts of
    the same chunk.
    """

    async def put(self, chunk_id: ChunkId, data: bytes) -> bool:
        """Store the chunk if absent. True if this call wrote it.

        Idempotent; durable when it returns. Two racing puts of the same absent
        chunk may both return True (both wrote identical bytes), so treat the
        result as a statistic, not as a reference count.
        Raises ValueError if chunk_id is not the hash of data.
        """
        ...

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        """put() for a batch, cheaper per chunk. Returns how many were written.

        Durable when it returns. Duplicate ids within the batch count once.
        """
        ...

    async def get(self, chunk_id: ChunkId) -> bytes:
        """The chunk's bytes, verified. ChunkMissing if absent, CorruptData if
        the stored bytes do not decode to content with this id."""
        ...

    async def has(self, chunk_id: ChunkId) -> bool: ...

    async def delete(self, chunk_id: ChunkId) -> None:
        """Remove the chunk; absent is fine. Only garbage collection calls this."""
        ...

    def iter_ids(self) -> AsyncIterator[ChunkId]:
        """Every stored chunk id, in no particular order (for gc and fsck)."""
        ...

    async def close(self) -> None: ...


class FragmentStore(Protocol):
    """Where a multipart upload keeps its parts' edge chunks until Complete.

    A part is chunked on its own, so its first chunks (up to its sync point,
    see StreamChunker.sync_point) and its last one may not be chunks of the
    finished object. They must be durable when the part is acknowledged, but
    filed as chunks they would be garbage after Complete re-cuts the seams.
    So they are kept here, per upload and outside the chunk namespace
    (iter_ids never lists them, gc's chunk pass never sees them), in the
    same stored encoding as chunks, verified on every read. Complete promotes
    the ones the object keeps into the chunk namespace without rewriting
    them (promote), then the upload's fragments are deleted; so are an
    aborted or expired upload's, and gc removes those a crash left behind.

    `upload` is an upload id: lower-case hex, checked by every method.
    """

    async def put_fragments(self, upload: str, chunks: list[tuple[ChunkId, bytes]]) -> None:
        """Store fragments of `upload`; durable when it returns."""
        ...

    async def get_fragment(self, upload: str, chunk_id: ChunkId) -> bytes:
        """A fragment's bytes, verified. ChunkMissing if absent."""
        ...

    async def fragment_ids(self, upload: str) -> set[ChunkId]:
        """The ids of `upload`'s stored fragments."""
        ...

    async def promote_fragments(self, upload: str, ids: list[ChunkId]) -> None:
        """Make these fragments chunks too (a chunk already stored is kept),
        without sending their bytes again; durable when it returns. The
        caller leases them first, as for any put."""
        ...

    async def delete_fragments(self, upload: str) -> None:
        """Remove every fragment of `upload`; none is fine."""
        ...

    async def fragment_uploads(self) -> list[str]:
        """The uploads that have fragments stored (for gc)."""
        ...


_UPLOAD_ID = re.compile(r"^[0-9a-f]{1,128}$")


def is_upload_id(name: str) -> bool:
    """Whether a directory or key prefix name is an upload id (hex only)."""
    return _UPLOAD_ID.match(name) is not None


def check_upload_id(upload: str) -> str:
    """An upload id fit to name a directory or key prefix (hex only)."""
    if not is_upload_id(upload):
        raise ValueError(f"upload id {upload!r} is not lower-case hex")
    return upload


def fragments_of(store: object) -> FragmentStore | None:
    """The fragment store behind a chunk store (or a wrapper of one that
    offers `fragments()`), or None: then parts are stored as plain chunks."""
    get = getattr(store, "fragments", None)
    return get() if callable(get) else None
