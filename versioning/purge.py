"""Purge: erase bodies from a repo's history, for compliance
(docs/design/purge.md).

Commits and trees are content-addressed, so rewriting them would change every
commit id after the first version of the path. A purge therefore leaves
history as it is and erases the *bodies*: it finds every version of a path (or
of every key under a folder) in every commit stored for the repo, and records
their content ids as purged for the repo. From then on:

- a read of any entry of the repo naming such a content answers ContentPurged
  (checked here, against a per-process copy of the purged table, which a
  purge waits to see expire everywhere before it answers, so a read through
  any server after the purge is refused; see `Purges`);
- a write into the repo of the same body is refused with ContentPurged (it
  could only be stored unreadable);
- gc treats the content as unreachable from the repo (reach.walk's `purged`),
  so its chunks and its manifest row (which holds small bodies' bytes) go as
  soon as no other repo, and no un-purged entry elsewhere, names them.

A content id names bytes, not a path: the same bytes under another path of the
repo are purged with it (the plan lists those paths), while other repos that
hold the same bytes keep them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from versioning import errors, history, tree
from versioning.clock import now_us
from versioning.db import Database
from versioning.db.purged import PurgedContent, PurgeLogEntry
from versioning.ids import CommitId, ContentId, NodeId
from versioning.model import Commit, Manifest, ObjectEntry
from versioning.tree import NodeSource

__all__ = ["PurgeLogEntry", "PurgePlan", "Purges", "Version", "versions_of"]

# How long this process trusts its copy of the purged table, from when the
# question that filled it was asked. A purge answers only after this long (and
# a margin), so every server's copy from before the purge has expired by then.
REFRESH_SECONDS = 1.0
# Added to REFRESH_SECONDS before a purge answers: covers clock-rate drift
# between hosts and the time from a request's arrival to its check.
SETTLE_MARGIN_SECONDS = 0.2
# The plan looks for other paths holding the purged bodies in the trees of the
# repo's branches and tags, unless they hold more entries than this.
OTHER_PATHS_SCAN_MAX = 200_000
OTHER_PATHS_LISTED = 100


@dataclass(frozen=True, slots=True)
class Version:
    """One history record of a purged path: the commit that wrote `entry` at `key`."""

    key: str
    commit: CommitId
    entry: ObjectEntry


@dataclass(frozen=True, slots=True)
class PurgePlan:
    repo: str
    path: str
    versions: tuple[Version, ...]
    contents: frozenset[ContentId]  # the bodies to erase (empty bodies excluded)
    bytes: int  # their plain size, each counted once
    # Other paths of the repo (at a branch or tag head) holding one of those bodies.
    other_paths: tuple[str, ...] = ()
    other_paths_complete: bool = True  # False: not scanned, or more than listed

    @property
    def commits(self) -> int:
        return len({v.commit for v in self.versions})


def is_folder(path: str) -> bool:
    return path.endswith("/")


async def _records_under(
    src: NodeSource, root: NodeId | None, path: str
) -> AsyncIterator[history.Record]:
    """History records of `path`, or of every key under folder `path`."""
    if root is None:
        return
    if is_folder(path):
        async for record in history.records(src, root, path):
            if not record.key.startswith(path):
                return
            yield record
        return
    async for commit, entry in history.history_of(src, root, path):
        yield history.Record(path, commit, entry)


async def _entries_under(
    src: NodeSource, root: NodeId | None, path: str
) -> AsyncIterator[tuple[str, ObjectEntry]]:
    if root is None:
        return
    if not is_folder(path):
        entry = await tree.lookup(src, root, path)
        if entry is not None:
            yield path, entry
        return
    async for key, entry in tree.iterate(src, root, path):
        if not key.startswith(path):
            return
        yield key, entry


async def versions_of(
    src: NodeSource,
    history_root: Callable[[CommitId], Awaitable[NodeId | None]],
    commits: Sequence[tuple[CommitId, Commit, bool]],
    path: str,
) -> list[Version]:
    """Every version of `path` (a key, or a folder ending in "/": every key
    under it) that `commits` hold: (id, commit, whether it has a history index).

    Each commit's history index holds the records of its first-parent chain,
    so the indexes of the "first-parent tips" (commits no commit has as first
    parent: heads, and the branches merged in) cover every commit: from any
    commit, following first children ends at a tip. Commits made before
    history was indexed have no index; their trees are read instead.
    Delete markers are left out: they name no body."""
    first_parents = {c.parents[0] for _, c, _ in commits if c.parents}
    found: dict[tuple[str, CommitId], ObjectEntry] = {}
    for cid, _commit, indexed in commits:
        if cid in first_parents or not indexed:
            continue
        async for record in _records_under(src, await history_root(cid), path):
            if not record.deleted:
                found.setdefault((record.key, record.commit), record.entry)
    seen = {(key, e.version) for (key, _), e in found.items()}
    for cid, commit, indexed in commits:
        if indexed:
            continue
        root = NodeId(commit.tree) if commit.tree else None
        async for key, entry in _entries_under(src, root, path):
            if (key, entry.version) not in seen:
                seen.add((key, entry.version))
                found[(key, cid)] = entry
    return [Version(k, c, e) for (k, c), e in sorted(found.items())]


class HistoryRoots:
    """A commit's history index root (None: empty), through the object store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, commit: CommitId) -> NodeId | None:
        return (await self.db.objects.get_history(commit))[0]


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds")


def purged_error(repo: str, record: PurgedContent) -> errors.ContentPurged:
    return errors.ContentPurged(
        f"The content of this object version was erased from repo {repo} by purge "
        f"#{record.log_id} of {record.path} at {_when(record.purged_at)} "
        f"(reason: {record.reason}; by {record.purged_by}); it can no longer be read"
    )


@dataclass(slots=True)
class _Table:
    rows: dict[tuple[str, ContentId], PurgedContent] = field(default_factory=dict)
    generation: tuple[int, int] | None = None
    checked: float = float("-inf")


class Purges:
    """Purging, and the check every read and write of a body goes through.

    Several servers share the database, and each keeps a copy of the purged
    table, trusted for `refresh_seconds` from when the question that filled
    it was asked. So that a purge acknowledged by one server is enforced by
    every server at once, the purge waits out that window (plus a margin)
    before it answers: by then, no copy made before the purge is trusted. A
    hit in the copy is confirmed in the database (hits are rare: only purged
    bodies), since the repo may have been deleted and re-created since.
    """

    def __init__(self, db: Database, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._table = _Table()
        self._lock = asyncio.Lock()

    # -- the check ------------------------------------------------------------------

    async def _current(self) -> _Table:
        table = self._table
        if time.monotonic() - table.checked < self.refresh_seconds:
            return table
        async with self._lock:
            table = self._table
            if time.monotonic() - table.checked < self.refresh_seconds:
                return table
            await self._refresh()
            return self._table

    async def _refresh(self, force: bool = False) -> None:
        # Trusted from when the question was asked, not answered: a purge
        # committed while it was in flight may be missing from the answer.
        asked = time.monotonic()
        generation = await self.db.purged.generation()
        rows = self._table.rows
        if force or generation != self._table.generation:
            rows = {(r.repo, r.content): r for r in await self.db.purged.all_purged()}
        self._table = _Table(rows, generation, asked)

    async def purged(self, repo: str, content: ContentId) -> PurgedContent | None:
        """The purge that erased `content` from `repo`, if one did."""
        table = await self._current()
        if not table.rows or (repo, content) not in table.rows:
            return None
        return await self.db.purged.find(repo, content)

    async def check_read(self, repo: str, content: ContentId) -> None:
        """ContentPurged when `content` was purged from `repo`."""
        record = await self.purged(repo, content)
        if record is not None:
            raise purged_error(repo, record)

    async def check_write(self, repo: str, contents: Iterable[ContentId]) -> None:
        """ContentPurged when a write would store a body purged from `repo`."""
        table = await self._current()
        if not table.rows:
            return
        for content in contents:
            if (repo, content) not in table.rows:
                continue
            record = await self.db.purged.find(repo, content)
            if record is not None:
                raise errors.ContentPurged(
                    f"This body was erased from repo {repo} by purge #{record.log_id} of "
                    f"{record.path} at {_when(record.purged_at)} (reason: {record.reason}); "
                    "the same bytes cannot be stored in this repo again"
                )

    # -- purging --------------------------------------------------------------------

    async def plan(self, repo: str, path: str) -> PurgePlan:
        """What purging `path` would erase. InvalidName for an empty path."""
        path = path.lstrip("/")
        if not path:
            raise errors.InvalidName("name the path (or folder, ending in /) to purge")
        await self.db.repos.get_repo(repo)
        commits = [
            (cid, Commit.decode(data), indexed)
            for cid, data, indexed in await self.db.purged.repo_commits(repo)
        ]
        versions = await versions_of(self.db.objects, HistoryRoots(self.db), commits, path)
        sizes: dict[ContentId, int] = {}
        for v in versions:
            if v.entry.size > 0:  # an empty body holds no bytes to erase
                sizes[v.entry.content] = v.entry.size
        others, complete = await self._other_paths(repo, path, set(sizes))
        return PurgePlan(
            repo,
            path,
            tuple(versions),
            frozenset(sizes),
            sum(sizes.values()),
            tuple(others),
            complete,
        )

    async def _other_paths(
        self, repo: str, path: str, contents: set[ContentId]
    ) -> tuple[list[str], bool]:
        if not contents:
            return [], True
        roots = {
            NodeId(commit.tree)
            for cid in await self.db.purged.ref_heads(repo)
            if (commit := await self.db.objects.get_commit(cid)).tree
        }
        found: set[str] = set()
        complete = True
        for root in roots:
            count, _ = await tree.stats(self.db.objects, root)
            if count > OTHER_PATHS_SCAN_MAX:
                complete = False
                continue
            async for key, entry in tree.iterate(self.db.objects, root):
                inside = key.startswith(path) if is_folder(path) else key == path
                if not inside and entry.content in contents:
                    found.add(key)
        if len(found) > OTHER_PATHS_LISTED:
            complete = False
        return sorted(found)[:OTHER_PATHS_LISTED], complete

    async def purge(self, repo: str, path: str, reason: str, by: str) -> PurgeLogEntry:
        """Erase every version of `path` from the repo's history (see the
        module doc); returns the audit log row. The bytes themselves go at the
        next gc pass."""
        reason = reason.strip()
        if not reason:
            raise errors.InvalidName("a purge needs a reason (it goes to the audit log)")
        plan = await self.plan(repo, path)
        entry = await self.db.purged.record(
            PurgeLogEntry(
                0,
                repo,
                plan.path,
                len(plan.versions),
                plan.commits,
                len(plan.contents),
                plan.bytes,
                reason,
                by,
                now_us(),
            ),
            sorted(plan.contents),
        )
        async with self._lock:
            await self._refresh(force=True)
        # Small bodies' bytes live in their manifests: drop cached copies.
        gone = plan.contents
        self.db.objects.manifests.drop_where(lambda m: isinstance(m, Manifest) and m.id in gone)
        # Other servers on the database trust their copies of the table for
        # refresh_seconds: answer once every copy from before this purge has
        # expired, so a read through any of them after this answer is refused.
        await asyncio.sleep(self.refresh_seconds + SETTLE_MARGIN_SECONDS)
        return entry

    async def log(self, repo: str, after: int = 0, limit: int = 1000) -> list[PurgeLogEntry]:
        """The repo's purges, oldest first (also for a repo deleted since)."""
        return await self.db.purged.log(repo, after, limit)
