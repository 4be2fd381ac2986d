"""The versioning service: the domain's front door for the object protocol.

s3api calls it with names and edits: it resolves views (a branch's head, a
tag, a snapshot, an open commit's staging branch), reads trees and history,
stores content and hands changes to the committer. It never sees a request.
Branch rules live in branches.py and multipart uploads in uploads.py; both
are reached through this object's `branches` and `uploads`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from versioning import errors, history, refs, tree
from versioning.branches import Branches
from versioning.chunker import StreamChunker
from versioning.chunkstore.base import ChunkStore
from versioning.committer import Change, Check, Committer
from versioning.content import (
    DEFAULT_INLINE_MAX,
    ChunkReader,
    ChunkSink,
    Hasher,
    Ingested,
    MemorySlots,
    ingest,
    stream_memory,
)
from versioning.db import Database
from versioning.ids import CommitId, ContentId, NodeId, is_commit_hex
from versioning.leases import LeasedStore, hold_existing
from versioning.model import ChunkRef, Manifest, ObjectEntry, OpenCommit, Upload
from versioning.names import new_version
from versioning.purge import Purges
from versioning.uploads import Uploads
from versioning.version_deletes import VersionDeletes, WithdrawnFilter
from versioning.views import View

_HEX = re.compile(r"^[0-9a-f]+$")
# How often set_tags re-reads an object that a concurrent write replaced.
RETAG_ATTEMPTS = 20


class Versioning:
    def __init__(
        self,
        db: Database,
        store: ChunkStore,
        author: str = "loxo",
        inline_max: int = DEFAULT_INLINE_MAX,
        chunker_factory: Callable[[], StreamChunker] = StreamChunker,
        ingest_memory: int | None = None,
    ) -> None:
        """`ingest_memory` bounds what large bodies being written hold at once
        (None: unbounded); it is divided into per-body slots (content.ingest)."""
        self.db = db
        self.store = store
        self.author = author
        self.inline_max = inline_max
        self.chunker_factory = chunker_factory
        self._slots: MemorySlots | None = None
        if ingest_memory is not None:
            per_body = stream_memory(chunker_factory().max_size)
            self._slots = MemorySlots(max(2, ingest_memory // per_body))
        self.committer = Committer(db)
        self.branches = Branches(db)
        self.purges = Purges(db)
        self.uploads = Uploads(db, store, self.committer, author, chunker_factory, self.purges)
        self.version_deletes = VersionDeletes(self, self.committer, author)

    async def ping(self) -> None:
        """Raise unless the metadata database answers."""
        await self.db.ping()

    # -- views -----------------------------------------------------------------

    async def branch_view(self, repo: str, name: str | None) -> View:
        """A branch's head (None: the repo's default branch)."""
        if name is None:
            name = await self.branches.default_branch(repo)
        branch = await self.db.refs.get_branch(repo, name)
        return await self._view_of(repo, name, branch.head)

    async def named_view(self, repo: str, name: str | None) -> View:
        """A branch's view (None: the default branch); when `name` is a tag,
        the tagged commit's (read-only) view; when it is a unique prefix of
        at least MIN_PREFIX hex digits, that commit's (read-only) view or that
        open commit's staging branch. BranchNotFound when it is none of these,
        AmbiguousRef when the prefix matches several."""
        try:
            return await self.branch_view(repo, name)
        except errors.BranchNotFound:
            if name is None:
                raise
            tag = await self.db.refs.get_tag(repo, name)
            if tag is not None:
                view = await self._view_of(repo, None, tag.commit)
                return dataclasses.replace(view, tag=name)
            if len(name) < refs.MIN_PREFIX or not _HEX.match(name):
                raise
            return await self._prefix_view(repo, name)

    async def _prefix_view(self, repo: str, prefix: str) -> View:
        commits = await self.db.objects.commits_with_prefix(repo, prefix, limit=2)
        opened = [
            o.id
            for o in await self.db.open_commits.list_open_commits(repo)
            if o.id.hex().startswith(prefix) and not o.finishing
        ]
        found = commits + opened
        if not found:
            raise errors.BranchNotFound(f"{repo}@{prefix}: no branch, tag or commit matches")
        if len(found) > 1:
            raise errors.AmbiguousRef(
                f"{repo}.{prefix}: the prefix matches several commits; give more digits"
            )
        if commits:
            return await self._view_of(repo, None, commits[0])
        return await self.branch_view(repo, OpenCommit.staging_name(found[0]))

    async def snapshot_view(self, repo: str, commit_hex: str) -> View:
        """The commit `commit_hex` names, read-only; or, when it is an open
        commit's id, the open commit's staging branch (writable)."""
        await self.db.repos.get_repo(repo)
        try:
            return await self._view_of(
                repo, None, CommitId(bytes.fromhex(commit_hex)), check_repo=True
            )
        except errors.CommitNotFound:
            # Not a commit of the repo: perhaps an open commit's random id.
            staging = await self.open_staging(repo, commit_hex)
            if staging is None:
                raise
            return await self.branch_view(repo, staging)

    async def open_staging(self, repo: str, commit_hex: str) -> str | None:
        """The staging branch of the open commit `commit_hex`, if it is one
        (and is not being finished)."""
        if not is_commit_hex(commit_hex):
            return None
        name = OpenCommit.staging_name(CommitId(bytes.fromhex(commit_hex)))
        try:
            await self.branches.require_branch(repo, name)
        except errors.NotFound:
            return None
        return name

    async def write_target(self, repo: str, name: str | None) -> str:
        """The branch a write to `repo.name` lands on (None: the default),
        checked to exist (BranchNotFound for a tag or nothing)."""
        if name is None:
            name = await self.branches.default_branch(repo)
        await self.branches.require_branch(repo, name)
        return name

    async def _view_of(
        self, repo: str, branch: str | None, head: CommitId | None, check_repo: bool = False
    ) -> View:
        """The view at `head`. A head read from a ref (or found among the
        repo's commits) just now is the repo's; a commit id the caller gave
        (`check_repo`) is checked to be one of the repo's in the database."""
        if head is None:
            return View(repo, branch, None, None)
        commit = await self.db.objects.get_commit(head, repo=repo if check_repo else None)
        return View(repo, branch, head, NodeId(commit.tree) if commit.tree else None)

    # -- reading ---------------------------------------------------------------

    async def get_entry(self, view: View, key: str) -> ObjectEntry:
        entry = await tree.lookup(self.db.objects, view.root, key)
        if entry is None:
            raise errors.ObjectNotFound(key)
        return entry

    def iterate(self, view: View, start: str = "") -> AsyncIterator[tuple[str, ObjectEntry]]:
        return tree.iterate(self.db.objects, view.root, start)

    async def count(self, view: View) -> tuple[int, int]:
        return await tree.stats(self.db.objects, view.root)

    async def source_entry(self, view: View, key: str) -> ObjectEntry:
        """The entry whose body a copy will read or share: ObjectNotFound, or
        ContentPurged when its body was purged from the view's repo."""
        entry = await self.get_entry(view, key)
        await self.purges.check_read(view.repo, entry.content)
        return entry

    async def reader(self, entry: ObjectEntry, repo: str) -> ChunkReader:
        """The body of an entry of `repo`: ContentPurged when it was purged there."""
        await self.purges.check_read(repo, entry.content)
        return ChunkReader(self.store, await self.db.objects.get_manifest(entry.content))

    async def read_content(self, content: ContentId) -> AsyncIterator[bytes]:
        """The bytes of an upload part's body (object bodies: `reader`)."""
        reader = ChunkReader(self.store, await self.db.objects.get_manifest(content))
        async for piece in reader.read():
            yield piece

    async def small_content(self, repo: str, content: ContentId, limit: int) -> bytes | None:
        """A body of `repo` whole, when it is at most `limit` bytes (None when
        larger, or purged there: the caller reads it the usual way and gets
        the usual answer)."""
        try:
            await self.purges.check_read(repo, content)
        except errors.ContentPurged:
            return None
        reader = ChunkReader(self.store, await self.db.objects.get_manifest(content))
        if reader.size > limit:
            return None
        return b"".join([piece async for piece in reader.read()])

    async def commit_of(self, entry: ObjectEntry) -> CommitId | None:
        return await self.db.objects.commit_of_version(entry.version)

    async def commit_time(self, commit_id: CommitId) -> int:
        """When a commit was made (microseconds): the last_modified of what it wrote."""
        return (await self.db.objects.get_commit(commit_id)).time

    async def check(self, view: View, check: Check) -> None:
        """Run a write's precondition against the view's tree now (the
        committer runs it again against the tree the write lands on)."""
        await check(self.db.objects, view.root)

    # -- history -----------------------------------------------------------------

    async def history_records(self, view: View, seek: str = "") -> AsyncIterator[history.Record]:
        """The view's history: for each key from `seek` on (in order), the
        commits that changed it, newest first (see history.records). A
        branch's view leaves out the versions withdrawn from it
        (version_deletes.py); a snapshot's has them all."""
        root = (await self.db.objects.get_history(view.commit))[0] if view.commit else None
        hidden = WithdrawnFilter(self.db, view.repo, view.branch) if view.branch else None
        async for record in history.records(self.db.objects, root, seek):
            if hidden is not None and await hidden.contains(record.key, record.commit):
                continue
            yield record

    async def is_withdrawn(self, repo: str, branch: str | None, key: str, commit_hex: str) -> bool:
        """Whether that version of `key` was withdrawn from the branch (None:
        the default branch); False for a tag or a missing branch."""
        if branch is None:
            branch = await self.branches.default_branch(repo)
        commit = CommitId(bytes.fromhex(commit_hex))
        return await self.db.withdrawn.is_withdrawn(repo, branch, key, commit)

    async def latest_record(self, view: View, key: str) -> history.Record | None:
        """The newest history record of `key` as of the view's commit."""
        async for record in self.history_records(view, key + history.SEPARATOR):
            return record if record.key == key else None
        return None

    # -- writing ---------------------------------------------------------------

    async def store_content(
        self,
        pieces: AsyncIterator[bytes],
        hashers: Mapping[str, Hasher] | None = None,
        register: bool = True,
    ) -> tuple[ContentId, Ingested]:
        """Store a streamed body's chunks durably; returns its content id.
        Nothing is visible until a commit references it. With register=False
        the manifest row is left to the commit (pass `result.manifest` in its
        `contents`), saving a round trip."""
        result = await self._ingest(pieces, hashers)
        if register:
            return await self.db.objects.put_content(result.manifest), result
        return result.manifest.id, result

    async def store_part(
        self,
        upload: Upload,
        pieces: AsyncIterator[bytes],
        hashers: Mapping[str, Hasher] | None = None,
    ) -> tuple[ContentId, Ingested]:
        """store_content for a part of `upload`: its edge chunks become the
        upload's fragments rather than chunks (see uploads.py)."""
        result = await self._ingest(pieces, hashers, edges=self.uploads.part_sink(upload))
        return await self.db.objects.put_content(result.manifest), result

    async def commit(
        self,
        view: View,
        edits: Mapping[str, ObjectEntry | None],
        message: str,
        origin: dict[str, Any],
        check: Check | None = None,
        contents: Sequence[Manifest] = (),
        skip_same: bool = False,
        author: str | None = None,
    ) -> CommitId | None:
        """Commit `edits` on the view's branch as exactly one commit (None when
        they change nothing), by `author` (the protocol's user; None: the
        service's default). `contents` are manifests not yet registered.
        With `skip_same`, an edit writing what its path already holds (the
        same body and attributes) changes nothing."""
        if view.branch is None:
            raise errors.ReadOnlyRef(
                f"{view.repo}.{view.commit.hex() if view.commit else ''} is a commit "
                "snapshot, and snapshots are read-only; write to a branch instead"
            )
        await self.purges.check_write(
            view.repo, [e.content for e in edits.values() if e is not None and e.size > 0]
        )
        change = Change(
            edits=edits,
            message=message,
            author=author or self.author,
            origin=origin,
            check=check,
            contents=contents,
            skip_same=skip_same,
        )
        try:
            return await self.committer.submit(view.repo, view.branch, change)
        except errors.BranchNotFound:
            # Gone when the commit looked: another server deleted it after
            # write_target last saw it here. If its name is a tag now, answer
            # as a write that looked the name up first would.
            self.branches.forget_branch(view.repo, view.branch)
            if await self.db.refs.get_tag(view.repo, view.branch) is not None:
                raise errors.ReadOnlyRef(
                    f"{view.repo}.{view.branch} is a tag; tags are read-only"
                ) from None
            raise

    async def set_tags(
        self,
        view: View,
        key: str,
        tags: Mapping[str, str],
        expect: ObjectEntry | None = None,
        message: str = "",
        origin: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> tuple[CommitId | None, ObjectEntry]:
        """Give the current object at `key` on the view's branch the tag set
        `tags`, in ONE commit that rewrites its entry with the same content,
        ETag, size, attributes and checksums and a new version (so the commit
        is the object's new version). Returns (commit, entry); the commit is
        None when the tags were already those, and nothing is written.

        Atomic: the commit applies only if the object is still the one whose
        tags were replaced. A concurrent write to the key makes it start over
        on the new object; with `expect` (a specific version must be the
        current one) it is PreconditionFailed instead. ObjectNotFound when
        the key is absent."""
        if view.branch is None:
            raise errors.ReadOnlyRef(f"{view.repo} snapshot is read-only; tags cannot change")
        wanted = dict(tags)
        for _ in range(RETAG_ATTEMPTS):
            head = await self.branch_view(view.repo, view.branch)
            entry = await self.get_entry(head, key)
            if expect is not None and entry.version != expect.version:
                raise errors.PreconditionFailed(
                    f"{key} changed since that version was read; only the current version's "
                    "tags can change"
                )
            if entry.tags == wanted:
                return None, entry
            new = dataclasses.replace(entry, tags=wanted, version=new_version())
            seen = entry.version

            async def unchanged(src: tree.NodeSource, root: tree.Root, seen: Any = seen) -> None:
                now = await tree.lookup(src, root, key)
                if now is None:
                    raise errors.ObjectNotFound(key)
                if now.version != seen:
                    raise errors.PreconditionFailed(f"{key} was replaced meanwhile")

            try:
                commit = await self.commit(
                    head,
                    {key: new},
                    message=message,
                    origin=origin or {},
                    check=unchanged,
                    author=author,
                )
            except errors.PreconditionFailed:
                if expect is not None:
                    raise
                continue  # replaced by a concurrent write: tag the new object
            return commit, new
        raise errors.ConcurrentUpdate(f"{view.repo}.{view.branch}: {key} keeps being replaced")

    async def copy_range(
        self,
        entry: ObjectEntry,
        start: int,
        end: int,
        hashers: Mapping[str, Hasher] | None = None,
        known_md5: bytes | None = None,
    ) -> tuple[ContentId, int, bytes]:
        """Bytes [start, end) of an object as new content, for UploadPartCopy;
        returns (content id, size, MD5 of those bytes).

        Every chunk the range covers whole is referenced, not copied. A chunk
        cut by either end of the range cannot be referenced (a manifest lists
        whole chunks), so just its covered bytes are stored as new content:
        at most two partial chunks, a few MiB, whatever the size of the range.
        The MD5 needs every byte of the range, so the range is read, unless
        the caller knows the MD5 of the whole body (`known_md5`) and the
        range is all of it. `hashers` are fed the range's bytes too (they
        force the read).
        """
        if start == 0 and end == entry.size and known_md5 is not None and not hashers:
            return entry.content, entry.size, known_md5
        # (The caller found `entry` with source_entry, which refuses purged bodies.)
        reader = ChunkReader(self.store, await self.db.objects.get_manifest(entry.content))
        md5 = hashlib.md5()
        chunks: list[ChunkRef] = []
        async for ref, piece in reader.read_chunks(start, end):
            await asyncio.to_thread(_feed, md5, hashers, piece)
            if len(piece) == ref.size:
                chunks.append(ref)
            else:
                chunks.extend((await self._ingest(_one(piece))).manifest.chunks)
        await hold_existing(self.db.objects, self.store, chunks)
        part = Manifest(tuple(chunks))
        return await self.db.objects.put_content(part), part.size, md5.digest()

    async def _ingest(
        self,
        pieces: AsyncIterator[bytes],
        hashers: Mapping[str, Hasher] | None = None,
        edges: ChunkSink | None = None,
    ) -> Ingested:
        return await ingest(
            pieces,
            LeasedStore(self.db.objects, self.store),
            hashers,
            chunker_factory=self.chunker_factory,
            inline_max=self.inline_max,
            slots=self._slots,
            edges=edges,
        )


def _feed(md5: Any, hashers: Mapping[str, Hasher] | None, piece: bytes) -> None:
    md5.update(piece)
    for hasher in (hashers or {}).values():
        hasher.update(piece)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
