"""Pointing a ref at a commit safely: the transaction every ref move runs in.

Garbage collection marks from the refs it reads, so a ref moved to a commit
gc has not marked could see it swept. A move therefore checks, inside its
transaction, that no gc is running (the shared MOVE_LOCK, which gc holds
exclusively from before its mark) or that a ref already names the target.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from versioning import errors
from versioning.catalog import MOVE_LOCK
from versioning.ids import CommitId


@contextlib.asynccontextmanager
async def ref_move(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that points a ref at a commit (see guard_target)."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    except asyncpg.DeadlockDetectedError:
        # Two moves each holding the ref the other's target is named by.
        raise errors.ConcurrentUpdate("a concurrent ref move got in the way; try again") from None


async def guard_target(conn: asyncpg.Connection, repo: str, target: CommitId) -> None:
    """Check, inside a ref move's transaction, that `target` is a commit of
    `repo` and that gc cannot sweep it (catalog.MOVE_LOCK)."""
    row = await conn.fetchrow(GUARD_TARGET, repo, target, MOVE_LOCK)
    assert row is not None
    if not row["known"]:
        raise errors.CommitNotFound(f"{repo}@{target.hex()}")
    if not row["safe"]:
        raise errors.Busy(
            "garbage collection is running, and this commit is not a branch head or "
            "tag, so nothing may point at it until gc finishes; try again shortly"
        )


async def lock_repo(conn: asyncpg.Connection, repo: str) -> None:
    """Inside a transaction: queue behind every other ref creation, restore
    or branch delete in `repo` (RepoNotFound when there is no such repo).
    FOR NO KEY UPDATE, so inserts' foreign-key checks do not wait on it."""
    locked = await conn.fetchval("SELECT 1 FROM repos WHERE name = $1 FOR NO KEY UPDATE", repo)
    if locked is None:
        raise errors.RepoNotFound(repo)


async def claim_name(conn: asyncpg.Connection, repo: str, name: str, other: str) -> None:
    """Inside a transaction creating a branch or tag `name`: serialize ref
    creation in the repo and refuse a name the other kind (`other`: the
    table "tags" or "branches") already has. Branches and tags share one
    namespace, so a ref never names two things."""
    await lock_repo(conn, repo)
    if await conn.fetchval(f"SELECT 1 FROM {other} WHERE repo = $1 AND name = $2", repo, name):
        kind = errors.TagExists if other == "tags" else errors.BranchExists
        raise kind(f"{repo}@{name} is a {'tag' if other == 'tags' else 'branch'}")


# A ref may be pointed at `target` when it is a commit of the repo and either
# no gc is running (the shared MOVE_LOCK; gc holds it exclusively from before
# its mark), or a ref names it already, which makes it reachable in any mark
# a running gc made: every way a ref came to name it was itself safe.
GUARD_TARGET = """
SELECT EXISTS (SELECT 1 FROM commits WHERE id = $2 AND repo = $1) AS known,
       pg_try_advisory_xact_lock_shared($3)
       OR EXISTS (SELECT 1 FROM branches WHERE repo = $1 AND head = $2 FOR SHARE)
       OR EXISTS (SELECT 1 FROM tags WHERE repo = $1 AND commit_id = $2 FOR SHARE) AS safe
"""
# (FOR SHARE: the ref that names the target cannot be moved or deleted until
# this transaction commits, so a gc that reads its roots after that sees
# either that ref or the moved one.)
