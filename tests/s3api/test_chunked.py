"""The aws-chunked decoder (s3api.chunked) and how S3Request uses it: framing,
chunk and trailer signatures, trailing checksums, and malformed input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from gateway.signing import sigv4
from s3api import checksums, chunked, errors
from s3api.request import S3Request
from versioning.content import Ingested
from versioning.model import Manifest

SIGNING = chunked.ChunkSigning(
    key=sigv4.signing_key("secret", "20250101", "us-east-1", "s3"),
    amz_date="20250101T000000Z",
    scope="20250101/us-east-1/s3/aws4_request",
    seed="ab" * 32,
)
UNSIGNED = sigv4.STREAMING_UNSIGNED_PAYLOAD_TRAILER
SIGNED = sigv4.STREAMING_PAYLOAD
SIGNED_TRAILER = sigv4.STREAMING_PAYLOAD_TRAILER


async def _source(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """`data` cut into pieces of the given sizes (cycled), the last one taking the rest."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[pos : pos + size])
        pos += size
        i += 1
    return out


def decode(
    framed: bytes | list[bytes], mode: str = UNSIGNED, **kwargs: Any
) -> tuple[bytes, chunked.ChunkedDecoder, list[bytes]]:
    """Run the decoder to its end; returns the data, the decoder and the pieces it yielded."""
    pieces = [framed] if isinstance(framed, bytes) else framed
    if mode in chunked.SIGNED_MODES:
        kwargs.setdefault("signing", SIGNING)
    decoder = chunked.ChunkedDecoder(mode, **kwargs)

    async def run() -> list[bytes]:
        return [p async for p in decoder.decode(_source(pieces))]

    out = asyncio.run(run())
    return b"".join(out), decoder, out


def decode_until_error(
    framed: bytes, mode: str, **kwargs: Any
) -> tuple[bytes, BaseException | None]:
    """The data yielded before the decoder failed, and the error (None: no error)."""
    if mode in chunked.SIGNED_MODES:
        kwargs.setdefault("signing", SIGNING)
    got = bytearray()

    async def run() -> BaseException | None:
        try:
            decoder = chunked.ChunkedDecoder(mode, **kwargs)
            async for piece in decoder.decode(_source([framed])):
                got.extend(piece)
        except Exception as exc:
            return exc
        return None

    err = asyncio.run(run())
    return bytes(got), err


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc32_of(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


# --------------------------------------------------------------------------- round trips

chunk_lists = st.lists(st.binary(min_size=0, max_size=3000), min_size=0, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=chunk_lists,
    piece_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=10),
    mode=st.sampled_from(sorted(chunked.MODES)),
    with_length=st.booleans(),
)
def test_random_chunkings_round_trip(
    chunks: list[bytes], piece_sizes: list[int], mode: str, with_length: bool
) -> None:
    data = b"".join(chunks)
    trailers = [("x-amz-checksum-crc32", crc32_of(data))] if mode in chunked.TRAILER_MODES else []
    framed = chunked.encode(
        chunks,
        signing=SIGNING if mode in chunked.SIGNED_MODES else None,
        trailers=trailers,
        signed_trailer=mode == SIGNED_TRAILER,
    )
    out, decoder, _ = decode(
        split(framed, piece_sizes), mode, decoded_length=len(data) if with_length else None
    )
    assert out == data
    assert decoder.finished
    assert decoder.decoded == len(data)
    assert decoder.received == len(framed)
    assert decoder.trailers == dict(trailers)


def test_botocore_framing_decodes() -> None:
    """What botocore's AwsChunkedWrapper sends over HTTPS (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""
    import io

    from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

    data = bytes(range(256)) * 9000  # > 2 botocore chunks of 1 MiB
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    )
    framed = b"".join(iter(wrapper))
    out, decoder, _ = decode(split(framed, [65536]), UNSIGNED, decoded_length=len(data))
    assert out == data
    assert decoder.trailers == {"x-amz-checksum-crc32": crc32_of(data)}


def test_no_trailer_and_lenient_end() -> None:
    assert decode(b"3\r\nabc\r\n0\r\n\r\n")[0] == b"abc"
    # a body that simply stops after the last chunk (no final CRLF) is accepted
    assert decode(b"3\r\nabc\r\n0\r\n")[0] == b"abc"
    out, decoder, _ = decode(b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n")
    assert (out, decoder.trailers) == (b"abc", {"x-amz-checksum-crc32": "AAAAAA=="})
    # upper-case hex sizes, unknown extensions on unsigned chunks
    assert decode(b"A;ext=1\r\n0123456789\r\n0\r\n\r\n")[0] == b"0123456789"


def test_large_chunk_is_streamed_not_buffered() -> None:
    data = b"z" * (8 << 20)
    framed = chunked.encode([data], signing=SIGNING)
    out, _, yielded = decode(split(framed, [65536]), SIGNED, decoded_length=len(data))
    assert out == data
    assert max(len(p) for p in yielded) <= 65536


# --------------------------------------------------------------------------- AWS's examples

AWS_SIGNING = chunked.ChunkSigning(
    key=sigv4.signing_key(
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"
    ),
    amz_date="20130524T000000Z",
    scope="20130524/us-east-1/s3/aws4_request",
    seed="4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
)
AWS_DATA = b"a" * 66560


def test_aws_published_streaming_example() -> None:
    """The 'Transferring Payload in Multiple Chunks' example, byte for byte."""
    framed = (
        b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        b"\r\n" + b"a" * 65536 + b"\r\n"
        b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
        b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
        b"\r\n\r\n"
    )
    assert len(framed) == 66824  # the example's Content-Length
    assert chunked.encode([b"a" * 65536, b"a" * 1024], signing=AWS_SIGNING) == framed
    out, decoder, _ = decode(
        split(framed, [1000]), SIGNED, signing=AWS_SIGNING, decoded_length=66560
    )
    assert out == AWS_DATA
    assert decoder.trailers == {}


def test_aws_published_trailer_example() -> None:
    """The 'trailing headers' example: seed 106e2a8a..., crc32c trailer, signed trailer."""
    signing = chunked.ChunkSigning(
        AWS_SIGNING.key,
        AWS_SIGNING.amz_date,
        AWS_SIGNING.scope,
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    )
    assert b64(crc32c.crc32c(AWS_DATA).to_bytes(4, "big")) == "sOO8/Q=="
    framed = (
        b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
        b"\r\n" + b"a" * 65536 + b"\r\n"
        b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
        b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:"
        b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
        b"\r\n"
    )
    assert (
        chunked.encode(
            [b"a" * 65536, b"a" * 1024],
            signing=signing,
            trailers=[("x-amz-checksum-crc32c", "sOO8/Q==")],
            signed_trailer=True,
        )
        == framed
    )
    out, decoder, _ = decode(framed, SIGNED_TRAILER, signing=signing, decoded_length=66560)
    assert out == AWS_DATA
    assert decoder.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    tampered = framed.replace(b"sOO8/Q==", b"AAAAAA==")
    _, err = decode_until_error(tampered, SIGNED_TRAILER, signing=signing)
    assert isinstance(err, errors.SignatureDoesNotMatch)


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("bad", [0, 1, 2, 3])
def test_bad_chunk_signature_is_caught_at_that_chunk(bad: int) -> None:
    chunks = [b"A" * 100, b"B" * 200, b"C" * 300]
    framed = chunked.encode(chunks, signing=SIGNING)
    signatures = [line.split(b"=")[1] for line in framed.split(b"\r\n") if b"chunk-sig" in line]
    assert len(signatures) == 4  # three data chunks and the final empty one
    wrong = bytes(reversed(signatures[bad]))
    tampered = framed.replace(signatures[bad], wrong, 1)
    got, err = decode_until_error(tampered, SIGNED)
    assert isinstance(err, errors.SignatureDoesNotMatch)
    assert err.status == 403
    # the data of the chunks after the bad one was never handed on
    assert got == b"".join(chunks[: bad + 1])


def test_tampered_data_fails_the_signature() -> None:
    framed = chunked.encode([b"hello world"], signing=SIGNING)
    _, err = decode_until_error(framed.replace(b"hello", b"HELLO"), SIGNED)
    assert isinstance(err, errors.SignatureDoesNotMatch)


def test_wrong_seed_fails_the_first_chunk() -> None:
    framed = chunked.encode([b"x"], signing=SIGNING)
    other = chunked.ChunkSigning(SIGNING.key, SIGNING.amz_date, SIGNING.scope, "cd" * 32)
    _, err = decode_until_error(framed, SIGNED, signing=other)
    assert isinstance(err, errors.SignatureDoesNotMatch)


def test_signed_mode_requires_signatures() -> None:
    _, err = decode_until_error(b"1\r\nx\r\n0\r\n\r\n", SIGNED)
    assert isinstance(err, errors.SignatureDoesNotMatch)
    framed = chunked.encode([b"x"], signing=SIGNING, trailers=[("x-amz-checksum-crc32", "a")])
    _, err = decode_until_error(framed, SIGNED_TRAILER)  # no x-amz-trailer-signature
    assert isinstance(err, errors.SignatureDoesNotMatch)
    with pytest.raises(errors.InvalidRequest):
        chunked.ChunkedDecoder(SIGNED)


def test_signed_trailer_round_trip_and_tampering() -> None:
    data = b"payload" * 1000
    trailers = [("x-amz-checksum-sha256", b64(hashlib.sha256(data).digest()))]
    framed = chunked.encode(
        [data[:3000], data[3000:]], signing=SIGNING, trailers=trailers, signed_trailer=True
    )
    out, decoder, _ = decode(framed, SIGNED_TRAILER, decoded_length=len(data))
    assert (out, decoder.trailers) == (data, dict(trailers))
    value = trailers[0][1].encode()
    _, err = decode_until_error(framed.replace(value, b"X" + value[1:]), SIGNED_TRAILER)
    assert isinstance(err, errors.SignatureDoesNotMatch)


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("framed", "error"),
    [
        (b"", errors.IncompleteBody),
        (b"3\r\nab", errors.IncompleteBody),
        (b"3\r\nabc", errors.IncompleteBody),
        (b"3\r\nabc\r\n", errors.IncompleteBody),
        (b"3\r\nabcd\r\n0\r\n\r\n", errors.InvalidRequest),  # size too small
        (b"5\r\nabc\r\n0\r\n\r\n", errors.InvalidRequest),  # size too large
        (b"f\r\nabc\r\n0\r\n\r\n", errors.IncompleteBody),  # ... past the end
        (b"g\r\nabc\r\n0\r\n\r\n", errors.InvalidRequest),
        (b"-3\r\nabc\r\n0\r\n\r\n", errors.InvalidRequest),
        (b" 3\r\nabc\r\n0\r\n\r\n", errors.InvalidRequest),
        (b"3\nabc\r\n0\r\n\r\n", errors.InvalidRequest),  # bare LF
        (b"11111111111111111\r\n", errors.InvalidRequest),  # 17 hex digits
        (b"3\r\nabc\r\n0\r\nno-colon\r\n\r\n", errors.InvalidRequest),
        (b"3\r\nabc\r\n0\r\nbad name:v\r\n\r\n", errors.InvalidRequest),
        (b"3\r\nabc\r\n0\r\na:1\r\na:2\r\n\r\n", errors.InvalidRequest),
        (b"3\r\nabc\r\n0\r\n\r\nextra", errors.InvalidRequest),
        (b"3\r\nabc\r\n0\r\na:\xff\r\n\r\n", errors.InvalidRequest),
        (b"1;chunk-signature=zz\r\nx\r\n0\r\n\r\n", errors.InvalidRequest),
    ],
)
def test_malformed_framing(framed: bytes, error: type[errors.S3Error]) -> None:
    _, err = decode_until_error(framed, UNSIGNED)
    assert type(err) is error, err


def test_trailer_in_a_mode_without_trailer() -> None:
    framed = chunked.encode([b"x"], signing=SIGNING, trailers=[("x-amz-checksum-crc32", "a")])
    _, err = decode_until_error(framed, SIGNED)
    assert isinstance(err, errors.InvalidRequest)


def test_decoded_length_is_enforced() -> None:
    framed = chunked.encode([b"abc", b"def"])
    _, err = decode_until_error(framed, UNSIGNED, decoded_length=7)
    assert isinstance(err, errors.IncompleteBody)
    got, err = decode_until_error(framed, UNSIGNED, decoded_length=4)
    assert isinstance(err, errors.IncompleteBody)
    assert got == b"abc"  # caught before the chunk that would exceed it
    _, err = decode_until_error(framed, UNSIGNED, max_size=5)
    assert isinstance(err, errors.EntityTooLarge)


def test_long_header_lines_are_refused_with_bounded_reading() -> None:
    """An endless header line: refused after MAX_LINE bytes, not read to the end."""
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1000
            yield b"1" * 1000

    async def run() -> None:
        decoder = chunked.ChunkedDecoder(UNSIGNED)
        async for _ in decoder.decode(endless()):
            pass

    with pytest.raises(errors.InvalidRequest):
        asyncio.run(run())
    assert pulled <= chunked.MAX_LINE + 2000
    # the same for a trailer line, and for a trailer of many short lines
    _, err = decode_until_error(b"0\r\nx:" + b"v" * 10_000 + b"\r\n\r\n", UNSIGNED)
    assert isinstance(err, errors.InvalidRequest)
    _, err = decode_until_error(
        b"0\r\n" + b"".join(b"x%d:v\r\n" % i for i in range(1000)) + b"\r\n", UNSIGNED
    )
    assert isinstance(err, errors.InvalidRequest)


def test_unknown_mode() -> None:
    with pytest.raises(errors.InvalidRequest):
        chunked.ChunkedDecoder("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")


def _mutations() -> st.SearchStrategy[tuple[str, int, bytes]]:
    return st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "delete"]),
        st.integers(0, 10_000),
        st.binary(min_size=1, max_size=8),
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=chunk_lists,
    mode=st.sampled_from(sorted(chunked.MODES)),
    mutations=st.lists(_mutations(), min_size=1, max_size=3),
    piece_sizes=st.lists(st.integers(1, 500), min_size=1, max_size=5),
)
def test_mutated_bodies_raise_only_s3_errors(
    chunks: list[bytes], mode: str, mutations: list[tuple[str, int, bytes]], piece_sizes: list[int]
) -> None:
    data = b"".join(chunks)
    framed = bytearray(
        chunked.encode(
            chunks,
            signing=SIGNING if mode in chunked.SIGNED_MODES else None,
            trailers=[("x-amz-checksum-crc32", crc32_of(data))]
            if mode in chunked.TRAILER_MODES
            else [],
            signed_trailer=mode == SIGNED_TRAILER,
        )
    )
    for kind, where, blob in mutations:
        at = where % (len(framed) + 1)
        if kind == "truncate":
            del framed[at:]
        elif kind == "flip" and at < len(framed):
            framed[at] ^= blob[0] or 1
        elif kind == "insert":
            framed[at:at] = blob
        elif kind == "delete":
            del framed[at : at + len(blob)]
    got = bytearray()

    async def run() -> None:
        decoder = chunked.ChunkedDecoder(
            mode,
            signing=SIGNING if mode in chunked.SIGNED_MODES else None,
            decoded_length=len(data),
        )
        async for piece in decoder.decode(_source(split(bytes(framed), piece_sizes))):
            got.extend(piece)

    try:
        asyncio.run(run())
    except errors.S3Error:
        return
    # accepted: then it must be the data (a mutation may leave the body valid,
    # e.g. a change inside an unsigned trailer value, or an extension)
    if mode in chunked.SIGNED_MODES:
        assert bytes(got) == data


@settings(max_examples=500, deadline=None)
@given(garbage=st.binary(max_size=300), mode=st.sampled_from(sorted(chunked.MODES)))
def test_garbage_raises_only_s3_errors(garbage: bytes, mode: str) -> None:
    _, err = decode_until_error(garbage, mode)
    assert err is None or isinstance(err, errors.S3Error), repr(err)


# --------------------------------------------------------------------------- S3Request


def make_request(headers: dict[str, str], body: bytes, pieces: int = 3) -> S3Request:
    parts = split(body, [max(1, len(body) // pieces)]) or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/b/k",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }
    return S3Request(Request(scope, receive), "PUT", "b", "k", {}, "req")  # type: ignore[arg-type]


SIZES: list[int] = []  # the decoded body sizes `store` saw, latest last


def store(req: S3Request) -> dict[str, str]:
    """What put_object does around the content writer: hash while streaming, then verify."""
    hashers = req.body_hashers()

    async def run() -> Ingested:
        md5 = hashlib.md5()
        size = 0
        async for piece in req.pieces():
            md5.update(piece)
            size += len(piece)
            for h in hashers.values():
                h.update(piece)
        SIZES.append(size)
        return Ingested(Manifest(()), size, md5.digest(), hashers)

    return req.verify(asyncio.run(run()))


def streaming_headers(
    data: bytes, framed: bytes, mode: str = UNSIGNED, **extra: str
) -> dict[str, str]:
    return {
        "content-length": str(len(framed)),
        "x-amz-content-sha256": mode,
        "x-amz-decoded-content-length": str(len(data)),
        **extra,
    }


@pytest.mark.parametrize("algorithm", sorted(checksums.ALGORITHMS))
def test_request_trailer_checksum_is_verified_and_stored(algorithm: str) -> None:
    data = b"the object" * 5000
    hasher: Any = checksums.ALGORITHMS[algorithm].new()
    hasher.update(data)
    value = checksums.encode(hasher.digest())
    header = f"x-amz-checksum-{algorithm}"
    framed = chunked.encode([data[:7000], data[7000:]], trailers=[(header, value)])
    headers = streaming_headers(
        data, framed, **{"x-amz-trailer": header, "x-amz-sdk-checksum-algorithm": algorithm.upper()}
    )
    req = make_request(headers, framed)
    assert store(req) == {algorithm: value}
    assert SIZES[-1] == len(data)

    bad = chunked.encode(
        [data], trailers=[(header, checksums.encode(b"\0" * len(hasher.digest())))]
    )
    with pytest.raises(errors.BadDigest):
        store(make_request(streaming_headers(data, bad, **{"x-amz-trailer": header}), bad))


def test_request_transfer_encoding_chunked_without_content_length() -> None:
    data = b"0123456789" * 1000
    framed = chunked.encode([data], trailers=[("x-amz-checksum-crc32", crc32_of(data))])
    headers = streaming_headers(
        data, framed, **{"x-amz-trailer": "x-amz-checksum-crc32", "transfer-encoding": "chunked"}
    )
    del headers["content-length"]
    assert store(make_request(headers, framed)) == {"crc32": crc32_of(data)}


def test_request_signed_chunks_use_the_stashed_signature() -> None:
    data = b"signed" * 3000
    framed = chunked.encode([data[:5000], data[5000:]], signing=SIGNING)
    req = make_request(streaming_headers(data, framed, SIGNED), framed)
    signed = sigv4.SignedRequest(
        credential=sigv4.Credential("AK", "20250101", "us-east-1", "s3"),
        signed_headers=("host",),
        signature=SIGNING.seed,
        amz_date=SIGNING.amz_date,
        payload_hash=SIGNED,
        presigned=False,
        expires=None,
    )
    req.signed = signed
    req.signing_key = SIGNING.key
    assert store(req) == {}
    assert SIZES[-1] == len(data)

    req = make_request(streaming_headers(data, framed, SIGNED), framed)
    req.signed = signed
    req.signing_key = sigv4.signing_key("other", "20250101", "us-east-1", "s3")
    with pytest.raises(errors.SignatureDoesNotMatch):
        store(req)
    # no stashed signature at all: refused, not decoded unchecked
    with pytest.raises(errors.InvalidRequest):
        store(make_request(streaming_headers(data, framed, SIGNED), framed))


def test_request_decoded_length_mismatch_and_framed_length() -> None:
    data = b"abc" * 100
    framed = chunked.encode([data])
    headers = streaming_headers(data, framed)
    headers["x-amz-decoded-content-length"] = str(len(data) + 1)
    with pytest.raises(errors.IncompleteBody):
        store(make_request(headers, framed))
    headers = streaming_headers(data, framed)
    headers["x-amz-decoded-content-length"] = "12x"
    with pytest.raises(errors.InvalidArgument):
        store(make_request(headers, framed))


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"x-amz-trailer": "x-amz-checksum-sha512"}, "sha512"),
        ({"x-amz-trailer": "x-amz-checksum-xxhash64"}, "xxhash64"),
        ({"x-amz-trailer": "x-amz-meta-foo"}, "x-amz-meta-foo"),
        ({"x-amz-sdk-checksum-algorithm": "SHA512"}, "SHA512"),
        ({"x-amz-checksum-sha512": "AAAA"}, "sha512"),
    ],
)
def test_unknown_checksum_algorithms_are_refused_clearly(
    headers: dict[str, str], fragment: str
) -> None:
    framed = chunked.encode([b"x"])
    req = make_request(streaming_headers(b"x", framed, **headers), framed)
    with pytest.raises(errors.InvalidRequest) as exc:
        req.body_hashers()
    assert fragment in exc.value.message
    assert "CRC64NVME" in exc.value.message


def test_trailer_announced_but_missing_or_without_streaming() -> None:
    framed = chunked.encode([b"x"])
    req = make_request(
        streaming_headers(b"x", framed, **{"x-amz-trailer": "x-amz-checksum-crc32"}), framed
    )
    with pytest.raises(errors.InvalidRequest, match="does not carry"):
        store(req)
    req = make_request(
        {
            "content-length": "1",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
        b"x",
    )
    with pytest.raises(errors.InvalidRequest, match="x-amz-trailer"):
        req.body_hashers()


def test_crc64nvme_header() -> None:
    data = b"123456789"
    assert checksums.encode(checksums.digest_of(_fed("crc64nvme", data))) == b64(
        bytes.fromhex("ae8b14860a799888")  # the CRC-64/NVME check value
    )
    value = b64(bytes.fromhex("ae8b14860a799888"))
    req = make_request(
        {
            "content-length": "9",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            "x-amz-checksum-crc64nvme": value,
        },
        data,
    )
    assert store(req) == {"crc64nvme": value}


def _fed(name: str, data: bytes) -> object:
    hasher: Any = checksums.ALGORITHMS[name].new()
    hasher.update(data[:4])
    hasher.update(data[4:])
    return hasher


def test_small_body_decodes_aws_chunked() -> None:
    doc = b"<Delete><Object><Key>k</Key></Object></Delete>"
    framed = chunked.encode([doc[:10], doc[10:]])
    req = make_request(streaming_headers(doc, framed), framed)
    assert asyncio.run(req.small_body()) == doc


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        ("aws-chunked", None),
        ("gzip,aws-chunked", "gzip"),
        ("aws-chunked, br", "br"),
        ("AWS-Chunked", None),
        ("gzip", "gzip"),
    ],
)
def test_aws_chunked_coding_is_not_the_objects(sent: str, seen: str | None) -> None:
    framed = chunked.encode([b"x"])
    req = make_request(streaming_headers(b"x", framed, **{"content-encoding": sent}), framed)
    assert req.headers.get("content-encoding") == seen
    assert req.headers["x-amz-content-sha256"] == UNSIGNED


def test_small_body_verifies_checksums() -> None:
    doc = b"<Delete><Object><Key>k</Key></Object></Delete>"
    framed = chunked.encode([doc], trailers=[("x-amz-checksum-crc32", crc32_of(b"other"))])
    headers = streaming_headers(doc, framed, **{"x-amz-trailer": "x-amz-checksum-crc32"})
    with pytest.raises(errors.BadDigest):
        asyncio.run(make_request(headers, framed).small_body())
    plain = {"content-length": str(len(doc)), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    with pytest.raises(errors.BadDigest):
        asyncio.run(
            make_request({**plain, "x-amz-checksum-crc32": crc32_of(b"x")}, doc).small_body()
        )
    ok = make_request({**plain, "x-amz-checksum-crc32": crc32_of(doc)}, doc)
    assert asyncio.run(ok.small_body()) == doc
    signed = {**plain, "x-amz-content-sha256": hashlib.sha256(b"x").hexdigest()}
    with pytest.raises(errors.XAmzContentSHA256Mismatch):
        asyncio.run(make_request(signed, doc).small_body())
