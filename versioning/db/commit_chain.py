"""The commit statement: a chain of commits persisted and a branch head moved,
atomically, in ONE round trip.

Every insert is guarded by the compare-and-set UPDATE of the head, so it needs
no explicit transaction. It is the one statement that spans concepts
(refs, immutable objects, uploads and open commits it consumes), because
atomicity across them is the point of a commit.

Several servers committing to one branch take turns (`turn`): a committer
that lost a compare-and-set to another server waits for the branch's turn
lock, a PostgreSQL advisory lock granted in arrival order, instead of racing
again; while one holds the turn, the statement of a committer that did not
wait for it fails at once (and that committer queues too). The
compare-and-set stays the authority either way; turns only stop one busy
server from winning every race (docs/design/multi-gateway.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from versioning import errors
from versioning.catalog import MOVE_LOCK
from versioning.clock import now_us
from versioning.db.objects import PgObjects
from versioning.ids import CommitId, ContentId, NodeId, VersionId
from versioning.model import Commit, Manifest
from versioning.tree import Node


@dataclass(frozen=True, slots=True)
class ChainWrite:
    """Everything one commit statement writes.

    `referenced` are the contents the new entries point at that `contents`
    does not bring (copies, completed uploads): they are locked and touched,
    so garbage collection cannot delete them under the commit.
    `extra_parents` are merge parents, gc-guarded like a ref move's target.
    """

    repo: str
    branch: str
    old_head: CommitId | None
    commits: Sequence[Commit]
    nodes: Mapping[NodeId, Node]
    versions: Sequence[tuple[VersionId, CommitId]] = ()
    # (upload id, the commit that completes it): consumed, and remembered in
    # completed_uploads for retried completions.
    consume_uploads: Sequence[tuple[str, CommitId]] = ()
    consume_open: Sequence[CommitId] = ()
    contents: Sequence[Manifest] = ()
    histories: Sequence[tuple[CommitId, NodeId | None, int]] = ()
    referenced: Iterable[ContentId] = field(default=())
    extra_parents: Iterable[CommitId] = field(default=())
    # (key, commit) records withdrawn from the branch's version listing.
    withdraw: Sequence[tuple[str, CommitId]] = ()
    # The writer holds the branch's turn (PgCommitWriter.turn); without it,
    # the statement fails while another committer holds the turn.
    in_turn: bool = False


class CommitWriter(Protocol):
    async def commit_chain(self, write: ChainWrite) -> bool: ...
    def turn(self, repo: str, branch: str) -> contextlib.AbstractAsyncContextManager[None]: ...


# A turn holder idle in its lock's transaction for this long (a server that
# hung, or a host that vanished without closing its socket) is disconnected
# by PostgreSQL, which frees the turn. A live holder is idle only while it
# builds a batch of commits: milliseconds.
TURN_IDLE_TIMEOUT = "30s"


def turn_key(repo: str, branch: str) -> str:
    """The text whose hash names the branch's turn lock (names hold no '/')."""
    return f"commit/{repo}/{branch}"


class PgCommitWriter:
    def __init__(self, pool: asyncpg.Pool, objects: PgObjects) -> None:
        self.pool = pool
        self.objects = objects
        # Each turn holds a pool connection while it waits and builds, and
        # needs others to read and write: at most a quarter of the pool waits
        # on turns, so the rest always serves (no pool deadlock).
        self._turn_slots: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def turn(self, repo: str, branch: str) -> AsyncIterator[None]:
        """Wait for the branch's turn, among every server on the database,
        and hold it for the block. A transaction holds the advisory lock, so
        PostgreSQL frees it with the transaction, whatever happens to this
        process (and after TURN_IDLE_TIMEOUT for a holder that went silent)."""
        if self._turn_slots is None:
            self._turn_slots = asyncio.Semaphore(max(1, self.pool.get_max_size() // 4))
        async with self._turn_slots, self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', $2, true), "
                "pg_advisory_xact_lock(hashtextextended($1, 0))",
                turn_key(repo, branch),
                TURN_IDLE_TIMEOUT,
            )
            yield

    async def commit_chain(self, write: ChainWrite) -> bool:
        """Persist `write.commits` and move the branch head from `old_head` to
        the last one. Returns False (writing nothing) when the head is no
        longer `old_head`, or an upload or open commit (being finished) to
        consume is gone. Two completions of one upload cannot both succeed:
        they race on the same branch head, and the loser's compare-and-set
        fails. False too, without `in_turn`, while another committer holds
        the branch's turn. A referenced content already gone raises ContentGone; a merge
        parent gc may sweep raises Busy. Every node and content written is
        touched (see migration 0004)."""
        nodes = write.nodes
        node_ids = list(nodes)
        unique = {m.id: m for m in write.contents}
        others = sorted({c for c in write.referenced if c not in unique})
        params: dict[str, Any] = {
            "repo": write.repo,
            "branch": write.branch,
            "old_head": write.old_head,
            "new_head": write.commits[-1].id,
            "uploads": [u[0] for u in write.consume_uploads],
            "upload_commits": [u[1] for u in write.consume_uploads],
            "node_ids": node_ids,
            "node_data": [nodes[n].encode() for n in node_ids],
            "commit_ids": [c.id for c in write.commits],
            "commit_repos": [write.repo] * len(write.commits),
            "commit_times": [c.time for c in write.commits],
            "commit_data": [c.encode() for c in write.commits],
            "versions": [v[0] for v in write.versions],
            "version_commits": [v[1] for v in write.versions],
            "content_ids": list(unique),
            "content_sizes": [m.size for m in unique.values()],
            "manifests": [m.encode() for m in unique.values()],
            "content_chunked": [m.has_chunks for m in unique.values()],
            "history_commits": [h[0] for h in write.histories],
            "history_roots": [h[1] for h in write.histories],
            "history_generations": [h[2] for h in write.histories],
            "now": now_us(),
            "kept": others,
            "open": list(write.consume_open),
            "merge_parents": list(write.extra_parents),
            "move_lock": MOVE_LOCK,
            "withdrawn_keys": [w[0] for w in write.withdraw],
            "withdrawn_commits": [w[1] for w in write.withdraw],
            "in_turn": write.in_turn,
            "turn_key": turn_key(write.repo, write.branch),
        }
        try:
            row = await self.pool.fetchrow(_COMMIT_CHAIN, *[params[n] for n in _ORDER])
        except asyncpg.DeadlockDetectedError:
            # Two merges locking each other's source head: PostgreSQL aborted
            # this one; returning False makes the committer rebuild and retry.
            return False
        assert row is not None
        if not row[2]:
            raise errors.Busy(
                "garbage collection is running, and the commit being merged is not a branch "
                "head or tag, so nothing may refer to it until gc finishes; try again shortly"
            )
        if row[1] != len(others):
            raise errors.ContentGone(
                "an object body this write refers to was garbage-collected meanwhile "
                "(its source was no longer reachable); nothing was written"
            )
        if row[0] != 1:
            return False
        self.objects.remember(nodes.items(), write.commits, write.histories)
        return True


_NAMED = """
WITH kept AS (
    -- Lock the re-used contents against a concurrent gc DELETE: once locked,
    -- gc's re-check sees them touched below and spares them.
    SELECT id FROM contents WHERE id = ANY(:kept::bytea[]) FOR KEY SHARE
), ups AS (
    -- Locked, so an abort either deletes them first (and this fails) or
    -- waits and then finds them consumed.
    SELECT id FROM uploads WHERE id = ANY(:uploads::text[]) FOR UPDATE
), opened AS (
    SELECT id FROM open_commits WHERE id = ANY(:open::bytea[]) AND finishing FOR UPDATE
), guard AS (
    -- A merge's other parents must survive a running gc, as a ref move's
    -- target must (see ref_guard.GUARD_TARGET).
    SELECT CASE WHEN cardinality(:merge_parents::bytea[]) = 0 THEN true
           ELSE pg_try_advisory_xact_lock_shared(:move_lock)
                OR (SELECT count(*) FROM unnest(:merge_parents::bytea[]) AS x(id)
                    WHERE EXISTS (SELECT 1 FROM branches b
                                  WHERE b.repo = :repo AND b.head = x.id FOR SHARE)
                       OR EXISTS (SELECT 1 FROM tags t
                                  WHERE t.repo = :repo AND t.commit_id = x.id FOR SHARE))
                   = cardinality(:merge_parents::bytea[])
           END AS ok
), turn AS (
    -- Not while another committer holds the branch's turn (PgCommitWriter.turn):
    -- it read the head under the lock and is about to move it. Shared and
    -- held for this statement only, so a committer waiting for the turn gets
    -- it as soon as the statements already running end.
    SELECT CASE WHEN :in_turn::boolean THEN true
           ELSE pg_try_advisory_xact_lock_shared(hashtextextended(:turn_key::text, 0))
           END AS ok
), upd AS (
    UPDATE branches SET head = :new_head
    WHERE repo = :repo AND name = :branch AND head IS NOT DISTINCT FROM :old_head
      AND (SELECT count(*) FROM ups) = cardinality(:uploads::text[])
      AND (SELECT count(*) FROM kept) = cardinality(:kept::bytea[])
      AND (SELECT count(*) FROM opened) = cardinality(:open::bytea[])
      AND (SELECT ok FROM guard)
      AND (SELECT ok FROM turn)
    RETURNING 1
), consumed AS (
    DELETE FROM uploads WHERE id = ANY(:uploads::text[]) AND EXISTS (SELECT 1 FROM upd)
    RETURNING id, repo, branch, key
), completions AS (
    INSERT INTO completed_uploads (id, repo, branch, key, commit_id, completed)
    SELECT c.id, c.repo, c.branch, c.key, t.commit_id, :now
    FROM consumed c
    JOIN unnest(:uploads::text[], :upload_commits::bytea[]) AS t(id, commit_id) ON t.id = c.id
    ON CONFLICT (id) DO NOTHING
), finished AS (
    DELETE FROM open_commits WHERE id = ANY(:open::bytea[]) AND EXISTS (SELECT 1 FROM upd)
), new_nodes AS (
    INSERT INTO tree_nodes (id, data, touched)
    SELECT t.id, t.data, :now FROM unnest(:node_ids::bytea[], :node_data::bytea[]) AS t(id, data)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
), new_commits AS (
    INSERT INTO commits (id, repo, time, data)
    SELECT t.id, t.repo, t.time, t.data
    FROM unnest(:commit_ids::bytea[], :commit_repos::text[], :commit_times::bigint[],
                :commit_data::bytea[]) AS t(id, repo, time, data)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
), new_versions AS (
    INSERT INTO object_versions (version, commit_id)
    SELECT t.version, t.commit_id
    FROM unnest(:versions::bytea[], :version_commits::bytea[]) AS t(version, commit_id)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
), new_contents AS (
    INSERT INTO contents (id, size, manifest, touched, has_chunks)
    SELECT t.id, t.size, t.manifest, :now, t.has_chunks
    FROM unnest(:content_ids::bytea[], :content_sizes::bigint[], :manifests::bytea[],
                :content_chunked::boolean[]) AS t(id, size, manifest, has_chunks)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
), touched_contents AS (
    UPDATE contents SET touched = :now
    WHERE id IN (SELECT id FROM kept) AND EXISTS (SELECT 1 FROM upd)
), withdrawals AS (
    INSERT INTO withdrawn_versions (repo, branch, key, commit_id, withdrawn)
    SELECT :repo, :branch, t.key, t.commit_id, :now
    FROM unnest(:withdrawn_keys::text[], :withdrawn_commits::bytea[]) AS t(key, commit_id)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
), new_histories AS (
    INSERT INTO commit_history (commit_id, history_root, generation)
    SELECT t.id, t.root, t.generation
    FROM unnest(:history_commits::bytea[], :history_roots::bytea[],
                :history_generations::bigint[]) AS t(id, root, generation)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
)
SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM kept), (SELECT ok FROM guard)
"""


def _positional(sql: str) -> tuple[str, list[str]]:
    """`:name` placeholders to asyncpg's `$n`, numbered by first appearance
    (a `::type` cast is not a placeholder)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return re.sub(r"(?<![:\w]):([a-z_]+)", number, sql), order


_COMMIT_CHAIN, _ORDER = _positional(_NAMED)
