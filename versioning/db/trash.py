"""The trash: deleted repos and branches, kept restorable until they expire.

Deleting moves the live rows here (migration 0008 says how) inside the
deleting transaction, so the names are free for reuse at once; restoring
moves them back. Garbage collection reads trashed heads as roots
(catalog.heads) and purges expired entries (catalog.purge_trash).
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from versioning import errors
from versioning.db.objects import PgObjects
from versioning.db.ref_guard import lock_repo
from versioning.ids import CommitId
from versioning.model import Branch, Repo, TrashEntry

STASH_PREFIX = "_trash-"  # never a repo name: names start with [a-z0-9]


class TrashStore(Protocol):
    async def list_trash(
        self, now: int, repo: str | None = None, kind: str | None = None
    ) -> list[TrashEntry]: ...
    async def restore_repo(self, name: str, target: str, now: int) -> Repo: ...
    async def restore_branch(self, repo: str, name: str, target: str, now: int) -> Branch: ...


async def trash_branch(
    conn: asyncpg.Connection,
    repo: str,
    name: str,
    head: CommitId | None,
    created: int,
    now: int,
    keep_us: int,
) -> None:
    """Inside the deleting transaction, before the branch row goes: keep the
    branch (and the versions withdrawn from its listing) in the trash."""
    tid = await conn.fetchval(
        "INSERT INTO trash (kind, repo, name, created, deleted_at, expires_at) "
        "VALUES ('branch', $1, $2, $3, $4, $5) RETURNING id",
        repo,
        name,
        created,
        now,
        now + keep_us,
    )
    await conn.execute(
        "INSERT INTO trash_refs (trash_id, kind, name, head, created) "
        "VALUES ($1, 'branch', $2, $3, $4)",
        tid,
        name,
        head,
        created,
    )
    await conn.execute(
        "INSERT INTO trash_withdrawn (trash_id, branch, key, commit_id, withdrawn) "
        "SELECT $1, branch, key, commit_id, withdrawn FROM withdrawn_versions "
        "WHERE repo = $2 AND branch = $3",
        tid,
        repo,
        name,
    )


async def trash_repo(conn: asyncpg.Connection, name: str, now: int, keep_us: int) -> None:
    """Inside the deleting transaction, before the repo's rows go: keep its
    branches, tags and withdrawn versions in the trash, and rename its
    commits (and its branches' trash entries) to the entry's stash, so that
    a new repo of the same name sees none of them."""
    row = await conn.fetchrow(
        "SELECT default_branch, created FROM repos WHERE name = $1 FOR UPDATE", name
    )
    if row is None:
        raise errors.RepoNotFound(name)
    tid = await conn.fetchval(
        "INSERT INTO trash (kind, repo, name, default_branch, created, deleted_at, expires_at) "
        "VALUES ('repo', $1, $1, $2, $3, $4, $5) RETURNING id",
        name,
        row["default_branch"],
        row["created"],
        now,
        now + keep_us,
    )
    stash = f"{STASH_PREFIX}{tid}"
    await conn.execute("UPDATE trash SET stash = $2 WHERE id = $1", tid, stash)
    await conn.execute(
        "INSERT INTO trash_refs (trash_id, kind, name, head, created) "
        "SELECT $1::bigint, 'branch', name, head, created FROM branches "
        "WHERE repo = $2 AND name NOT LIKE '\\_%' "
        "UNION ALL SELECT $1::bigint, 'tag', name, commit_id, created FROM tags WHERE repo = $2",
        tid,
        name,
    )
    await conn.execute(
        "INSERT INTO trash_withdrawn (trash_id, branch, key, commit_id, withdrawn) "
        "SELECT $1, branch, key, commit_id, withdrawn FROM withdrawn_versions "
        "WHERE repo = $2 AND branch NOT LIKE '\\_%'",
        tid,
        name,
    )
    await conn.execute("UPDATE commits SET repo = $2 WHERE repo = $1", name, stash)
    await conn.execute(
        "UPDATE trash SET repo = $2 WHERE kind = 'branch' AND repo = $1", name, stash
    )


async def forget_trashed_branches(conn: asyncpg.Connection, repo: str) -> None:
    """A repo deleted for good takes its branches' trash entries with it."""
    await conn.execute("DELETE FROM trash WHERE kind = 'branch' AND repo = $1", repo)


class PgTrash:
    def __init__(self, pool: asyncpg.Pool, objects: PgObjects) -> None:
        self.pool = pool
        self.objects = objects

    async def list_trash(
        self, now: int, repo: str | None = None, kind: str | None = None
    ) -> list[TrashEntry]:
        """Unexpired entries, of one repo's name (its own entry and its
        branches') or all, newest deletion first."""
        rows = await self.pool.fetch(
            "SELECT t.id, t.kind, t.repo, t.name, t.default_branch, t.deleted_at, t.expires_at, "
            "array_agg(r.kind) FILTER (WHERE r.kind IS NOT NULL) AS kinds, "
            "array_agg(r.name) FILTER (WHERE r.kind IS NOT NULL) AS names, "
            "array_agg(r.head) FILTER (WHERE r.kind IS NOT NULL) AS heads "
            "FROM trash t LEFT JOIN trash_refs r ON r.trash_id = t.id "
            "WHERE t.expires_at > $1 AND t.repo NOT LIKE '\\_%' "
            "AND ($2::text IS NULL OR t.repo = $2) AND ($3::text IS NULL OR t.kind = $3) "
            "GROUP BY t.id ORDER BY t.deleted_at DESC, t.id DESC",
            now,
            repo,
            kind,
        )
        out = []
        for r in rows:
            refs = list(zip(r["kinds"] or [], r["names"] or [], r["heads"] or [], strict=True))
            branches = sorted(n for k, n, _ in refs if k == "branch")
            tags = sorted(n for k, n, _ in refs if k == "tag")
            wanted = r["name"] if r["kind"] == "branch" else r["default_branch"]
            head = next((h for k, n, h in refs if k == "branch" and n == wanted), None)
            out.append(
                TrashEntry(
                    id=r["id"],
                    kind=r["kind"],
                    repo=r["repo"],
                    name=r["name"],
                    head=CommitId(head) if head is not None else None,
                    deleted=r["deleted_at"],
                    expires=r["expires_at"],
                    default_branch=r["default_branch"],
                    branches=tuple(branches) if r["kind"] == "repo" else (),
                    tags=tuple(tags),
                )
            )
        return out

    async def restore_repo(self, name: str, target: str, now: int) -> Repo:
        """Put back the newest unexpired trashed repo `name` as `target`,
        with every branch and tag it had. RepoExists when `target` is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            entry = await conn.fetchrow(
                "SELECT id, default_branch, stash, created FROM trash "
                "WHERE kind = 'repo' AND repo = $1 AND expires_at > $2 "
                "ORDER BY deleted_at DESC, id DESC LIMIT 1 FOR UPDATE",
                name,
                now,
            )
            if entry is None:
                raise errors.TrashNotFound(f"no repo {name} in the trash (or it expired)")
            tid, stash = entry["id"], entry["stash"]
            try:
                await conn.execute(
                    "INSERT INTO repos (name, default_branch, created) VALUES ($1, $2, $3)",
                    target,
                    entry["default_branch"],
                    entry["created"],
                )
            except asyncpg.UniqueViolationError:
                raise errors.RepoExists(
                    f"a repo named {target} exists (created after {name} was deleted); "
                    "restore under another name, or delete that repo first"
                ) from None
            await conn.execute("UPDATE commits SET repo = $2 WHERE repo = $1", stash, target)
            await conn.execute(
                "UPDATE trash SET repo = $2 WHERE kind = 'branch' AND repo = $1", stash, target
            )
            await conn.execute(
                "INSERT INTO branches (repo, name, head, created) "
                "SELECT $2, name, head, created FROM trash_refs "
                "WHERE trash_id = $1 AND kind = 'branch'",
                tid,
                target,
            )
            await conn.execute(
                "INSERT INTO tags (repo, name, commit_id, created) "
                "SELECT $2, name, head, created FROM trash_refs "
                "WHERE trash_id = $1 AND kind = 'tag'",
                tid,
                target,
            )
            await conn.execute(
                "INSERT INTO withdrawn_versions (repo, branch, key, commit_id, withdrawn) "
                "SELECT $2, branch, key, commit_id, withdrawn FROM trash_withdrawn "
                "WHERE trash_id = $1",
                tid,
                target,
            )
            await conn.execute("DELETE FROM trash WHERE id = $1", tid)
        self.objects.forget_repo(target)
        return Repo(target, entry["default_branch"], entry["created"])

    async def restore_branch(self, repo: str, name: str, target: str, now: int) -> Branch:
        """Put back the newest unexpired trashed branch `name` of `repo` as
        `target`. BranchExists/TagExists when `target` is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            # Serializes with ref creation in the repo (ref_guard.claim_name).
            await lock_repo(conn, repo)
            entry = await conn.fetchrow(
                "SELECT t.id, r.head, r.created FROM trash t "
                "JOIN trash_refs r ON r.trash_id = t.id AND r.kind = 'branch' "
                "WHERE t.kind = 'branch' AND t.repo = $1 AND t.name = $2 AND t.expires_at > $3 "
                "ORDER BY t.deleted_at DESC, t.id DESC LIMIT 1 FOR UPDATE OF t",
                repo,
                name,
                now,
            )
            if entry is None:
                raise errors.TrashNotFound(f"no branch {repo}@{name} in the trash (or it expired)")
            if await conn.fetchval(
                "SELECT 1 FROM tags WHERE repo = $1 AND name = $2", repo, target
            ):
                raise errors.TagExists(
                    f"{repo}@{target} is a tag now; restore the branch under another name"
                )
            try:
                await conn.execute(
                    "INSERT INTO branches (repo, name, head, created) VALUES ($1, $2, $3, $4)",
                    repo,
                    target,
                    entry["head"],
                    entry["created"],
                )
            except asyncpg.UniqueViolationError:
                raise errors.BranchExists(
                    f"{repo}@{target} exists (created after the delete); restore the branch "
                    "under another name, or delete that branch first"
                ) from None
            await conn.execute(
                "INSERT INTO withdrawn_versions (repo, branch, key, commit_id, withdrawn) "
                "SELECT $2, $3, key, commit_id, withdrawn FROM trash_withdrawn "
                "WHERE trash_id = $1",
                entry["id"],
                repo,
                target,
            )
            await conn.execute("DELETE FROM trash WHERE id = $1", entry["id"])
        head = entry["head"]
        return Branch(repo, target, CommitId(head) if head is not None else None, entry["created"])
