"""Multipart uploads in the domain: parts stored as content, then assembled
from their chunks (no byte copied) into one object, in one commit that
consumes the upload.

A part's edge chunks (before its sync point, and its last one) are kept as
the upload's fragments (chunkstore.base.FragmentStore), not as chunks: they
depend on where the part starts, so Complete re-cuts them (content.rejoin)
and only what the object keeps becomes chunks, promoted without a rewrite.
The fragments are deleted when the upload completes, is aborted or expires;
gc removes any a crash left behind. So a multipart upload leaves no garbage.

What makes a part list acceptable (order, ETags, minimum sizes) and the
object's ETag are the protocol's rules; this module takes the parts already
chosen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from versioning import errors
from versioning.chunker import StreamChunker
from versioning.chunkstore.base import ChunkMissing, ChunkStore, FragmentStore, fragments_of
from versioning.clock import now_us
from versioning.committer import Change, Check, Committer
from versioning.content import read_piece, rejoin
from versioning.db import Database
from versioning.ids import ChunkId, CommitId, ContentId
from versioning.leases import LeasedStore
from versioning.model import ChunkRef, Completion, Manifest, ObjectEntry, Upload, UploadPart
from versioning.purge import Purges
from versioning.views import ObjectAttrs, View, new_entry

# CompleteMultipartUpload re-cuts the seams between parts (content.rejoin) so
# an edited file dedups as well as a single PUT would. Each seam reads a few
# MiB; above this many parts (~8 GiB at 8 MiB parts) the parts are joined as
# they are, so a completion never takes minutes.
REJOIN_MAX_PARTS = 1000
# Uploads read per query when listing a repo's.
LIST_PAGE = 1000

log = logging.getLogger("loxo.uploads")


class FragmentSink:
    """A ChunkSink that files a part's edge chunks as the upload's fragments."""

    def __init__(self, fragments: FragmentStore, upload_id: str) -> None:
        self.fragments = fragments
        self.upload_id = upload_id

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        await self.fragments.put_fragments(self.upload_id, chunks)
        return 0  # not chunks: nothing new in the chunk store


class _SeamSink:
    """Complete's ChunkSink: a chunk the upload holds as a fragment is leased
    and promoted (no bytes sent again), any other is stored as usual."""

    def __init__(
        self,
        leased: LeasedStore,
        fragments: FragmentStore | None,
        upload_id: str,
        fragment_ids: set[ChunkId],
    ) -> None:
        self.leased = leased
        self.fragments = fragments
        self.upload_id = upload_id
        self.fragment_ids = fragment_ids
        self.promoted: set[ChunkId] = set()

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        held = [ChunkRef(cid, len(c)) for cid, c in chunks if cid in self.fragment_ids]
        rest = [(cid, c) for cid, c in chunks if cid not in self.fragment_ids]
        await self.promote(held)
        return await self.leased.put_many(rest) if rest else 0

    async def promote(self, refs: list[ChunkRef]) -> None:
        todo = [r for r in refs if r.id not in self.promoted]
        if not todo or self.fragments is None:
            return
        # Leased before they appear as chunks, like any put (leases.py).
        await self.leased.rows.touch_chunks(todo)
        await self.fragments.promote_fragments(self.upload_id, [r.id for r in todo])
        self.promoted.update(r.id for r in todo)


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """An upload in progress and what its parts hold so far."""

    upload: Upload
    parts: int
    size: int


class Uploads:
    def __init__(
        self,
        db: Database,
        store: ChunkStore,
        committer: Committer,
        author: str,
        chunker_factory: Callable[[], StreamChunker],
        purges: Purges | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.committer = committer
        self.author = author
        self.chunker_factory = chunker_factory
        self.purges = purges or Purges(db)
        self.fragments = fragments_of(store)

    def part_sink(self, upload: Upload) -> FragmentSink | None:
        """Where a part's edge chunks go (content.ingest's `edges`), or None
        when the store keeps no fragments: then they are plain chunks."""
        return None if self.fragments is None else FragmentSink(self.fragments, upload.id)

    async def drop_fragments(self, upload_id: str) -> None:
        """Delete an upload's fragments once it is gone. Best effort: what
        is left is an orphan gc removes."""
        if self.fragments is None:
            return
        try:
            await self.fragments.delete_fragments(upload_id)
        except Exception:  # never fail the request that ended the upload
            log.warning("could not delete the fragments of upload %s", upload_id, exc_info=True)

    async def _reader(
        self, upload_id: str
    ) -> tuple[Callable[[ChunkRef], Awaitable[bytes]], set[ChunkId]]:
        """A reader of the upload's pieces (its fragments, chunks, inline
        bytes), and the ids it holds as fragments."""
        fragments = self.fragments
        ids = await fragments.fragment_ids(upload_id) if fragments is not None else set()

        async def read(ref: ChunkRef) -> bytes:
            if fragments is not None and ref.inline is None and ref.id in ids:
                return await fragments.get_fragment(upload_id, ref.id)
            return await read_piece(self.store, ref)

        return read, ids

    async def read_parts(self, upload: Upload, parts: Sequence[UploadPart]) -> AsyncIterator[bytes]:
        """Stored parts' bytes, end to end (their edges come from the
        upload's fragments, listed once)."""
        read, _ = await self._reader(upload.id)
        for part in parts:
            for ref in (await self.db.objects.get_manifest(part.content)).chunks:
                yield await read(ref)

    async def create(
        self,
        view: View,
        key: str,
        attrs: ObjectAttrs,
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
    ) -> str:
        if view.branch is None:
            raise errors.ReadOnlyRef(
                f"{view.repo} snapshot is read-only; start the upload on a branch"
            )
        # Time-ordered ids (14 hex digits of microseconds, then randomness):
        # a key's uploads listed by id are then in the order they were started.
        upload_id = f"{now_us():014x}" + os.urandom(17).hex()
        await self.db.uploads.create_upload(
            Upload(
                upload_id,
                view.repo,
                view.branch,
                key,
                now_us(),
                attrs.encode(),
                checksum_algorithm,
                checksum_type,
            )
        )
        return upload_id

    async def get(self, view: View, key: str, upload_id: str) -> Upload:
        """The upload `upload_id` of `key` on the view's branch (UploadNotFound
        when it is another's, finished or aborted)."""
        record = await self.db.uploads.get_upload(upload_id)
        if (record.repo, record.branch, record.key) != (view.repo, view.branch, key):
            raise errors.UploadNotFound(upload_id)
        return record

    async def exists(self, upload_id: str) -> bool:
        try:
            await self.db.uploads.get_upload(upload_id)
        except errors.UploadNotFound:
            return False
        return True

    async def completion(self, upload_id: str) -> Completion | None:
        """The commit that completed `upload_id`, while it is remembered (as
        long as an idle upload is kept), or None."""
        return await self.db.uploads.get_completion(upload_id)

    async def forget_completions(self, older_than_us: int) -> int:
        """Forget completions older than that; a retry after it is NoSuchUpload."""
        return await self.db.uploads.forget_completions(now_us() - older_than_us)

    async def put_part(
        self,
        upload: Upload,
        number: int,
        content: ContentId,
        size: int,
        md5: bytes,
        checksums: Mapping[str, str] | None = None,
    ) -> int:
        """Record (or replace) a part; returns its time (microseconds)."""
        created = now_us()
        try:
            await self.db.uploads.put_part(
                upload.id, UploadPart(number, content, size, md5, created, dict(checksums or {}))
            )
        except errors.UploadNotFound:
            # Aborted or completed while the part arrived: its fragments are orphans.
            await self.drop_fragments(upload.id)
            raise
        return created

    async def parts(self, upload: Upload) -> list[UploadPart]:
        """The stored parts, by part number."""
        return await self.db.uploads.list_parts(upload.id)

    async def in_progress(
        self,
        view: View,
        prefix: str,
        after_key: str,
        after_id: str,
        limit: int,
        skip_key_prefix: bool = False,
    ) -> list[Upload]:
        """In-progress uploads of the view's branch, in (key, upload id) order
        (see db.uploads.list_uploads). A snapshot has none."""
        if view.branch is None:
            return []
        return await self.db.uploads.list_uploads(
            view.repo, view.branch, prefix, after_key, after_id, limit, skip_key_prefix
        )

    async def expire(self, max_idle_us: int) -> list[str]:
        """Abort every upload idle (no creation, no part) for `max_idle_us`.
        Their parts' contents and chunks become unreferenced, for garbage
        collection to reclaim."""
        gone = await self.db.uploads.expire_uploads(now_us() - max_idle_us)
        for upload_id in gone:
            await self.drop_fragments(upload_id)
        return gone

    async def in_repo(self, repo: str, branch: str | None = None) -> list[UploadInfo]:
        """Every upload in progress in `repo` (or on one of its branches), across
        keys, with its parts' count and size, in upload id (start time) order:
        for finding the ones an interrupted client or a restart left behind."""
        await self.db.repos.get_repo(repo)
        if branch is None:
            names = [b.name for b in await self.db.refs.list_branches(repo)]
        else:
            await self.db.refs.get_branch(repo, branch)
            names = [branch]
        found: list[UploadInfo] = []
        for name in names:
            after_key = after_id = ""
            while True:
                page = await self.db.uploads.list_uploads(
                    repo, name, "", after_key, after_id, LIST_PAGE
                )
                for upload in page:
                    parts = await self.db.uploads.list_parts(upload.id)
                    found.append(UploadInfo(upload, len(parts), sum(p.size for p in parts)))
                if len(page) < LIST_PAGE:
                    break
                after_key, after_id = page[-1].key, page[-1].id
        found.sort(key=lambda u: u.upload.id)
        return found

    async def abort_by_id(
        self, repo: str, upload_id: str, branch: str | None = None, key: str | None = None
    ) -> Upload:
        """Abort the upload `upload_id` of `repo` (and, when given, of that
        branch and key): UploadNotFound when there is no such upload."""
        where = f"{repo}@{branch}" if branch else f"repo {repo}"
        missing = errors.UploadNotFound(
            f"{where} has no upload {upload_id}"
            + (f" of key {key!r}" if key else "")
            + " (completed, aborted or expired)"
        )
        try:
            record = await self.db.uploads.get_upload(upload_id)
        except errors.UploadNotFound:
            raise missing from None
        if (
            record.repo != repo
            or (branch is not None and record.branch != branch)
            or (key is not None and record.key != key)
        ):
            raise missing
        await self.abort(record)
        return record

    async def abort(self, upload: Upload) -> None:
        if not await self.db.uploads.delete_upload(upload.id):
            raise errors.UploadNotFound(upload.id)
        await self.drop_fragments(upload.id)

    async def complete(
        self,
        view: View,
        upload: Upload,
        chosen: Sequence[UploadPart],
        etag: str,
        checksums: Mapping[str, str],
        check: Check | None = None,
        author: str | None = None,
    ) -> tuple[CommitId | None, ObjectEntry]:
        """Assemble the object from `chosen` parts' chunks (no data is copied)
        and commit it, consuming the upload: UploadNotFound when a concurrent
        completion or abort got there first."""
        if view.branch is None:
            raise errors.ReadOnlyRef(f"{view.repo} snapshot is read-only")
        pieces = [list((await self.db.objects.get_manifest(p.content)).chunks) for p in chosen]
        read, fragment_ids = await self._reader(upload.id)
        sink = _SeamSink(
            LeasedStore(self.db.objects, self.store), self.fragments, upload.id, fragment_ids
        )
        try:
            if len(pieces) <= REJOIN_MAX_PARTS:
                chunks = await rejoin(pieces, read, sink, self.chunker_factory)
            else:
                chunks = [ref for refs in pieces for ref in refs]
            # Fragments the object keeps as they are (the first part's head, the
            # last part's tail, chunks after a seam came back in step) become chunks.
            await sink.promote([r for r in chunks if r.inline is None and r.id in fragment_ids])
        except ChunkMissing:
            if not await self.exists(upload.id):
                # A concurrent completion (or abort) ended the upload and
                # deleted its fragments meanwhile: the upload is what's gone.
                raise errors.UploadNotFound(upload.id) from None
            raise
        manifest = Manifest(tuple(chunks))
        if manifest.size > 0:
            await self.purges.check_write(view.repo, [manifest.id])
        content_id = await self.db.objects.put_content(manifest)
        attrs = ObjectAttrs.decode(upload.attrs)
        entry = new_entry(
            content_id, manifest.size, etag, attrs, checksums, parts=[p.size for p in chosen]
        )
        commit_id = await self.committer.submit(
            view.repo,
            view.branch,
            Change(
                edits={upload.key: entry},
                message=f"CompleteMultipartUpload {upload.key}",
                author=author or self.author,
                origin={"op": "CompleteMultipartUpload", "keys": [upload.key]},
                check=check,
                consume_upload=upload.id,
            ),
        )
        # Committed: the object's chunks are chunks now, its fragments spare.
        await self.drop_fragments(upload.id)
        return commit_id, entry
