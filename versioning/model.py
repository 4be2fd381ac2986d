"""The domain's value types and their canonical encodings.

Every persisted value has exactly one byte encoding (msgpack of plain lists, with
maps as key-sorted pair lists), so hashing the bytes gives a stable content
address. Changing an encoding is a migration, not a refactor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import msgpack

from versioning.chunker import chunk_id
from versioning.ids import (
    ChunkId,
    CommitId,
    ContentId,
    VersionId,
    short_hash,
)


def pack(value: Any) -> bytes:
    return cast(bytes, msgpack.packb(value, use_bin_type=True))


def array_header(n: int) -> bytes:
    """The msgpack header of an n-item array, as packb writes it, so that
    header + the packed items == pack(list of the items)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)


def _pairs(mapping: dict[str, str]) -> list[list[str]]:
    return [[k, mapping[k]] for k in sorted(mapping)]


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """What a tree records for one path.

    etag is the hex MD5 of the body, or `<hex>-<parts>` for a multipart object.
    headers holds the stored representation headers (content-encoding,
    content-disposition, cache-control, content-language, expires).
    checksums maps an algorithm name (crc32, crc32c, sha1, sha256, ...) to the
    base64 value the client sent or we computed.
    last_modified is microseconds since the Unix epoch.
    version is unique per write; the commit that made a write is looked up by it.
    parts holds the part sizes of an object made by CompleteMultipartUpload, in
    order; it is empty for any other object (which reads as one part). It is
    an optional trailing wire element, written only when not empty, so entries
    encoded before it existed decode (and re-encode) unchanged.
    tags are the object's S3 tags (key -> value). They are the next optional
    trailing element, key-sorted pairs written only when there are tags (an
    untagged multipart object's `parts` is then written as before, and a
    tagged single-part object writes an empty `parts` list before them).
    """

    size: int
    content: ContentId
    etag: str
    content_type: str
    last_modified: int
    version: VersionId
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    parts: tuple[int, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    # The encoded form, kept so rewriting a tree page does not re-encode the
    # entries it did not change. Not part of the value.
    _wire: list[Any] | None = field(default=None, init=False, repr=False, compare=False)
    # Its msgpack bytes, kept so a tree page is encoded by joining its
    # entries' bytes instead of packing every entry again (see Node.encode).
    _packed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def packed(self) -> bytes:
        """pack(self.to_wire()), computed once."""
        data = self._packed
        if data is None:
            data = pack(self.to_wire())
            object.__setattr__(self, "_packed", data)
        return data

    def to_wire(self) -> list[Any]:
        if self._wire is not None:
            return self._wire
        wire = [
            self.size,
            self.content,
            self.etag,
            self.content_type,
            self.last_modified,
            self.version,
            _pairs(self.metadata),
            _pairs(self.headers),
            _pairs(self.checksums),
        ]
        if self.parts or self.tags:
            wire.append(list(self.parts))
        if self.tags:
            wire.append(_pairs(self.tags))
        object.__setattr__(self, "_wire", wire)
        return wire

    @staticmethod
    def from_wire(w: list[Any]) -> ObjectEntry:
        entry = ObjectEntry(
            size=w[0],
            content=ContentId(w[1]),
            etag=w[2],
            content_type=w[3],
            last_modified=w[4],
            version=VersionId(w[5]),
            metadata={k: v for k, v in w[6]},
            headers={k: v for k, v in w[7]},
            checksums={k: v for k, v in w[8]},
            parts=tuple(w[9]) if len(w) > 9 else (),
            tags={k: v for k, v in w[10]} if len(w) > 10 else {},
        )
        object.__setattr__(entry, "_wire", w)
        return entry


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One piece of a body: a chunk in the chunk store, or, for small bodies,
    the bytes themselves (`inline`), kept in the manifest so a million tiny
    objects do not become a million chunk files. An inline piece's id is still
    the BLAKE3 of its bytes, so code that only compares ids need not care."""

    id: ChunkId
    size: int
    inline: bytes | None = None

    @staticmethod
    def of_inline(data: bytes) -> ChunkRef:
        return ChunkRef(chunk_id(data), len(data), bytes(data))


@dataclass(frozen=True, slots=True)
class Manifest:
    """An object body: its pieces in order. Its id is the hash of its encoding,
    so two identical bodies share one manifest.

    Encoding: a msgpack list whose items are `[chunk id, size]` for a stored
    chunk, or the raw bytes of an inline piece.
    """

    chunks: tuple[ChunkRef, ...]

    @property
    def size(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def has_chunks(self) -> bool:
        """Whether any piece lives in the chunk store."""
        return any(c.inline is None for c in self.chunks)

    def stored_chunks(self) -> list[ChunkRef]:
        return [c for c in self.chunks if c.inline is None]

    def encode(self) -> bytes:
        return pack([c.inline if c.inline is not None else [c.id, c.size] for c in self.chunks])

    @staticmethod
    def decode(data: bytes) -> Manifest:
        return Manifest(
            tuple(
                ChunkRef.of_inline(item)
                if isinstance(item, bytes)
                else ChunkRef(ChunkId(item[0]), item[1])
                for item in unpack(data)
            )
        )

    @property
    def id(self) -> ContentId:
        return ContentId(short_hash(self.encode()))


@dataclass(frozen=True, slots=True)
class Commit:
    """An immutable commit. time is microseconds since the Unix epoch; origin
    says what made it (repo, the operation, and for S3 writes the keys)."""

    parents: tuple[CommitId, ...]
    tree: bytes | None  # NodeId of the root, None for an empty tree
    author: str
    message: str
    time: int
    origin: dict[str, Any]

    def encode(self) -> bytes:
        return pack(
            [
                1,  # encoding version
                list(self.parents),
                self.tree,
                self.author,
                self.message,
                self.time,
                sorted(self.origin.items()),
            ]
        )

    @staticmethod
    def decode(data: bytes) -> Commit:
        w = unpack(data)
        if w[0] != 1:
            raise ValueError(f"unknown commit encoding version {w[0]}")
        return Commit(
            parents=tuple(CommitId(p) for p in w[1]),
            tree=w[2],
            author=w[3],
            message=w[4],
            time=w[5],
            origin={k: v for k, v in w[6]},
        )

    @property
    def id(self) -> CommitId:
        return CommitId(short_hash(self.encode()))


@dataclass(frozen=True, slots=True)
class Repo:
    name: str
    default_branch: str
    created: int


@dataclass(frozen=True, slots=True)
class TrashEntry:
    """A deleted repo or branch, restorable until `expires` (microseconds)."""

    id: int
    kind: str  # "repo" or "branch"
    repo: str
    name: str  # the branch's name; for a repo, its name
    head: CommitId | None  # the branch's head; for a repo, its default branch's
    deleted: int
    expires: int
    default_branch: str | None = None  # repos only
    branches: tuple[str, ...] = ()  # repos: every branch it had
    tags: tuple[str, ...] = ()  # repos: every tag it had


@dataclass(frozen=True, slots=True)
class Branch:
    repo: str
    name: str
    head: CommitId | None
    created: int


@dataclass(frozen=True, slots=True)
class Tag:
    repo: str
    name: str
    commit: CommitId
    created: int


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart upload in progress into a branch."""

    id: str
    repo: str
    branch: str
    key: str
    created: int
    attrs: bytes
    # The checksum algorithm (lower case) and type (COMPOSITE or FULL_OBJECT)
    # the upload was created with, None when not given.
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class UploadPart:
    """One stored part of an upload: content already durable, not yet committed."""

    part_number: int
    content: ContentId
    size: int
    md5: bytes
    created: int
    # algorithm -> base64 checksum of the part, as verified or computed
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completion:
    """A multipart upload that a commit completed (kept for retried completions)."""

    upload_id: str
    repo: str
    branch: str
    key: str
    commit: CommitId
    completed: int


@dataclass(frozen=True, slots=True)
class OpenCommit:
    """A commit being built from many writes: a hidden staging branch,
    finished as ONE commit on `branch` (see versioning/open_commits.py)."""

    id: CommitId  # random, not content-addressed: the finished commit gets its own id
    repo: str
    branch: str
    base: CommitId | None  # the branch head when it was started
    created: int
    idle_us: int
    author: str
    frozen: CommitId | None = None
    finishing: bool = False

    @staticmethod
    def staging_name(commit_id: CommitId) -> str:
        return STAGING_PREFIX + commit_id.hex()

    @property
    def staging(self) -> str:
        return self.staging_name(self.id)


# Open commits' staging branches are named "_open-<hex id>": a leading "_" is
# no valid branch name, so they never collide with, or are listed as, branches.
STAGING_PREFIX = "_open-"
