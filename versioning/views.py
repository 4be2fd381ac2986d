"""Views and object attributes: what the protocol layers hold between calls.

A View is one readable state of a repo (a branch's head, or a fixed commit);
ObjectAttrs are what a writer states about an object before its body is
known; new_entry makes the tree entry of one write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from versioning.clock import now_us
from versioning.ids import CommitId, ContentId
from versioning.model import ObjectEntry, pack, unpack
from versioning.names import new_version
from versioning.tree import Root


@dataclass(frozen=True, slots=True)
class View:
    """A readable state of a repo: a branch's head, or a fixed commit."""

    repo: str
    branch: str | None  # None for a snapshot
    commit: CommitId | None  # None for a branch with no commits yet
    root: Root
    tag: str | None = None  # the tag this read-only view was named by, if one

    @property
    def writable(self) -> bool:
        return self.branch is not None


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """Attributes given when an object is written, before content is known.
    (Encoded for multipart uploads, which keep them until Complete; `tags` is
    an optional trailing element, so uploads created before it decode.)"""

    content_type: str
    metadata: Mapping[str, str]
    headers: Mapping[str, str]
    tags: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        wire = [self.content_type, sorted(self.metadata.items()), sorted(self.headers.items())]
        if self.tags:
            wire.append(sorted(self.tags.items()))
        return pack(wire)

    @staticmethod
    def decode(data: bytes) -> ObjectAttrs:
        w = unpack(data)
        return ObjectAttrs(w[0], dict(w[1]), dict(w[2]), dict(w[3]) if len(w) > 3 else {})


def new_entry(
    content: ContentId,
    size: int,
    etag: str,
    attrs: ObjectAttrs,
    checksums: Mapping[str, str] | None = None,
    parts: Sequence[int] = (),
) -> ObjectEntry:
    """The entry of one write, with a fresh version id (the committer stamps
    the commit time as its last_modified)."""
    return ObjectEntry(
        size=size,
        content=content,
        etag=etag,
        content_type=attrs.content_type,
        last_modified=now_us(),
        version=new_version(),
        metadata=dict(attrs.metadata),
        headers=dict(attrs.headers),
        checksums=dict(checksums or {}),
        parts=tuple(parts),
        tags=dict(attrs.tags),
    )
