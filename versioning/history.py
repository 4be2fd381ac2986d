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
class Version:
    key: str
    commit: CommitId
    entry: ObjectEntry  # a delete marker when is_delete_marker(entry)
    is_latest: bool


@dataclass(slots=True)
class VersionPage:
    versions: list[Version]
    prefixes: list[str]
    truncated: bool
    next_key_marker: str | None = None
    next_version_marker: CommitId | None = None


async def list_versions(
    src: NodeSource,
    root: Root,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_marker: CommitId | None = None,
    max_keys: int = 1000,
) -> VersionPage:
    """One page of versions, S3's ListObjectVersions semantics: keys in order,
    each key's versions newest first, resuming after (key_marker,
    version_marker); a common prefix counts as one item."""
    page = VersionPage([], [], False)
    if key_marker and version_marker is not None:
        # Resume inside key_marker's versions, after version_marker. Its
        # generation is unknown here, so find it by scanning that key's
        # records (a key's records are few next to the whole history).
        seek = key_marker + SEPARATOR
        skip_through: CommitId | None = version_marker
    elif key_marker:
        seek = key_marker + chr(1)  # past every record of key_marker
        skip_through = None
    else:
        seek = ""
        skip_through = None
    seek = max(seek, prefix)
    count = 0
    last_key: str | None = None
    while True:
        restart: str | None = None
        async for hkey, entry in tree.iterate(src, root, seek):
            key, _generation, commit = split_record_key(hkey)
            if skip_through is not None:
                if key != key_marker:
                    skip_through = None  # the marker's version is gone: go on
                else:
                    if commit == skip_through:
                        skip_through = None
                    last_key = key
                    continue
            if not key.startswith(prefix):
                if key > prefix:
                    return page
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if key_marker and common <= key_marker:
                        restart = tree.past_prefix(common)
                    else:
                        if count >= max_keys:
                            page.truncated = max_keys > 0
                            return page
                        count += 1
                        page.prefixes.append(common)
                        page.next_key_marker, page.next_version_marker = common, None
                        restart = tree.past_prefix(common)
                    if restart is None:
                        continue
                    break
            if count >= max_keys:
                page.truncated = max_keys > 0
                return page
            count += 1
            page.versions.append(Version(key, commit, entry, is_latest=key != last_key))
            last_key = key
            page.next_key_marker, page.next_version_marker = key, commit
        else:
            return page
        seek = restart


async def history_of(
    src: NodeSource, root: Root, key: str
) -> AsyncIterator[tuple[CommitId, ObjectEntry]]:
    """Every record of one key, newest first."""
    async for hkey, entry in tree.iterate(src, root, key + SEPARATOR):
        record, _, commit = split_record_key(hkey)
        if record != key:
            return
        yield commit, entry
