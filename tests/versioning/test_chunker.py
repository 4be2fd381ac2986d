"""StreamChunker: same boundaries as one-shot FastCDC whatever the feed sizes,
valid chunk sizes, and edits that only disturb nearby chunks."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyfastcdc import FastCDC

from versioning.chunker import (
    DEFAULT_AVG,
    DEFAULT_MAX,
    DEFAULT_MIN,
    StreamChunker,
    chunk_id,
)

# Small parameters (the smallest pyfastcdc allows) so hypothesis-sized inputs
# span many chunks and many internal cuts (a cut happens every 1.25 * max bytes).
SMALL = {"avg_size": 256, "min_size": 64, "max_size": 1024}


def one_shot(data: bytes, avg_size: int, min_size: int, max_size: int) -> list[bytes]:
    cdc = FastCDC(avg_size, min_size=min_size, max_size=max_size)
    return [bytes(c.data) for c in cdc.cut_buf(data)]


def streamed(
    data: bytes, piece_sizes: list[int], *, as_memoryview: bool = False, **params: int
) -> list[bytes]:
    chunker = StreamChunker(**params)
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        n = piece_sizes[i % len(piece_sizes)]
        i += 1
        piece = data[pos : pos + n]
        pos += n
        out += chunker.feed(memoryview(piece) if as_memoryview else piece)
    out += chunker.finish()
    return out


def random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# Hypothesis' own binary() is low-entropy (long zero runs, which FastCDC cuts at
# max_size); seeded random bytes exercise hash-found cuts. Use both, plus a mix.
bodies = st.one_of(
    st.binary(max_size=12_000),
    st.builds(random_bytes, st.integers(0, 2**32), st.integers(0, 30_000)),
    st.builds(
        lambda a, b, c: a + b + c,
        st.binary(max_size=3000),
        st.builds(random_bytes, st.integers(0, 2**32), st.integers(0, 10_000)),
        st.binary(max_size=3000),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    data=bodies,
    piece_sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
    as_memoryview=st.booleans(),
)
def test_streaming_matches_one_shot(
    data: bytes, piece_sizes: list[int], as_memoryview: bool
) -> None:
    assert streamed(data, piece_sizes, as_memoryview=as_memoryview, **SMALL) == one_shot(
        data, **SMALL
    )


def test_streaming_matches_one_shot_default_sizes() -> None:
    data = random_bytes(7, 20 * 1024 * 1024 + 12345)
    expected = one_shot(data, DEFAULT_AVG, DEFAULT_MIN, DEFAULT_MAX)
    assert streamed(data, [64 * 1024]) == expected
    assert streamed(data, [len(data)]) == expected  # one huge piece
    assert streamed(data, [1, 3 * 1024 * 1024 + 1, 777]) == expected


def test_empty_stream_has_no_chunks() -> None:
    c = StreamChunker()
    assert c.feed(b"") == []
    assert c.finish() == []


def test_finish_twice_and_feed_after_finish() -> None:
    c = StreamChunker(**SMALL)
    c.feed(b"x" * 100)
    assert c.finish() == [b"x" * 100]
    assert c.finish() == []
    with pytest.raises(RuntimeError):
        c.feed(b"more")


def test_tiny_stream_is_one_chunk() -> None:
    c = StreamChunker()
    assert c.feed(b"hello") == []
    assert c.finish() == [b"hello"]


def test_chunks_concatenate_and_respect_size_bounds() -> None:
    data = random_bytes(1, 9 * 1024 * 1024) + b"\0" * (9 * 1024 * 1024)  # hash + max cuts
    chunks = streamed(data, [100_000])
    assert b"".join(chunks) == data
    assert len(chunks) > 5
    for c in chunks[:-1]:
        assert DEFAULT_MIN <= len(c) <= DEFAULT_MAX
    assert 0 < len(chunks[-1]) <= DEFAULT_MAX


def test_memory_stays_bounded() -> None:
    c = StreamChunker()
    piece = random_bytes(3, 64 * 1024)
    peak = 0
    for _ in range(300):
        c.feed(piece)
        peak = max(peak, c.buffered)
    assert peak <= DEFAULT_MAX + DEFAULT_MAX // 4 + len(piece)


def test_caller_may_reuse_its_buffer() -> None:
    # A reader that fills one bytearray again and again (readinto) must not
    # corrupt chunks already returned or still buffered.
    data = random_bytes(5, 10 * 1024 * 1024)
    buf = bytearray(50_000)
    c = StreamChunker()
    out: list[bytes] = []
    for pos in range(0, len(data), len(buf)):
        n = len(data[pos : pos + len(buf)])
        buf[:n] = data[pos : pos + n]
        out += c.feed(memoryview(buf)[:n])
    out += c.finish()
    assert out == one_shot(data, DEFAULT_AVG, DEFAULT_MIN, DEFAULT_MAX)


def test_insertion_changes_only_nearby_chunks() -> None:
    data = random_bytes(11, 8 * 1024 * 1024)
    mid = len(data) // 2
    edited = data[:mid] + b"inserted bytes!" * 7 + data[mid:]
    before = [chunk_id(c) for c in streamed(data, [64 * 1024])]
    after = [chunk_id(c) for c in streamed(edited, [64 * 1024])]
    new = set(after) - set(before)
    # The edit lands in one chunk; at worst the boundary after it moves too.
    assert 1 <= len(new) <= 2
    assert len(set(after) & set(before)) >= len(before) - 2


def test_chunk_id_is_blake3_256() -> None:
    assert len(chunk_id(b"abc")) == 32
    assert chunk_id(b"abc") == chunk_id(memoryview(b"abc"))
    assert chunk_id(b"abc") != chunk_id(b"abd")
    assert chunk_id(b"").hex().startswith("af1349b9")  # BLAKE3 of empty input


def test_rejects_out_of_range_parameters() -> None:
    with pytest.raises(ValueError):
        StreamChunker(avg_size=128, min_size=64, max_size=1024)
