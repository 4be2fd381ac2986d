"""Identifier types: distinct NewTypes so a chunk id is never passed as a commit id.

All ids are raw bytes internally; `*_hex` helpers give their text form.
- CommitId: 16 bytes (32 hex), BLAKE3 of the commit's canonical encoding.
- NodeId:   16 bytes, BLAKE3 of a tree node's canonical encoding.
- ContentId: 16 bytes, BLAKE3 of a content manifest's encoding.
- ChunkId:  32 bytes, BLAKE3 of the chunk's plain bytes.
- VersionId: 16 bytes, unique per object write (maps to the commit that made it).
"""

from __future__ import annotations

import re
from typing import NewType

import blake3

CommitId = NewType("CommitId", bytes)
NodeId = NewType("NodeId", bytes)
ContentId = NewType("ContentId", bytes)
ChunkId = NewType("ChunkId", bytes)
VersionId = NewType("VersionId", bytes)

SHORT_ID_BYTES = 16
CHUNK_ID_BYTES = 32

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def short_hash(data: bytes) -> bytes:
    """The 128-bit BLAKE3 digest used for commits, nodes and manifests."""
    return blake3.blake3(data).digest(length=SHORT_ID_BYTES)


def is_commit_hex(text: str) -> bool:
    return bool(_HEX32.match(text))
