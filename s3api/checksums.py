"""Object checksums: the x-amz-checksum-* algorithms S3 clients send.

Each algorithm is a hasher factory plus how its digest is written (base64 of
the big-endian digest, as S3 does). Unknown algorithms are rejected by name.

A multipart object's checksum is either COMPOSITE (the checksum of the
concatenated binary part checksums, written with a `-<part count>` suffix) or,
for the CRCs, FULL_OBJECT: the CRC of the whole body, found by combining the
parts' CRCs (awscrt's combine functions: the GF(2) shift of the first CRC by
the second block's length) without reading any byte again.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import crc32c as _crc32c
from awscrt.checksums import combine_crc32, combine_crc32c, combine_crc64nvme
from awscrt.checksums import crc64nvme as _crc64nvme


class _Crc:
    def __init__(self, fn: Callable[[bytes, int], int]) -> None:
        self.fn = fn
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = self.fn(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc64Nvme:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes, /) -> None:
        self.value = _crc64nvme(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str  # lower-case, as in the header x-amz-checksum-<name>
    new: Callable[[], object]


ALGORITHMS: dict[str, Algorithm] = {
    "crc32": Algorithm("crc32", lambda: _Crc(zlib.crc32)),
    "crc32c": Algorithm("crc32c", lambda: _Crc(_crc32c.crc32c)),
    "sha1": Algorithm("sha1", hashlib.sha1),
    "sha256": Algorithm("sha256", hashlib.sha256),
    "crc64nvme": Algorithm("crc64nvme", _Crc64Nvme),
}


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def digest_of(hasher: object) -> bytes:
    return hasher.digest()  # type: ignore[attr-defined,no-any-return]


COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
# Which multipart checksum types each algorithm supports, as S3 does.
FULL_OBJECT_ALGORITHMS = frozenset({"crc32", "crc32c", "crc64nvme"})
COMPOSITE_ALGORITHMS = frozenset({"crc32", "crc32c", "sha1", "sha256"})
_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    "crc32": combine_crc32,
    "crc32c": combine_crc32c,
    "crc64nvme": combine_crc64nvme,
}


def checksum_type(value: str) -> str:
    """COMPOSITE for a `<base64>-<parts>` value, else FULL_OBJECT (base64 has no '-')."""
    return COMPOSITE if "-" in value else FULL_OBJECT


def object_type(sums: dict[str, str]) -> str:
    """x-amz-checksum-type for an object's checksums."""
    return COMPOSITE if any(checksum_type(v) == COMPOSITE for v in sums.values()) else FULL_OBJECT


def default_type(algorithm: str) -> str:
    """The type S3 uses for a multipart upload that names only its algorithm."""
    return FULL_OBJECT if algorithm == "crc64nvme" else COMPOSITE


def composite(algorithm: str, part_values: list[str]) -> str:
    """The COMPOSITE checksum of parts given by their base64 checksums."""
    hasher = ALGORITHMS[algorithm].new()
    for value in part_values:
        hasher.update(base64.b64decode(value))  # type: ignore[attr-defined]
    return f"{encode(digest_of(hasher))}-{len(part_values)}"


def combine(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """The FULL_OBJECT CRC of a body from its parts' (base64 CRC, size)."""
    fn = _COMBINE[algorithm]
    width = 8 if algorithm == "crc64nvme" else 4
    crc = 0
    for index, (value, size) in enumerate(parts):
        part_crc = int.from_bytes(base64.b64decode(value), "big")
        crc = part_crc if index == 0 else fn(crc, part_crc, size)
    return encode(crc.to_bytes(width, "big"))
