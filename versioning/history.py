"""Object history: for every key, the commits that changed it, newest first.

Each commit has a history index, a prolly tree (the same structure and pages
as object trees, see tree.py) whose keys are

    <object key> NUL <16 hex: 2**64 - 1 - generation> <32 hex: commit id>

and whose values are the entry the commit wrote for that key, or a delete
marker. A commit's index is its first parent's index plus one record per key
the commit changed (found by diffing the two object trees), so writing it
costs O(k log N) for k changed keys, and listing one page of versions under a
prefix costs O(page + log N): keys that did not change never cost anything,
however long the history. Sorting puts a key's records together, newest first,
which is exactly S3's ListObjectVersions order.

The generation is 1 + the first parent's generation, so along a branch's first
parent chain it strictly increases and orders versions by time of commit.
Object keys containing NUL are not representable here (nor in S3's XML).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from versioning import tree
from versioning.ids import CommitId, ContentId, VersionId
from versioning.model import ObjectEntry
from versioning.tree import NodeSource, Root

SEPARATOR = "\x00"
_MAX_GENERATION = 2**64 - 1
_SUFFIX_LEN = 16 + 32

# A delete marker is stored as an entry with an empty version id; real writes
# always have a 16-byte version.
_DELETED = VersionId(b"")


def delete_marker(time: int) -> ObjectEntry:
    return ObjectEntry(
        size=0,
        content=ContentId(b""),
        etag="",
        content_type="",
        last_modified=time,
        version=_DELETED,
    )


def is_delete_marker(entry: ObjectEntry) -> bool:
    return entry.version == _DELETED


def record_key(key: str, generation: int, commit: CommitId) -> str:
    return f"{key}{SEPARATOR}{_MAX_GENERATION - generation:016x}{commit.hex()}"


def split_record_key(hkey: str) -> tuple[str, int, CommitId]:
    key, suffix = hkey[: -_SUFFIX_LEN - 1], hkey[-_SUFFIX_LEN:]
    generation = _MAX_GENERATION - int(suffix[:16], 16)
    return key, generation, CommitId(bytes.fromhex(suffix[16:]))


async def records_for(
    src: NodeSource, before: Root, after: Root, generation: int, commit: CommitId, time: int
) -> dict[str, ObjectEntry | None]:
    """History edits for one commit: a record per key whose entry changed
    between the object trees `before` and `after`."""
    edits: dict[str, ObjectEntry | None] = {}
    async for key, _old, new in tree.diff(src, before, after):
        edits[record_key(key, generation, commit)] = new if new is not None else delete_marker(time)
    return edits


@dataclass(frozen=True, slots=True)
class Record:
    """One commit's change to one key: the entry it wrote, or a delete marker."""

    key: str
    commit: CommitId
    entry: ObjectEntry  # a delete marker when self.deleted

    @property
    def deleted(self) -> bool:
        return is_delete_marker(self.entry)


async def records(src: NodeSource, root: Root, seek: str = "") -> AsyncIterator[Record]:
    """Every record from the first key >= `seek`: keys in order, each key's
    records newest first. `seek` is compared with record keys, so
    `key + SEPARATOR` starts at key's newest record and a seek past a key's
    last record is `key + chr(1)`."""
    async for hkey, entry in tree.iterate(src, root, seek):
        key, _generation, commit = split_record_key(hkey)
        yield Record(key, commit, entry)


async def history_of(
    src: NodeSource, root: Root, key: str
) -> AsyncIterator[tuple[CommitId, ObjectEntry]]:
    """Every record of one key, newest first."""
    async for hkey, entry in tree.iterate(src, root, key + SEPARATOR):
        record, _, commit = split_record_key(hkey)
        if record != key:
            return
        yield commit, entry
