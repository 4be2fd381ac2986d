"""The versioning service: repos, branches, snapshots, object reads and writes.

This is the domain's front door. Protocol layers (S3 today, the control API
later) call it with names and edits; it validates names, reads trees, stores
content and hands changes to the committer. It never sees a request.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from versioning import errors, tree
from versioning.chunker import StreamChunker
from versioning.chunkstore.base import ChunkStore
from versioning.committer import Change, Check, Committer
from versioning.content import (
    DEFAULT_INLINE_MAX,
    ChunkReader,
    Hasher,
    Ingested,
    ingest,
    read_piece,
    rejoin,
    stream_memory,
)
from versioning.ids import CommitId, ContentId, NodeId, VersionId
from versioning.leases import LeasedStore, hold_existing
from versioning.metadata import Metadata, OpenCommitRecord, PartRecord, UploadRecord, now_us
from versioning.model import Branch, ChunkRef, Manifest, ObjectEntry, Repo, pack, unpack
from versioning.tree import Root

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
COMMIT_HEX = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_BRANCH = "main"
MAX_PARTS = 10_000
BRANCH_SEEN_SECONDS = 2.0
# CompleteMultipartUpload re-cuts the seams between parts (content.rejoin) so
# an edited file dedups as well as a single PUT would. Each seam reads a few
# MiB; above this many parts (~8 GiB at 8 MiB parts) the parts are joined as
# they are, so a completion never takes minutes.
REJOIN_MAX_PARTS = 1000


# A repo's buckets are `repo`, `repo.<branch or tag>` and `repo.<32-hex
# commit>`, and S3 bucket names are 3 to 63 characters: so a repo name is at
# most 30, and a branch or tag name fits the rest of 63.
MAX_BUCKET = 63
MAX_REPO = MAX_BUCKET - 1 - 32
MIN_REPO = 3


def check_repo_name(name: str) -> None:
    if not NAME.match(name):
        raise errors.InvalidName(
            f"invalid repo name {name!r}: use lowercase letters, digits and hyphens"
        )
    if not MIN_REPO <= len(name) <= MAX_REPO:
        raise errors.InvalidName(
            f"invalid repo name {name!r}: use {MIN_REPO} to {MAX_REPO} characters (its "
            f"snapshot buckets, {name}.<32-hex commit id>, must fit S3's 63)"
        )


def check_branch_name(name: str, repo: str = "") -> None:
    if not NAME.match(name):
        raise errors.InvalidName(
            f"invalid branch name {name!r}: use lowercase letters, digits and hyphens"
        )
    if repo and len(repo) + 1 + len(name) > MAX_BUCKET:
        raise errors.InvalidName(
            f"branch or tag name {name!r} is too long for repo {repo}: the bucket "
            f"{repo}.{name} would be over {MAX_BUCKET} characters"
        )
    if COMMIT_HEX.match(name):
        raise errors.InvalidName(f"branch name {name!r} would read as a commit id")


def new_version() -> VersionId:
    return VersionId(os.urandom(16))


@dataclass(frozen=True, slots=True)
class View:
    """A readable state of a repo: a branch's head, or a fixed commit."""

    repo: str
    branch: str | None  # None for a snapshot
    commit: CommitId | None  # None for a branch with no commits yet
    root: Root

    @property
    def writable(self) -> bool:
        return self.branch is not None


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """Attributes given when an object is written, before content is known."""

    content_type: str
    metadata: Mapping[str, str]
    headers: Mapping[str, str]

    def encode(self) -> bytes:
        return pack(
            [self.content_type, sorted(self.metadata.items()), sorted(self.headers.items())]
        )

    @staticmethod
    def decode(data: bytes) -> ObjectAttrs:
        w = unpack(data)
        return ObjectAttrs(w[0], dict(w[1]), dict(w[2]))


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int
    last_modified: int
    checksums: Mapping[str, str] = field(default_factory=dict)


class Versioning:
    def __init__(
        self,
        meta: Metadata,
        store: ChunkStore,
        author: str = "loxo",
        inline_max: int = DEFAULT_INLINE_MAX,
        chunker_factory: Callable[[], StreamChunker] = StreamChunker,
        ingest_memory: int | None = None,
    ) -> None:
        """`ingest_memory` bounds what large bodies being written hold at once
        (None: unbounded); it is divided into per-body slots (content.ingest)."""
        self.meta = meta
        self.store = store
        self.author = author
        self.inline_max = inline_max
        self.chunker_factory = chunker_factory
        self._slots: asyncio.Semaphore | None = None
        if ingest_memory is not None:
            per_body = stream_memory(chunker_factory().max_size)
            self._slots = asyncio.Semaphore(max(2, ingest_memory // per_body))
        self.committer = Committer(meta)
        # Branches seen to exist, until a monotonic deadline: a write only
        # needs to know its branch exists to accept the body, and the commit's
        # compare-and-set is the authority anyway.
        self._seen_branches: dict[tuple[str, str], float] = {}

    # -- repos and branches --------------------------------------------------

    async def create_repo(self, name: str) -> Repo:
        check_repo_name(name)
        return await self.meta.create_repo(name, DEFAULT_BRANCH)

    async def create_branch(self, repo: str, name: str, create_repo: bool = True) -> Branch:
        """Create `repo.name` from the repo's default branch head, creating the
        repo first when `create_repo` is set and it does not exist."""
        check_repo_name(repo)
        check_branch_name(name, repo)
        try:
            info = await self.meta.get_repo(repo)
        except errors.RepoNotFound:
            if not create_repo:
                raise
            try:
                info = await self.meta.create_repo(repo, DEFAULT_BRANCH)
            except errors.RepoExists:
                info = await self.meta.get_repo(repo)
            if name == info.default_branch:
                return await self.meta.get_branch(repo, name)
        source = await self.meta.get_branch(repo, info.default_branch)
        # Guarded like every ref move: gc cannot sweep the head meanwhile.
        return await self.meta.create_branch_at(repo, name, source.head)

    async def list_branches(self) -> list[Branch]:
        """Every repo's branches (not open commits' staging branches)."""
        return await self.meta.list_branches()

    async def get_branch(self, repo: str, name: str) -> Branch:
        return await self.meta.get_branch(repo, name)

    async def get_repo(self, name: str) -> Repo:
        return await self.meta.get_repo(name)

    async def delete_branch(self, repo: str, name: str) -> None:
        """Delete a branch whose head holds no objects (and the repo with its
        last branch)."""
        info = await self.meta.get_repo(repo)
        if name == info.default_branch:
            others = [b.name for b in await self.meta.list_branches(repo) if b.name != name]
            if others:
                raise errors.DefaultBranchInUse(
                    f"{name} is the default branch of repo {repo}, which still has the branches "
                    f"{', '.join(others)}; delete those first"
                )
        for _ in range(10):
            branch = await self.meta.get_branch(repo, name)
            view = await self._view_of(repo, name, branch.head)
            count, _ = await tree.stats(self.meta, view.root)
            if count:
                raise errors.BranchNotEmpty(f"{repo}.{name} holds {count} objects")
            if await self.meta.delete_branch(repo, name, branch.head):
                self._seen_branches.pop((repo, name), None)
                return
        raise errors.ConcurrentUpdate(f"{repo}.{name} kept changing; try again")

    async def require_branch(self, repo: str, name: str) -> None:
        """Raise BranchNotFound/RepoNotFound unless the branch exists (a
        positive answer is trusted for BRANCH_SEEN_SECONDS)."""
        now = time.monotonic()
        if self._seen_branches.get((repo, name), 0.0) > now:
            return
        await self.meta.get_branch(repo, name)
        if len(self._seen_branches) > 10_000:
            self._seen_branches.clear()
        self._seen_branches[(repo, name)] = now + BRANCH_SEEN_SECONDS

    # -- reading ---------------------------------------------------------------

    async def branch_view(self, repo: str, name: str) -> View:
        branch = await self.meta.get_branch(repo, name)
        return await self._view_of(repo, name, branch.head)

    async def named_view(self, repo: str, name: str) -> View:
        """A branch's view or, when `name` is a tag, the tagged commit's
        (read-only) view. BranchNotFound when it is neither."""
        try:
            return await self.branch_view(repo, name)
        except errors.BranchNotFound:
            tag = await self.meta.get_tag(repo, name)
            if tag is None:
                raise
            return await self._view_of(repo, None, tag.commit)

    async def snapshot_view(self, repo: str, commit_hex: str) -> View:
        """The commit `commit_hex` names, read-only; or, when it is an open
        commit's id, the open commit's staging branch (writable)."""
        await self.meta.get_repo(repo)
        try:
            return await self._view_of(repo, None, CommitId(bytes.fromhex(commit_hex)))
        except errors.CommitNotFound:
            # Not a commit (commits are cached once read, so a snapshot read
            # never pays this lookup): perhaps an open commit's random id.
            staging = await self.open_staging(repo, commit_hex)
            if staging is None:
                raise
            return await self.branch_view(repo, staging)

    async def open_staging(self, repo: str, commit_hex: str) -> str | None:
        """The staging branch of the open commit `commit_hex`, if it is one
        (and is not being finished)."""
        name = OpenCommitRecord.staging_name(CommitId(bytes.fromhex(commit_hex)))
        try:
            await self.require_branch(repo, name)
        except errors.NotFound:
            return None
        return name

    async def _view_of(self, repo: str, branch: str | None, head: CommitId | None) -> View:
        if head is None:
            return View(repo, branch, None, None)
        commit = await self.meta.get_commit(head, repo=repo)
        return View(repo, branch, head, NodeId(commit.tree) if commit.tree else None)

    async def get_entry(self, view: View, key: str) -> ObjectEntry:
        entry = await tree.lookup(self.meta, view.root, key)
        if entry is None:
            raise errors.ObjectNotFound(key)
        return entry

    def iterate(self, view: View, start: str = "") -> AsyncIterator[tuple[str, ObjectEntry]]:
        return tree.iterate(self.meta, view.root, start)

    async def count(self, view: View) -> tuple[int, int]:
        return await tree.stats(self.meta, view.root)

    async def reader(self, entry: ObjectEntry) -> ChunkReader:
        return ChunkReader(self.store, await self.meta.get_manifest(entry.content))

    async def commit_of(self, entry: ObjectEntry) -> CommitId | None:
        return await self.meta.commit_of_version(entry.version)

    async def commit_time(self, commit_id: CommitId) -> int:
        """When a commit was made (microseconds): the last_modified of what it wrote."""
        return (await self.meta.get_commit(commit_id)).time

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
            return await self.meta.put_content(result.manifest), result
        return result.manifest.id, result

    def make_entry(
        self,
        content: ContentId,
        size: int,
        etag: str,
        attrs: ObjectAttrs,
        checksums: Mapping[str, str] | None = None,
        parts: Sequence[int] = (),
    ) -> ObjectEntry:
        return ObjectEntry(
            size=size,
            content=content,
            etag=etag,
            content_type=attrs.content_type,
            last_modified=now_us(),  # the committer stamps the commit time
            version=new_version(),
            metadata=dict(attrs.metadata),
            headers=dict(attrs.headers),
            checksums=dict(checksums or {}),
            parts=tuple(parts),
        )

    async def commit(
        self,
        view: View,
        edits: Mapping[str, ObjectEntry | None],
        message: str,
        origin: dict[str, Any],
        check: Check | None = None,
        consume_upload: str | None = None,
        contents: Sequence[Manifest] = (),
    ) -> CommitId | None:
        """Commit `edits` on the view's branch as exactly one commit (None when
        they change nothing). `contents` are manifests not yet registered."""
        if view.branch is None:
            raise errors.ReadOnlyRef(
                f"{view.repo}.{view.commit.hex() if view.commit else ''} is a commit "
                "snapshot, and snapshots are read-only; write to a branch instead"
            )
        change = Change(
            edits=edits,
            message=message,
            author=self.author,
            origin=origin,
            check=check,
            consume_upload=consume_upload,
            contents=contents,
        )
        return await self.committer.submit(view.repo, view.branch, change)

    async def copy_range(
        self,
        entry: ObjectEntry,
        start: int,
        end: int,
        hashers: Mapping[str, Hasher] | None = None,
    ) -> tuple[ContentId, int, bytes]:
        """Bytes [start, end) of an object as new content, for UploadPartCopy;
        returns (content id, size, MD5 of those bytes).

        Every chunk the range covers whole is referenced, not copied. A chunk
        cut by either end of the range cannot be referenced (a manifest lists
        whole chunks), so just its covered bytes are stored as new content:
        at most two partial chunks, a few MiB, whatever the size of the range.
        The MD5 (the part's ETag, which CompleteMultipartUpload's ETag is
        made of) needs every byte of the range, so the range is read; only the
        whole of a single-part object is known without reading, its ETag
        being the MD5 of its body. `hashers` are fed the range's bytes too
        (they force the read).
        """
        if start == 0 and end == entry.size and _MD5_HEX.match(entry.etag) and not hashers:
            return entry.content, entry.size, bytes.fromhex(entry.etag)
        reader = ChunkReader(self.store, await self.meta.get_manifest(entry.content))
        md5 = hashlib.md5()
        chunks: list[ChunkRef] = []
        async for ref, piece in reader.read_chunks(start, end):
            await asyncio.to_thread(_feed, md5, hashers, piece)
            if len(piece) == ref.size:
                chunks.append(ref)
            else:
                chunks.extend((await self._ingest(_one(piece))).manifest.chunks)
        await hold_existing(self.meta, self.store, chunks)
        part = Manifest(tuple(chunks))
        return await self.meta.put_content(part), part.size, md5.digest()

    async def _ingest(
        self, pieces: AsyncIterator[bytes], hashers: Mapping[str, Hasher] | None = None
    ) -> Ingested:
        return await ingest(
            pieces,
            LeasedStore(self.meta, self.store),
            hashers,
            chunker_factory=self.chunker_factory,
            inline_max=self.inline_max,
            slots=self._slots,
        )

    # -- multipart uploads -------------------------------------------------------

    async def create_upload(
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
        # ListMultipartUploads orders a key's uploads by id, which is then
        # the order they were initiated in, as S3 orders them.
        upload_id = f"{now_us():014x}" + os.urandom(17).hex()
        await self.meta.create_upload(
            UploadRecord(
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

    async def get_upload(self, view: View, key: str, upload_id: str) -> UploadRecord:
        record = await self.meta.get_upload(upload_id)
        if (record.repo, record.branch, record.key) != (view.repo, view.branch, key):
            raise errors.UploadNotFound(upload_id)
        return record

    async def put_part(
        self,
        upload: UploadRecord,
        number: int,
        content: ContentId,
        size: int,
        md5: bytes,
        checksums: Mapping[str, str] | None = None,
    ) -> int:
        """Record (or replace) a part; returns its time (microseconds)."""
        created = now_us()
        await self.meta.put_part(
            upload.id, PartRecord(number, content, size, md5, created, dict(checksums or {}))
        )
        return created

    async def list_parts(self, upload: UploadRecord) -> list[Part]:
        return [
            Part(p.part_number, p.md5.hex(), p.size, p.created, p.checksums)
            for p in await self.meta.list_parts(upload.id)
        ]

    async def list_uploads(
        self,
        view: View,
        prefix: str,
        after_key: str,
        after_id: str,
        limit: int,
        skip_key_prefix: bool = False,
    ) -> list[UploadRecord]:
        """In-progress uploads of the view's branch, in (key, upload id) order
        (see Metadata.list_uploads). A snapshot has none."""
        if view.branch is None:
            return []
        return await self.meta.list_uploads(
            view.repo, view.branch, prefix, after_key, after_id, limit, skip_key_prefix
        )

    async def expire_uploads(self, max_idle_us: int) -> list[str]:
        """Abort every upload idle (no creation, no part) for `max_idle_us`.
        Their parts' contents and chunks become unreferenced, for garbage
        collection to reclaim."""
        return await self.meta.expire_uploads(now_us() - max_idle_us)

    async def abort_upload(self, upload: UploadRecord) -> None:
        if not await self.meta.delete_upload(upload.id):
            raise errors.UploadNotFound(upload.id)

    async def complete_upload(
        self,
        view: View,
        upload: UploadRecord,
        parts: list[tuple[int, str]],
        min_part_size: int,
        check: Check | None = None,
        checksums_of: Callable[[list[PartRecord]], Mapping[str, str]] | None = None,
    ) -> tuple[CommitId | None, ObjectEntry]:
        """Assemble the object from its parts' chunks (no data is copied) and
        commit it. `parts` are (part number, hex MD5) pairs in request order.
        `checksums_of` gives the object's checksums from the chosen parts (and
        may refuse them by raising)."""
        if not parts:
            raise errors.InvalidPart("you must specify at least one part")
        stored = {p.part_number: p for p in await self.meta.list_parts(upload.id)}
        previous = 0
        chosen: list[PartRecord] = []
        for number, md5_hex in parts:
            if number <= previous:
                raise errors.InvalidPartOrder(
                    "the list of parts was not in ascending order; parts must be ordered by "
                    "part number"
                )
            previous = number
            part = stored.get(number)
            if part is None and not stored:
                # A concurrent completion may have consumed the upload (and its
                # parts) since it was looked up: then the upload is what's gone.
                await self.meta.get_upload(upload.id)
            if part is None or part.md5.hex() != md5_hex:
                raise errors.InvalidPart(
                    f"part {number} could not be found, or its ETag does not match"
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < min_part_size:
                raise errors.EntityTooSmall(
                    f"part {part.part_number} is {part.size} bytes; every part but the last "
                    f"must be at least {min_part_size} bytes"
                )
        pieces = [list((await self.meta.get_manifest(p.content)).chunks) for p in chosen]
        if len(pieces) <= REJOIN_MAX_PARTS:
            chunks = await rejoin(
                pieces,
                functools.partial(read_piece, self.store),
                LeasedStore(self.meta, self.store),
                self.chunker_factory,
            )
        else:
            chunks = [ref for refs in pieces for ref in refs]
        manifest = Manifest(tuple(chunks))
        content_id = await self.meta.put_content(manifest)
        etag = hashlib.md5(b"".join(p.md5 for p in chosen)).hexdigest() + f"-{len(chosen)}"
        sums = checksums_of(chosen) if checksums_of is not None else {}
        attrs = ObjectAttrs.decode(upload.attrs)
        entry = self.make_entry(
            content_id, manifest.size, etag, attrs, sums, parts=[p.size for p in chosen]
        )
        commit_id = await self.commit(
            view,
            {upload.key: entry},
            message=f"CompleteMultipartUpload {upload.key}",
            origin={"op": "CompleteMultipartUpload", "keys": [upload.key]},
            check=check,
            consume_upload=upload.id,
        )
        return commit_id, entry


def _feed(md5: Any, hashers: Mapping[str, Hasher] | None, piece: bytes) -> None:
    md5.update(piece)
    for hasher in (hashers or {}).values():
        hasher.update(piece)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
