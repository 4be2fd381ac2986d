"""Committing changes to a branch: one commit per change, heads moved by compare-and-set.

Concurrent writers to one branch queue their changes here. One task per branch
drains the queue: it reads the branch head, applies each queued change in turn
on top of the previous one (each becomes its own commit whose parent is the
commit before it), and writes the whole chain plus the head move in one
PostgreSQL transaction guarded by compare-and-set on the old head. If another
process moved the head meanwhile, nothing is written and the chain is rebuilt
on the new head (a rebase) and retried. No change is ever lost, and batching
turns N concurrent writers into one transaction instead of N conflicts.

The head is never trusted from memory: a first attempt may guess it (the head
this process last wrote), but only the compare-and-set in the database lets a
chain land. Several servers on one database committing to one branch take
turns once they have collided: a retry waits for the branch's turn (a
PostgreSQL advisory lock, granted in arrival order; db/commit_chain.py),
reads the head under it and builds on that, so no server starves another
(docs/design/multi-gateway.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from versioning import errors, history, tree
from versioning.clock import now_us
from versioning.db import ChainWrite, Database
from versioning.ids import CommitId, ContentId, NodeId, VersionId
from versioning.merge import same_object
from versioning.model import Commit, Manifest, ObjectEntry
from versioning.tree import Node, Root

log = logging.getLogger(__name__)

MAX_BATCH = 256
MAX_ATTEMPTS = 100
# After losing a race for a branch head, this process commits to that branch
# in turns (db/commit_chain.py) for this long: while other servers write to
# it too, a guess at the head mostly costs a wasted statement.
CONTENDED_SECONDS = 1.0

# A precondition sees the tree the change will apply to and may raise.
Check = Callable[[tree.NodeSource, Root], Awaitable[None]]


@dataclass(slots=True)
class Change:
    edits: Mapping[str, ObjectEntry | None]
    message: str
    author: str
    origin: dict[str, Any]
    check: Check | None = None
    # An upload consumed atomically with this commit (CompleteMultipartUpload).
    consume_upload: str | None = None
    # Manifests of new bodies, stored in the same statement as the commit.
    contents: Sequence[Manifest] = ()
    # An open commit (being finished) consumed atomically with this commit.
    consume_open: CommitId | None = None
    # Parents after the first (the branch head): a merge's source.
    extra_parents: tuple[CommitId, ...] = ()
    # When set, the change applies only on this head (HeadMoved otherwise):
    # for changes computed against a known head, such as a merge.
    expect_head: CommitId | None = None
    require_head: bool = False
    # Keys whose record in this change's own commit is withdrawn from the
    # branch's version listing, and other (key, commit) records withdrawn
    # with it (S3 deletes of a current version, versions.py).
    withdraw_own: tuple[str, ...] = ()
    withdraw: tuple[tuple[str, CommitId], ...] = ()
    # Keep the entries' last_modified (a restored version keeps its time).
    keep_times: bool = False
    # Drop an edit that writes what the path already holds (same content,
    # type, metadata, headers and tags): such a write makes no commit.
    skip_same: bool = False
    future: asyncio.Future[CommitId | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Overlay:
    """Tree nodes made in this attempt but not yet stored, over the stored ones."""

    def __init__(self, stored: tree.NodeSource) -> None:
        self.stored = stored
        self.nodes: dict[NodeId, Node] = {}

    async def get_node(self, node_id: NodeId) -> Node:
        node = self.nodes.get(node_id)
        if node is not None:
            return node
        return await self.stored.get_node(node_id)


class Committer:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Called (repo, branch) after each commit this process makes: the
        # pipeline scheduler wakes at once instead of at its next tick.
        self.on_commit: list[Callable[[str, str], None]] = []
        self._queues: dict[tuple[str, str], list[Change]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.conflicts = 0  # head moves lost to another process, each one a rebase
        self.commits = 0  # commits this process made (the operator's metrics read it)
        # The head this process last wrote per branch. Used as the expected old
        # head without reading it first; a wrong guess only costs a failed
        # compare-and-set, after which the head is read.
        self._known_heads: dict[tuple[str, str], CommitId | None] = {}
        # Branches another process wrote to lately, until a monotonic
        # deadline: commits to them take turns from the first attempt.
        self._contended: dict[tuple[str, str], float] = {}

    async def submit(self, repo: str, branch: str, change: Change) -> CommitId | None:
        """Queue a change; returns the commit it became (None if it changed nothing)."""
        key = (repo, branch)
        self._queues.setdefault(key, []).append(change)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key))
        return await change.future

    async def _drain(self, key: tuple[str, str]) -> None:
        # No await between finding the queue empty and deregistering, so a
        # submit can never be left without a worker.
        try:
            while queue := self._queues.get(key):
                batch = [c for c in queue[:MAX_BATCH] if not c.future.done()]
                del queue[:MAX_BATCH]
                if batch:
                    await self._commit_batch(key, batch)
        except asyncio.CancelledError:
            for change in self._queues.get(key, []):
                if not change.future.done():
                    change.future.cancel()
            raise
        finally:
            del self._workers[key]
            self._queues.pop(key, None)

    async def _commit_batch(self, key: tuple[str, str], batch: list[Change]) -> None:
        repo, branch = key
        for attempt in range(MAX_ATTEMPTS):
            in_turn = attempt > 0 or self._contended.get(key, 0.0) > time.monotonic()
            try:
                if in_turn:
                    async with self.db.writer.turn(repo, branch):
                        # What queued while waiting for the turn goes too: a
                        # turn costs a head read and the other servers' new
                        # tree nodes, so it should carry all it can.
                        self._top_up(key, batch)
                        done = await self._attempt(repo, branch, batch, in_turn=True)
                else:
                    done = await self._attempt(repo, branch, batch)
            except Exception as exc:  # the whole batch shares the failure
                self._known_heads.pop(key, None)
                for change in batch:
                    if not change.future.done():
                        change.future.set_exception(exc)
                return
            if done:
                return
            # Another process moved the head, or holds the branch's turn:
            # rebase on the new head, in turn.
            self.conflicts += 1
            self._known_heads.pop(key, None)
            if len(self._contended) > 10_000:
                self._contended.clear()
            self._contended[key] = time.monotonic() + CONTENDED_SECONDS
        for change in batch:
            if not change.future.done():
                change.future.set_exception(
                    errors.ConcurrentUpdate(f"{repo}.{branch}: too many concurrent updates")
                )

    def _top_up(self, key: tuple[str, str], batch: list[Change]) -> None:
        """Move changes queued since `batch` was taken into it, up to MAX_BATCH."""
        queue = self._queues.get(key)
        room = MAX_BATCH - len(batch)
        if queue and room > 0:
            batch.extend(c for c in queue[:room] if not c.future.done())
            del queue[:room]

    async def _attempt(
        self, repo: str, branch: str, batch: list[Change], in_turn: bool = False
    ) -> bool:
        key = (repo, branch)
        # In turn, the head read now stays the head until this chain lands
        # (unless a ref move outside the committer, such as a reset, races it).
        guessed = key in self._known_heads and not in_turn
        if guessed:
            head = self._known_heads[key]
        else:
            head = (await self.db.refs.get_branch(repo, branch)).head
        root: Root = None
        # A commit is never older than its parent, even when the parent was
        # made by a server whose clock runs ahead of this one's.
        after = 0
        if head is not None:
            head_commit = await self.db.objects.get_commit(head)
            root = NodeId(head_commit.tree or b"") or None
            after = head_commit.time
        src = _Overlay(self.db.objects)
        parent = head
        history_root, generation = (
            await self.db.objects.get_history(head) if head is not None else (None, 0)
        )
        histories: list[tuple[CommitId, Root, int]] = []
        commits: list[Commit] = []
        versions: list[tuple[VersionId, CommitId]] = []
        outcome: dict[int, CommitId | BaseException | None] = {}
        uploads: list[tuple[str, CommitId]] = []
        opens: list[CommitId] = []
        extra_parents: list[CommitId] = []
        contents: list[Manifest] = []
        referenced: set[ContentId] = set()
        withdrawn: list[tuple[str, CommitId]] = []
        for index, change in enumerate(batch):
            try:
                if change.require_head and parent != change.expect_head:
                    raise errors.HeadMoved(
                        f"{repo}@{branch} moved to "
                        f"{parent.hex() if parent else 'nothing'} meanwhile"
                    )
                if change.check is not None:
                    await change.check(src, root)
                if change.consume_upload is not None:
                    if change.consume_upload in (u[0] for u in uploads):
                        # An earlier change of this batch completes it.
                        raise errors.UploadNotFound(change.consume_upload)
                    await self.db.uploads.get_upload(change.consume_upload)
                if change.consume_open is not None:
                    record = await self.db.open_commits.get_open_commit(repo, change.consume_open)
                    if record is None or not record.finishing or change.consume_open in opens:
                        raise errors.OpenCommitNotFound(change.consume_open.hex())
            except errors.VersioningError as exc:
                outcome[index] = exc
                continue
            when = max(now_us(), (commits[-1].time if commits else after) + 1)
            wanted = dict(change.edits)
            if change.skip_same:
                for path, entry in change.edits.items():
                    if same_object(await tree.lookup(src, root, path), entry):
                        del wanted[path]
            edits = {
                k: (
                    dataclasses.replace(v, last_modified=when)
                    if v is not None and not change.keep_times
                    else v
                )
                for k, v in wanted.items()
            }
            new_root, new_nodes = await tree.apply(src, root, edits)
            if (
                new_root == root
                and change.consume_upload is None
                and change.consume_open is None
                and not change.extra_parents
            ):
                outcome[index] = None  # nothing changed: no commit
                continue
            src.nodes.update(new_nodes)
            commit = Commit(
                parents=((parent,) if parent is not None else ()) + change.extra_parents,
                tree=new_root,
                author=change.author,
                message=change.message,
                time=when,
                origin={"repo": repo, "branch": branch, **change.origin},
            )
            commits.append(commit)
            generation += 1
            records = await history.records_for(src, root, new_root, generation, commit.id, when)
            history_root, history_nodes = await tree.apply(src, history_root, records)
            src.nodes.update(history_nodes)
            histories.append((commit.id, history_root, generation))
            versions.extend((v.version, commit.id) for v in edits.values() if v is not None)
            if change.consume_upload is not None:
                uploads.append((change.consume_upload, commit.id))
            if change.consume_open is not None:
                opens.append(change.consume_open)
            extra_parents.extend(change.extra_parents)
            withdrawn.extend((key, commit.id) for key in change.withdraw_own)
            withdrawn.extend(change.withdraw)
            contents.extend(change.contents)
            referenced.update(v.content for v in edits.values() if v is not None)
            outcome[index] = commit.id
            parent, root = commit.id, new_root
        if commits:
            ok = await self.db.writer.commit_chain(
                ChainWrite(
                    repo=repo,
                    branch=branch,
                    old_head=head,
                    commits=commits,
                    nodes=src.nodes,
                    versions=versions,
                    consume_uploads=uploads,
                    consume_open=opens,
                    contents=contents,
                    extra_parents=extra_parents,
                    histories=histories,
                    referenced=referenced,
                    withdraw=withdrawn,
                    in_turn=in_turn,
                )
            )
            if not ok:
                return False
            self._known_heads[key] = commits[-1].id
            self.commits += len(commits)
            for listener in self.on_commit:
                listener(repo, branch)
        elif guessed and (await self.db.refs.get_branch(repo, branch)).head != head:
            # Nothing was committed, so no compare-and-set proved that these
            # outcomes (no-ops, failed preconditions) were judged on the
            # current head: they were not. Judge them again.
            self._known_heads.pop(key, None)
            return False
        for index, change in enumerate(batch):
            result = outcome[index]
            if change.future.done():
                continue
            if isinstance(result, BaseException):
                change.future.set_exception(result)
            else:
                change.future.set_result(result)
        return True
