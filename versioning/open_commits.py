"""Open commits: many writes (any S3 writes, from any clients) made ONE commit.

Starting one creates a hidden staging branch at the branch's head; its
bucket `repo.<id>` takes the writes. Finishing freezes the staging branch
(so a racing write either made it in or fails), then applies what it
changed, path by path, onto the branch's current head as one commit that
consumes the open commit in the same statement. Idle ones are aborted.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from versioning import commit_log, errors, refs
from versioning.branches import visible
from versioning.clock import now_us
from versioning.committer import Change, Committer
from versioning.db import Database
from versioning.ids import CommitId
from versioning.model import ObjectEntry, OpenCommit
from versioning.names import new_version

DEFAULT_OPEN_IDLE_SECONDS = 3600.0


class OpenCommits:
    def __init__(
        self,
        db: Database,
        committer: Committer,
        author: str,
        idle_seconds: float = DEFAULT_OPEN_IDLE_SECONDS,
    ) -> None:
        self.db = db
        self.committer = committer
        self.author = author
        self.idle_seconds = idle_seconds

    async def start(
        self, repo: str, branch: str, idle_seconds: float | None = None, author: str | None = None
    ) -> OpenCommit:
        visible(repo, branch)
        head = (await self.db.refs.get_branch(repo, branch)).head
        record = OpenCommit(
            id=CommitId(os.urandom(16)),
            repo=repo,
            branch=branch,
            base=head,
            created=now_us(),
            idle_us=int((idle_seconds or self.idle_seconds) * 1_000_000),
            author=author or self.author,
        )
        await self.db.open_commits.create_open_commit(record)
        return record

    async def get(self, repo: str, ident: str) -> OpenCommit:
        """An open commit by its id or a unique prefix of >= 8 hex digits."""
        found = [
            r
            for r in await self.db.open_commits.list_open_commits(repo)
            if r.id.hex().startswith(ident)
        ]
        if len(ident) < refs.MIN_PREFIX or not found:
            await self.db.repos.get_repo(repo)
            raise errors.OpenCommitNotFound(f"{repo}@{ident}: no open commit has this id")
        if len(found) > 1:
            raise errors.AmbiguousRef(f"{repo}@{ident} matches several open commits")
        return found[0]

    async def in_repo(self, repo: str) -> list[OpenCommit]:
        await self.db.repos.get_repo(repo)
        return await self.db.open_commits.list_open_commits(repo)

    async def finish(
        self, repo: str, ident: str, message: str, origin: dict[str, Any] | None = None
    ) -> CommitId | None:
        """Make everything written to the open commit ONE commit on its branch,
        on top of the branch's current head (its changes are path-level edits,
        so writes the branch got meanwhile to other paths are kept). None when
        nothing was written."""
        record = await self.get(repo, ident)
        store = self.db.open_commits
        frozen = await store.freeze_open_commit(repo, record.id)
        base = await self.db.objects.get_commit(record.base) if record.base else None
        staged = await self.db.objects.get_commit(frozen) if frozen else None
        edits: dict[str, ObjectEntry | None] = {}
        async for change in commit_log.changes(
            self.db.objects, commit_log.tree_of(base), commit_log.tree_of(staged)
        ):
            # A fresh version: the version names the commit that made it.
            edits[change.path] = (
                dataclasses.replace(change.after, version=new_version()) if change.after else None
            )
        if not edits:
            await store.delete_open_commit(repo, record.id)
            return None
        try:
            return await self.committer.submit(
                repo,
                record.branch,
                Change(
                    edits=edits,
                    message=message,
                    author=record.author,
                    origin={"op": "commit", "open_commit": record.id.hex(), **(origin or {})},
                    consume_open=record.id,
                ),
            )
        except errors.BranchNotFound:
            # The branch went away meanwhile: this can never be finished.
            await store.delete_open_commit(repo, record.id)
            raise errors.BranchNotFound(
                f"{repo}@{record.branch} was deleted; open commit {record.id.hex()} is aborted"
            ) from None

    async def abort(self, repo: str, ident: str) -> None:
        record = await self.get(repo, ident)
        if not await self.db.open_commits.delete_open_commit(repo, record.id):
            raise errors.OpenCommitNotFound(f"{repo}@{ident}")

    async def expire(self) -> list[OpenCommit]:
        """Abort open commits idle for longer than their limit."""
        return await self.db.open_commits.expire_open_commits(now_us())
