"""Reading history: commit logs, what a commit changed, and one path's history.

A log walks a commit's ancestors newest first (by commit time, each commit
once, merges' second parents included), optionally only the commits that
changed a path or a folder, or fall in a time window. It resumes from a
cursor: the walk's frontier, so a page costs what it yields, not what came
before it.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from dataclasses import dataclass

from versioning import history, tree
from versioning.db.objects import ObjectStore
from versioning.ids import CommitId, NodeId
from versioning.model import Commit, ObjectEntry
from versioning.tree import Root


@dataclass(frozen=True, slots=True)
class PathChange:
    """One path's change between two trees."""

    path: str
    before: ObjectEntry | None
    after: ObjectEntry | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "deleted"
        return "modified"


def tree_of(commit: Commit | None) -> Root:
    return NodeId(commit.tree) if commit is not None and commit.tree else None


async def changes(
    objects: ObjectStore, before: Root, after: Root, prefix: str = "", after_path: str = ""
) -> AsyncIterator[PathChange]:
    """Paths whose entry differs between two trees, in path order; only those
    starting with `prefix`, and only those after `after_path` (a cursor)."""
    # Keys after `after_path` are those >= after_path + NUL, the least character.
    start = max(prefix, after_path + "\x00" if after_path else "")
    async for key, old, new in tree.diff(objects, before, after, start):
        if key == after_path:
            continue
        if not key.startswith(prefix):
            return  # past the prefix: keys come in order
        yield PathChange(key, old, new)


async def changed_path(objects: ObjectStore, commit: Commit, path: str) -> bool:
    """Whether `commit` changed `path` (a file, or anything under a folder)
    relative to its first parent."""
    parent = await objects.get_commit(commit.parents[0]) if commit.parents else None
    before, after = tree_of(parent), tree_of(commit)
    if not path.endswith("/"):
        old = await tree.lookup(objects, before, path)
        new = await tree.lookup(objects, after, path)
        if old != new:
            return True
    folder = path if path.endswith("/") else path + "/"
    async for key, _old, _new in tree.diff(objects, before, after, folder):
        return key.startswith(folder)
    return False


def encode_cursor(frontier: list[CommitId]) -> str:
    return ".".join(c.hex() for c in frontier)


def decode_cursor(text: str) -> list[CommitId]:
    try:
        return [CommitId(bytes.fromhex(part)) for part in text.split(".") if part]
    except ValueError:
        raise ValueError(f"invalid cursor {text!r}") from None


async def walk(
    objects: ObjectStore,
    frontier: list[CommitId],
    path: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> AsyncIterator[tuple[Commit, CommitId, list[CommitId]]]:
    """(commit, its id, the frontier after it) for the ancestors of
    `frontier`, newest first, filtered by path and time (microseconds,
    inclusive). The frontier after an item resumes the walk right after it."""
    heap: list[tuple[int, bytes]] = []
    seen: set[CommitId] = set()
    for cid in frontier:
        if cid not in seen:
            seen.add(cid)
            heapq.heappush(heap, (-(await objects.get_commit(cid)).time, cid))
    while heap:
        _, raw = heapq.heappop(heap)
        cid = CommitId(raw)
        commit = await objects.get_commit(cid)
        if since is not None and commit.time < since:
            # Parents are older than their children: nothing older qualifies.
            return
        for parent in commit.parents:
            if parent not in seen:
                seen.add(parent)
                heapq.heappush(heap, (-(await objects.get_commit(parent)).time, parent))
        if until is not None and commit.time > until:
            continue
        if path is not None and not await changed_path(objects, commit, path):
            continue
        yield commit, cid, [CommitId(c) for _, c in sorted(heap)]


async def path_history(
    objects: ObjectStore, head: CommitId, path: str
) -> AsyncIterator[tuple[CommitId, ObjectEntry | None]]:
    """The commits that changed `path`, newest first, with the entry each
    wrote (None: deleted), from the history index (cost: one lookup per
    version, whatever the length of the whole history)."""
    root, _generation = await objects.get_history(head)
    async for commit, entry in history.history_of(objects, root, path):
        yield commit, (None if history.is_delete_marker(entry) else entry)
