"""Deleting one version of an object from a branch, as S3 does, while history
stays immutable.

S3's DeleteObject?versionId on a versioned bucket removes that version: when
it was the current one, the previous version becomes current (or the key is
gone when there is none); otherwise the version just leaves the listing.
loxo's versions are commits, which never change. So on a branch:

- deleting a version that is not current *withdraws* its record from the
  branch's version listing (db/withdrawn.py); no commit;
- deleting the current version makes ONE commit that restores the previous
  listed version (the very same entry: its version id, so reads report that
  version's commit, and its time), or removes the key when there is none;
  both the deleted record and the restoring commit's record are withdrawn,
  so the listing shows the previous version as the latest, as S3 would;
- deleting a current delete marker restores the version before it the same
  way ("undelete").

Commits, snapshot buckets (`repo.<commit>`), other branches and the control
API still see every version: nothing is lost. Erasing content from history
itself is `purge`, not this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from versioning import errors, history, tree
from versioning.committer import Change, Committer
from versioning.db import Database
from versioning.history import Record
from versioning.ids import CommitId
from versioning.model import ObjectEntry
from versioning.text import plural
from versioning.views import View

if TYPE_CHECKING:
    from versioning.repository import Versioning

ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Deleted:
    key: str
    version: CommitId
    was_delete_marker: bool
    existed: bool  # False: no such version of the key was listed (a no-op)
    commit: CommitId | None  # the commit that restored the previous version, if one


class VersionDeletes:
    def __init__(self, versioning: Versioning, committer: Committer, author: str) -> None:
        self.v = versioning
        self.committer = committer
        self.author = author

    async def delete(
        self, view: View, targets: Sequence[tuple[str, CommitId]], author: str | None = None
    ) -> list[Deleted]:
        """Delete versions (key, commit) from the view's branch: every current
        one in ONE commit, the others withdrawn. Re-judged when the branch
        moved meanwhile."""
        if view.branch is None:
            raise errors.ReadOnlyRef(f"{view.repo} snapshot is read-only")
        branch = view.branch
        if not targets:
            return []
        for _ in range(ATTEMPTS):
            async with self.v.db.withdrawn.serialized(view.repo, branch):
                view = await self.v.branch_view(view.repo, branch)
                plan = await self._plan(view, targets)
                try:
                    commit = await self._apply(view, plan, author or self.author)
                except errors.PreconditionFailed:
                    continue  # a current version changed meanwhile: judge again
            return [
                Deleted(p.key, p.version, p.marker, p.existed, commit if p.restore else None)
                for p in plan
            ]
        raise errors.ConcurrentUpdate(f"{view.repo}.{branch} kept changing; try again")

    async def _plan(self, view: View, targets: Sequence[tuple[str, CommitId]]) -> list[_Step]:
        """One step per target. Targets are judged per key together: when the
        current version is among them, the key becomes the newest listed
        version that is not."""
        steps: list[_Step] = []
        wanted: dict[str, set[CommitId]] = {}
        for key, version in targets:
            wanted.setdefault(key, set()).add(version)
        listings = {key: await self._records(view, key) for key in wanted}
        plans: dict[str, tuple[ObjectEntry | None, ObjectEntry | None] | None] = {}
        for key, versions in wanted.items():
            listed = listings[key]
            if not listed or listed[0].commit not in versions:
                plans[key] = None  # the current version stays
                continue
            survivor = next((r for r in listed if r.commit not in versions), None)
            restored = survivor.entry if survivor is not None and not survivor.deleted else None
            current = await tree.lookup(self.v.db.objects, view.root, key)
            # A key that stays absent (a current delete marker over nothing,
            # or over another marker) needs no commit.
            plans[key] = (current, restored) if (restored, current) != (None, None) else None
        for key, version in targets:
            record = next((r for r in listings[key] if r.commit == version), None)
            if record is None:
                steps.append(_Step(key, version, False, False, False, None, None))
                continue
            plan = plans[key]
            restore = plan is not None and record.commit == listings[key][0].commit
            current, restored = plan if plan is not None else (None, None)
            steps.append(_Step(key, version, record.deleted, True, restore, current, restored))
        return steps

    async def _records(self, view: View, key: str) -> list[Record]:
        out: list[Record] = []
        async for record in self.v.history_records(view, key + history.SEPARATOR):
            if record.key != key:
                break
            out.append(record)
        return out

    async def _apply(self, view: View, plan: list[_Step], author: str) -> CommitId | None:
        assert view.branch is not None
        restores = {p.key: p for p in plan if p.restore}
        # Other versions of a key being restored are withdrawn by its commit.
        along = [(p.key, p.version) for p in plan if p.existed and p.key in restores]
        quiet = [(p.key, p.version) for p in plan if p.existed and p.key not in restores]
        commit = None
        if restores:

            async def unchanged(src: tree.NodeSource, root: tree.Root) -> None:
                for key, step in restores.items():
                    if await tree.lookup(src, root, key) != step.current:
                        raise errors.PreconditionFailed(f"{key} changed meanwhile")

            commit = await self.committer.submit(
                view.repo,
                view.branch,
                Change(
                    edits={k: p.restored for k, p in restores.items()},
                    message=f"DeleteObjectVersion ({plural(len(restores), 'key')})",
                    author=author,
                    origin={"op": "DeleteObjectVersion", "keys": sorted(restores)},
                    check=unchanged,
                    withdraw_own=tuple(restores),
                    withdraw=tuple(along),
                    keep_times=True,
                ),
            )
        await self.v.db.withdrawn.withdraw(view.repo, view.branch, quiet)
        return commit


@dataclass(frozen=True, slots=True)
class _Step:
    key: str
    version: CommitId
    marker: bool  # the version is a delete marker
    existed: bool  # it is listed on the branch
    restore: bool  # it is current: commit the previous version back
    current: ObjectEntry | None  # the key's entry now (checked at commit time)
    restored: ObjectEntry | None  # what the key becomes


class WithdrawnFilter:
    """The withdrawn records of a branch, read in key order alongside a walk
    of its history: a window of up to WINDOW rows at a time."""

    WINDOW = 1000

    def __init__(self, db: Database, repo: str, branch: str) -> None:
        self.db = db
        self.repo = repo
        self.branch = branch
        self.low: str | None = None  # the window holds every row with low <= key < high
        self.high: str | None = None  # None: no end
        self.rows: dict[str, set[CommitId]] = {}

    async def contains(self, key: str, commit: CommitId) -> bool:
        if self.low is None or key < self.low or (self.high is not None and key >= self.high):
            await self._load(key)
        return commit in self.rows.get(key, ())

    async def _load(self, key: str) -> None:
        store = self.db.withdrawn
        rows = await store.withdrawn_from(self.repo, self.branch, key, self.WINDOW)
        self.low, self.high = key, None
        if len(rows) == self.WINDOW:
            last = rows[-1][0]
            rows = [r for r in rows if r[0] != last]  # the last key may continue
            self.high = last
            if not rows:
                # One key with a window's worth of withdrawn versions: all of it.
                rows = await store.withdrawn_of(self.repo, self.branch, key)
                self.high = key + "\x00"
        self.rows = {}
        for k, c in rows:
            self.rows.setdefault(k, set()).add(c)
