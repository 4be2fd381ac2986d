"""fsck: verify that everything stored is what its id says, and is there.

Walks every commit in the catalog (reach.walk with verify), checking each
commit's and tree node's bytes against its id, each content manifest against
its id, and every chunk those manifests name by reading it from the store,
which verifies its hash. Each problem is reported with where it is visible:
the repo, a commit and the path of an object whose body is affected. Bodies
purged from a repo (purge.py) are not checked there: gc erases them on purpose.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from versioning.catalog import Catalog, batches
from versioning.chunkstore.base import ChunkMissing, ChunkStore, fragments_of
from versioning.errors import CorruptData
from versioning.ids import ChunkId, ContentId, short_hash
from versioning.model import Manifest
from versioning.reach import Place, walk

READ_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # missing-chunk, corrupt-chunk, missing-content, corrupt-content, ...
    id_hex: str
    detail: str
    places: tuple[Place, ...] = ()

    def describe(self) -> str:
        where = "; ".join(f"{p.repo}@{p.commit.hex()}:{p.path}" for p in self.places[:5])
        more = f" (+{len(self.places) - 5} more)" if len(self.places) > 5 else ""
        return f"{self.kind} {self.id_hex}: {self.detail}" + (
            f" -- affects {where}{more}" if where else ""
        )


@dataclass(slots=True)
class FsckReport:
    commits: int = 0
    nodes: int = 0
    contents: int = 0
    chunks: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "OK" if self.ok else f"{len(self.problems)} PROBLEMS"
        return (
            f"fsck {state}: checked {self.commits} commits, {self.nodes} tree nodes, "
            f"{self.contents} contents, {self.chunks} chunks in {self.seconds:.1f} s"
        )


async def check(
    catalog: Catalog, store: ChunkStore, progress: Callable[[str], None] | None = None
) -> FsckReport:
    started = time.monotonic()
    report = FsckReport()
    roots = [head for _, _, head in await catalog.heads()]
    roots.extend(await catalog.commits_since(0))
    reached = await walk(
        catalog,
        roots,
        await catalog.upload_contents(),
        verify=True,
        track_places=True,
        progress=progress,
        purged=await catalog.purged_contents(),
    )
    report.commits, report.nodes = len(reached.commits), len(reached.nodes)
    # A commit found missing may just have been deleted with its repo while we
    # walked: it is lost only if what named it (a head, a child) still exists.
    heads_now = {head for _, _, head in await catalog.heads()}
    children = [reached.child_of[c] for c in reached.missing_commits if c in reached.child_of]
    children_now = {cid for cid, _, _ in await catalog.commits(children)}
    for cid in reached.missing_commits:
        if cid in heads_now:
            report.problems.append(Problem("missing-commit", cid.hex(), "a branch head is gone"))
        elif reached.child_of.get(cid) in children_now:
            child = reached.child_of[cid]
            report.problems.append(
                Problem("missing-commit", cid.hex(), f"parent of commit {child.hex()} is gone")
            )
    for cid, why in reached.bad_commits:
        report.problems.append(Problem("corrupt-commit", cid.hex(), why))
    for nid, cid in reached.missing_nodes:
        report.problems.append(
            Problem("missing-node", nid.hex(), f"tree node of commit {cid.hex()} is gone")
        )
    for nid, cid, why in reached.bad_nodes:
        report.problems.append(Problem("corrupt-node", nid.hex(), f"{why} (commit {cid.hex()})"))

    def places(content: ContentId) -> tuple[Place, ...]:
        place = reached.places.get(content)
        return (place,) if place else ()

    # Manifests: present and matching their ids; collect who uses each chunk.
    users: dict[ChunkId, list[ContentId]] = defaultdict(list)
    wanted = [c for c in reached.contents if c]
    for batch in batches(wanted):
        stored = await catalog.manifests(batch)
        for content in batch:
            data = stored.get(content)
            if data is None:
                report.problems.append(
                    Problem(
                        "missing-content",
                        content.hex(),
                        "object body record is gone",
                        places(content),
                    )
                )
                continue
            if short_hash(data) != content:
                report.problems.append(
                    Problem(
                        "corrupt-content",
                        content.hex(),
                        "body record does not hash to its id",
                        places(content),
                    )
                )
                continue
            for ref in Manifest.decode(data).stored_chunks():
                users[ref.id].append(content)
    report.contents = len(wanted)

    # Open uploads' parts name their edge chunks, which are the uploads'
    # fragments rather than chunks until Complete (uploads.py): found there.
    held: dict[ChunkId, str] = {}
    fragments = fragments_of(store)
    if fragments is not None:
        listed = await fragments.fragment_uploads()
        for id_batch in batches(listed):
            for upload_id in sorted(await catalog.open_uploads(id_batch)):
                for fid in await fragments.fragment_ids(upload_id):
                    held[fid] = upload_id

    # Chunks: read each once; the store verifies the hash on every read.
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def get(chunk: ChunkId) -> None:
        try:
            await store.get(chunk)
        except ChunkMissing:
            if fragments is None or chunk not in held:
                raise
            await fragments.get_fragment(held[chunk], chunk)

    async def read(chunk: ChunkId) -> None:
        async with limit:
            try:
                await get(chunk)
            except ChunkMissing as exc:
                bad = ("missing-chunk", str(exc))
            except CorruptData as exc:
                bad = ("corrupt-chunk", str(exc))
            else:
                return
        affected = tuple(p for c in users[chunk] for p in places(c))
        report.problems.append(Problem(bad[0], chunk.hex(), bad[1], affected))

    chunk_ids = list(users)
    done = 0
    for run in batches(chunk_ids):
        await asyncio.gather(*(read(c) for c in run))
        done += len(run)
        if progress:
            progress(f"{done}/{len(chunk_ids)} chunks read")
    report.chunks = len(chunk_ids)
    report.seconds = time.monotonic() - started
    return report
