"""Object checksums: the x-amz-checksum-* algorithms S3 clients send.

Each algorithm is a hasher factory plus how its digest is written (base64 of
the big-endian digest, as S3 does). Unknown algorithms are rejected by name.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import crc32c as _crc32c
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
