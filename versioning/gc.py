"""Garbage collection: give back the space of what nothing can reach.

Roots are every branch head and tag, every trashed repo's or branch's refs
until the entry expires, every commit younger than the grace period (a
snapshot someone may be reading or a commit being made), and every open
multipart upload's parts. A body purged from a repo is not reached from that
repo (purge.py), so it goes once no other repo names it. What the roots reach
(reach.walk) is kept; of the rest, only rows last touched before the cutoff
(now - grace) are deleted, because a writer touches what it re-uses in the
statement that relies on it (migration 0004, leases.py).

Passes run top-down (commits, then tree nodes, then contents, then chunks),
so a crash between passes leaves only unreferenced leftovers for the next
run, never a kept record pointing at a deleted one. The chunk pass judges
liveness from the contents rows that remain, not from the mark, so a body
committed after the mark keeps its chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from versioning.catalog import Catalog, batches
from versioning.chunkstore.base import ChunkStore, fragments_of
from versioning.clock import now_us
from versioning.errors import CorruptData
from versioning.ids import ChunkId
from versioning.model import Manifest
from versioning.reach import walk

# Store deletes in flight at once (an object store answers many in parallel).
DELETE_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class GcReport:
    dry_run: bool
    grace_seconds: float
    live_commits: int
    live_nodes: int
    live_contents: int
    live_chunks: int
    commits: int
    nodes: int
    contents: int
    chunks: int
    chunk_bytes: int  # plain (uncompressed) bytes of the chunks deleted
    seconds: float
    fragment_uploads: int = 0  # closed uploads whose leftover fragments were deleted

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (
            f"gc {verb} {self.chunks} chunks ({_human(self.chunk_bytes)}), "
            f"{self.contents} contents, {self.nodes} tree nodes, {self.commits} commits; "
            f"kept {self.live_commits} commits, {self.live_nodes} tree nodes, "
            f"{self.live_contents} contents, {self.live_chunks} chunks "
            f"(grace {self.grace_seconds:g} s, {self.seconds:.1f} s)"
        )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


async def collect(
    catalog: Catalog,
    store: ChunkStore,
    grace_seconds: float,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> GcReport:
    """One garbage collection pass. Raises CorruptData, deleting nothing, if
    the mark meets a missing or undecodable commit or tree node: what such a
    record refers to is unknown, so nothing can be proven garbage (run fsck)."""
    async with catalog.exclusive():
        return await _collect(catalog, store, grace_seconds, dry_run, progress)


async def _collect(
    catalog: Catalog,
    store: ChunkStore,
    grace_seconds: float,
    dry_run: bool,
    progress: Callable[[str], None] | None,
) -> GcReport:
    started = time.monotonic()
    now = now_us()
    cutoff = now - int(grace_seconds * 1_000_000)
    say = progress or (lambda _msg: None)

    # Trashed repos and branches are roots until they expire; expired ones go
    # first, so what only they reached is collected by this pass.
    if not dry_run:
        say(f"trash: {await catalog.purge_trash(now)} expired entries purged")
    roots = [head for _, _, head in await catalog.heads(trash_after=now)]
    roots.extend(await catalog.commits_since(cutoff))
    reached = await walk(
        catalog,
        roots,
        await catalog.upload_contents(),
        progress=say,
        purged=await catalog.purged_contents(),
    )
    if not reached.complete:
        raise CorruptData(
            "gc stopped before deleting anything: the mark found "
            f"{len(reached.missing_nodes)} missing and {len(reached.bad_nodes)} undecodable "
            "tree nodes; run `loxo fsck` to see where"
        )
    say(
        f"mark: {len(reached.commits)} commits, {len(reached.nodes)} nodes, "
        f"{len(reached.contents)} contents reachable"
    )

    dead_commits = [c for c in await catalog.commits_before(cutoff) if c not in reached.commits]
    dead_nodes = [n async for n in catalog.stale_node_ids(cutoff) if n not in reached.nodes]
    dead_contents = [
        c async for c in catalog.stale_content_ids(cutoff) if c not in reached.contents
    ]
    commits = nodes = contents = 0
    if dry_run:
        commits, nodes, contents = len(dead_commits), len(dead_nodes), len(dead_contents)
    else:
        for commit_batch in batches(dead_commits):
            commits += await catalog.delete_commits(commit_batch, cutoff)
        for node_batch in batches(dead_nodes):
            nodes += await catalog.delete_nodes(node_batch, cutoff)
        for content_batch in batches(dead_contents):
            contents += await catalog.delete_contents(content_batch, cutoff)
    say(f"metadata: {commits} commits, {nodes} nodes, {contents} contents")

    # Chunks: live when a remaining contents row names them.
    gone_contents = set(dead_contents)
    live_chunks: set[ChunkId] = set()
    async for cid, data in catalog.chunked_manifests():
        if cid in gone_contents:
            continue  # dry run: still there, but would not be
        live_chunks.update(c.id for c in Manifest.decode(data).stored_chunks())
    # Stored chunks with no row predate the chunks table: give them one.
    unknown: list[ChunkId] = []
    async for stored_id in store.iter_ids():
        if stored_id not in live_chunks:
            unknown.append(stored_id)
    orphans: list[ChunkId] = []
    for unknown_batch in batches(unknown):
        have = await catalog.chunk_rows(unknown_batch)
        orphans.extend(c for c in unknown_batch if c not in have)
    if orphans and not dry_run:
        for orphan_batch in batches(orphans):
            await catalog.adopt_chunks(orphan_batch)
    dead_chunks = [c async for c in catalog.stale_chunks(cutoff) if c[0] not in live_chunks]
    chunks = chunk_bytes = 0
    if dry_run:
        chunks = len(dead_chunks) + len(orphans)
        chunk_bytes = sum(size for _, size in dead_chunks)
    else:
        limit = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def remove_one(chunk: ChunkId) -> None:
            async with limit:
                await store.delete(chunk)

        async def remove(batch: list[ChunkId]) -> None:
            await asyncio.gather(*(remove_one(c) for c in batch))

        for chunk_batch in batches([c for c, _ in dead_chunks]):
            n, size = await catalog.delete_chunks(chunk_batch, cutoff, remove)
            chunks += n
            chunk_bytes += size
    say(f"chunks: {chunks}")

    # Fragments of uploads that are gone: a crash between an upload's end and
    # the deletion of its fragments left them. An open upload's are kept (its
    # row exists before any part is stored, so a listed one is never too new).
    leftovers: list[str] = []
    fragments = fragments_of(store)
    if fragments is not None:
        listed = await fragments.fragment_uploads()
        for id_batch in batches(listed):
            still_open = await catalog.open_uploads(id_batch)
            leftovers.extend(u for u in id_batch if u not in still_open)
        if not dry_run:
            for upload_id in leftovers:
                await fragments.delete_fragments(upload_id)
    say(f"fragments: {len(leftovers)} closed uploads")
    return GcReport(
        dry_run=dry_run,
        grace_seconds=grace_seconds,
        live_commits=len(reached.commits),
        live_nodes=len(reached.nodes),
        live_contents=len(reached.contents),
        live_chunks=len(live_chunks),
        commits=commits,
        nodes=nodes,
        contents=contents,
        chunks=chunks,
        chunk_bytes=chunk_bytes,
        seconds=time.monotonic() - started,
        fragment_uploads=len(leftovers),
    )
