"""Scale: the work of one operation grows at most like log N, never like N.

The storage design (docs/design/storage.md) promises that, with N paths in a
branch and a history of H commits, these cost O(log N) node reads each:

  (a) a PUT: one object written to a big branch, which is one commit;
  (b) one ListObjectsV2 page (up to 1000 keys) under a prefix, also with a
      delimiter and when resuming from a continuation token;
  (c) a diff of two commits that differ in k paths: O(k log N);
  (d) a GET at an old commit: a lookup in the snapshot view of an early commit,
      deep in a long history.

Speed is never a timed assertion in our tests (see benchmarks/bench_scale.py
for latencies at 1,000,000 files and 100,000 commits). Instead this module
builds the same shapes at a small and a larger size with the real Versioning
service on the real PostgreSQL and COUNTS the work of each operation. Counts
are deterministic where the trees are: a tree's shape is a pure function of
its key set, and the object trees here have fixed keys (the history index's
keys embed commit ids, so its depth varies a little; see levels_gained).

Counting is done by instrumenting, not mocking: `CountingDatabase` is the
real Database (real SQL, real caches) over a pool proxy that counts the
statements it forwards, and it counts `get_node` calls before delegating.
Every measured operation runs on a fresh Database, so its LRU caches are
empty and every node it needs is really read from PostgreSQL.

Two dimensions, each measured at a small and a large size (ratio 50):
  * files:   2,000 vs 100,000 files in one branch (bulk-loaded in commits of
             25,000 paths, so setup takes seconds);
  * history: 2,000 files plus 100 vs 5,000 single-object commits (submitted
             concurrently, so the committer chains up to 256 per statement).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from s3api.operations.listing import list_page
from tests.versioning.counting import CountingDatabase, Work
from versioning import tree
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.ids import CommitId, NodeId
from versioning.model import ObjectEntry
from versioning.repository import Versioning
from versioning.tree import FANOUT_BITS, NodeSource
from versioning.views import ObjectAttrs, View, new_entry

SMALL_FILES, LARGE_FILES = 2_000, 100_000
SMALL_HISTORY, LARGE_HISTORY = 100, 5_000
HISTORY_FILES = SMALL_FILES  # the tree size of both history datasets
BULK = 25_000  # paths per commit when bulk-loading
GROUPS = 20  # nested/<group>/...: the common prefixes of the delimiter listing
PAGE = 1_000  # ListObjectsV2's largest page
K = 12  # paths that differ between the two commits of the diff
OLD = 10  # the "old" commit of the history datasets: the 10th after the base
ATTRS = ObjectAttrs("application/octet-stream", {}, {})


# --------------------------------------------------------------------------- layout


def flat_count(files: int) -> int:
    return files - nested_count(files)


def nested_count(files: int) -> int:
    return files // 4


def flat_key(i: int) -> str:
    return f"flat/{i:07d}"


def nested_key(group: int, j: int) -> str:
    return f"nested/{group:02d}/{j:07d}"


def file_keys(files: int) -> list[str]:
    """`flat/<i>` for three quarters, `nested/<g>/<j>` (GROUPS groups) for the
    rest. Keys are zero-padded so every thousand flat keys share a prefix:
    `flat/0074` holds exactly 1000 keys, a full page. "flat" < "nested", so
    the nested listing starts after every flat key."""
    per_group = nested_count(files) // GROUPS
    return [flat_key(i) for i in range(flat_count(files))] + [
        nested_key(g, j) for g in range(GROUPS) for j in range(per_group)
    ]


def last_block_prefix(files: int) -> str:
    """The prefix of the last full thousand flat keys: a 1000-key page that
    has all the other flat keys before it."""
    return f"flat/{flat_count(files) // PAGE - 1:04d}"


# --------------------------------------------------------------------------- counting


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    dimension: str  # "files" or "history"
    size: int  # files in the branch, or commits of history after the base
    repo: str
    files: int  # paths in the trees read (the same in every commit used)
    old: CommitId  # files: the bulk-loaded head; history: the OLD-th commit after the base
    changed: CommitId  # `old` with K paths changed
    depth: int  # levels of the object tree at `old`
    history_depth: int  # levels of the history index at main's head


@dataclass(frozen=True)
class Scale:
    dsn: str
    chunks: Path
    data: Mapping[tuple[str, str], Dataset]  # (dimension, "small" | "large")


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _depth(src: NodeSource, root: NodeId | None) -> int:
    return 0 if root is None else (await src.get_node(root)).level + 1


async def _entry_factory(svc: Versioning) -> Callable[[], ObjectEntry]:
    content, result = await svc.store_content(_one_piece(b"scale test body"))
    md5 = result.md5.hex()
    return lambda: new_entry(content, result.size, md5, ATTRS)


async def _bulk_load(
    svc: Versioning, repo: str, files: int
) -> tuple[View, Callable[[], ObjectEntry]]:
    await svc.branches.create_repo(repo)
    view = await svc.branch_view(repo, "main")
    entry = await _entry_factory(svc)
    keys = file_keys(files)
    for start in range(0, len(keys), BULK):
        edits = {k: entry() for k in keys[start : start + BULK]}
        assert await svc.commit(view, edits, "bulk load", {"op": "test"}) is not None
    return view, entry


async def _history_depth(svc: Versioning, repo: str) -> int:
    head = (await svc.branches.get_branch(repo, "main")).head
    assert head is not None
    return await _depth(svc.db.objects, (await svc.db.objects.get_history(head))[0])


async def _files_dataset(svc: Versioning, size: str, files: int) -> Dataset:
    repo = f"files-{size}"
    _, entry = await _bulk_load(svc, repo, files)
    old = (await svc.branches.get_branch(repo, "main")).head
    assert old is not None
    # K changes spread over the key space, on a branch so main stays as loaded:
    # overwrites and new keys among the flat keys, deletes among the nested.
    flat, per_group = flat_count(files), nested_count(files) // GROUPS
    edits: dict[str, ObjectEntry | None] = {}
    for i in range(K // 3):
        edits[flat_key((2 * i + 1) * flat // (2 * K // 3))] = entry()
        edits[flat_key(i * flat // (K // 3)) + ".new"] = entry()
        edits[nested_key(i * GROUPS // (K // 3), per_group // 2)] = None
    assert len(edits) == K
    await svc.branches.ensure_branch(repo, "diffed")
    changed = await svc.commit(await svc.branch_view(repo, "diffed"), edits, "k", {})
    assert changed is not None
    root = (await svc.snapshot_view(repo, old.hex())).root
    return Dataset(
        "files",
        files,
        repo,
        files,
        old,
        changed,
        await _depth(svc.db.objects, root),
        await _history_depth(svc, repo),
    )


async def _history_dataset(svc: Versioning, size: str, commits: int) -> Dataset:
    repo = f"history-{size}"
    view, entry = await _bulk_load(svc, repo, HISTORY_FILES)
    flat = flat_count(HISTORY_FILES)
    ids: list[CommitId | None] = []
    # Commit j overwrites flat key (j * 7919) mod flat: 7919 is prime, so any
    # `flat` consecutive commits change distinct keys, and the tree keeps its
    # key set (and shape) while the history grows.
    for start in range(0, commits, 1000):
        ids += await asyncio.gather(
            *(
                svc.commit(view, {flat_key(j * 7919 % flat): entry()}, f"c{j}", {})
                for j in range(start, min(commits, start + 1000))
            )
        )
    assert None not in ids and len(set(ids)) == commits
    old, changed = cast(CommitId, ids[OLD - 1]), cast(CommitId, ids[OLD - 1 + K])
    root = (await svc.snapshot_view(repo, old.hex())).root
    return Dataset(
        "history",
        commits,
        repo,
        HISTORY_FILES,
        old,
        changed,
        await _depth(svc.db.objects, root),
        await _history_depth(svc, repo),
    )


async def _build(dsn: str, chunks: Path) -> dict[tuple[str, str], Dataset]:
    meta = await Database.connect(dsn, min_size=1, max_size=4)
    try:
        svc = Versioning(meta, LocalChunkStore(chunks))
        return {
            ("files", "small"): await _files_dataset(svc, "small", SMALL_FILES),
            ("files", "large"): await _files_dataset(svc, "large", LARGE_FILES),
            ("history", "small"): await _history_dataset(svc, "small", SMALL_HISTORY),
            ("history", "large"): await _history_dataset(svc, "large", LARGE_HISTORY),
        }
    finally:
        await meta.close()


@pytest.fixture(scope="module")
def scale(fresh_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Scale:
    dsn = fresh_database()
    chunks = tmp_path_factory.mktemp("scale") / "chunks"
    return Scale(dsn, chunks, asyncio.run(_build(dsn, chunks)))


# --------------------------------------------------------------------------- measuring

# An operation gets the counted service (fresh caches), an uncounted one on
# the same database for preparations, and the dataset.
Operation = Callable[[Versioning, Versioning, Dataset], Awaitable[None]]


async def _measure_both(scale: Scale, dimension: str, op: Operation) -> tuple[Work, Work]:
    base = await Database.connect(scale.dsn, min_size=1, max_size=2)
    try:
        plain = Versioning(base, LocalChunkStore(scale.chunks))
        out = []
        for size in ("small", "large"):
            meta = CountingDatabase(base.pool)  # fresh: empty caches
            svc = Versioning(meta, LocalChunkStore(scale.chunks))
            await op(svc, plain, scale.data[dimension, size])
            out.append(meta.work())
        return out[0], out[1]
    finally:
        await base.close()


def levels_gained(ratio: float, slack: int = 1) -> float:
    """Tree levels that N x ratio may add, plus `slack` levels.

    A node ends after a key whose hash has 5 (FANOUT_BITS) more trailing zero
    bits than the level needs, so the average fan-out is 32 and a tree has
    about log32 N = log2(N) / 5 levels: multiplying N by `ratio` adds
    log2(ratio) / 5 levels on average. Boundaries are coin flips per key, so
    one tree may have a level more than the average of its size, and a walk
    may straddle one more node boundary: one level of slack. For ratio 50 that
    is 5.64 / 5 + 1 = 2.13 levels.

    Object trees here have fixed key sets, so their shapes (depth 3 at 2,000
    paths, 4 at 100,000) are the same in every run. The history index is not:
    its keys embed commit ids, which hash the commit time, so its shape is a
    new draw each run. Simulated, its depth at 2,000 records is 2/3/4 in
    15/79/5 % of runs and at 100,000 records 3/4/5/6 in 3/84/12/0.3 %: it gets
    two levels of slack, so only a draw rarer than 1 in 10,000 could fail."""
    return math.log2(ratio) / FANOUT_BITS + slack


def assert_log_growth(
    scale: Scale,
    dimension: str,
    small: Work,
    large: Work,
    per_level: Mapping[str, float],
    history_per_level: Mapping[str, float] | None = None,
) -> None:
    """large <= small + c * levels_gained(ratio) for each counted metric,
    where c (`per_level`) is how many nodes (or round trips, or written nodes)
    the operation touches per level of the object tree, plus, for writes,
    `history_per_level` per level of the history index (two levels of slack).
    Also checks that the bound is far below what a linear regression would
    cost at the large size, so the assertion can actually fail: scanning N
    paths reads N / 32 leaves, and walking H commits costs H round trips."""
    s, lg = scale.data[dimension, "small"], scale.data[dimension, "large"]
    ratio = lg.size / s.size
    linear = lg.size / 2**FANOUT_BITS if dimension == "files" else lg.size
    report = (
        f"{dimension}: {s.size} -> {lg.size} (ratio {ratio:g}), object tree depth "
        f"{s.depth} -> {lg.depth}, history index depth {s.history_depth} -> "
        f"{lg.history_depth}; small {small}, large {large}"
    )
    print(report)
    for metric, c in per_level.items():
        before, after = getattr(small, metric), getattr(large, metric)
        hc = (history_per_level or {}).get(metric, 0)
        bound = before + c * levels_gained(ratio) + hc * levels_gained(ratio, slack=2)
        assert bound * 4 < linear, f"{metric}: bound {bound:g} could not catch a scan ({report})"
        assert after <= bound, (
            f"{metric} grew from {before} to {after}, more than {c} per level "
            f"(+ {hc} per history index level) allows ({bound:.1f}): {report}"
        )


# --------------------------------------------------------------------------- (a) PUT


async def _put(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    # Same service calls as s3api's PutObject: check the branch, store the
    # body (manifest registered with the commit), make the entry, commit.
    # Each PUT lands on its own new branch at main's head, so measurements
    # neither change main nor depend on test order.
    branch = f"put-{uuid.uuid4().hex[:12]}"
    await plain.branches.ensure_branch(data.repo, branch)
    await svc.branches.require_branch(data.repo, branch)
    view = View(data.repo, branch, None, None)
    content, result = await svc.store_content(_one_piece(b"new body"), register=False)
    entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
    key = flat_key(flat_count(data.files) // 2) + ".put"
    commit = await svc.commit(view, {key: entry}, "PutObject", {}, contents=[result.manifest])
    assert commit is not None


@pytest.mark.parametrize("dimension", ["files", "history"])
def test_put_is_one_commit_of_log_n_work(scale: Scale, dimension: str) -> None:
    """(a) One PUT reads the path to its leaf in the object tree and in the
    history index (and the diff between the two trees re-visits the changed
    path: cache hits), writes one new node per level of each, and sends a
    constant number of other statements.

    Catches: a commit that rewrites or re-reads the whole tree (a flat
    manifest, a size-based split that copies a level), a history index that
    is rebuilt or scanned per commit, a head/commit lookup that walks the
    parent chain."""
    small, large = asyncio.run(_measure_both(scale, dimension, _put))
    # Per level of the object tree: 1 node read and 1 written; visits add the
    # diff's second pass over the changed path (cache hits). Per level of the
    # history index: 1 node read and 1 written.
    per_level = {"node_reads": 1, "round_trips": 1, "node_visits": 2, "nodes_written": 1}
    per_history_level = {"node_reads": 1, "round_trips": 1, "node_visits": 1, "nodes_written": 1}
    assert_log_growth(scale, dimension, small, large, per_level, per_history_level)


# --------------------------------------------------------------------------- (b) listing


async def _page(
    svc: Versioning, data: Dataset, prefix: str, delimiter: str, after: str, keys: int
) -> None:
    view = await svc.branch_view(data.repo, "main")
    page = await list_page(svc, view, prefix, delimiter, after, PAGE)
    assert len(page.items) + len(page.prefixes) == keys


async def _list_block(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    await _page(svc, data, last_block_prefix(data.files), "", "", PAGE)


async def _list_block_delimited(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    await _page(svc, data, last_block_prefix(data.files), "/", "", PAGE)


async def _list_common_prefixes(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    await _page(svc, data, "nested/", "/", "", GROUPS)


async def _list_resumed(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    # A continuation token deep inside a big prefix: the last 1000 flat keys.
    after = flat_key(flat_count(data.files) - PAGE - 1)
    await _page(svc, data, "flat/", "/", after, PAGE)


@pytest.mark.parametrize("dimension", ["files", "history"])
@pytest.mark.parametrize(
    "op", [_list_block, _list_block_delimited, _list_resumed], ids=lambda f: f.__name__[1:]
)
def test_list_page_is_log_n_plus_page(scale: Scale, dimension: str, op: Operation) -> None:
    """(b) A 1000-key page under a prefix that sits after every other flat key
    (and, resumed, in the middle of the 75,000 keys of `flat/`): one descent
    to the start key, then about 1000 / 32 leaves and the internal nodes the
    walk crosses, which are the same at both sizes. The delimited variant is
    what `aws s3 ls s3://bucket/flat/0074` sends.

    Catches: a listing that walks the tree from its first key to the prefix
    or to the continuation token (linear in the keys before it), or that
    loads whole levels or every leaf under the prefix to cut a page."""
    small, large = asyncio.run(_measure_both(scale, dimension, op))
    # Per level: the descent (1) and at most one more crossing of a node
    # boundary while walking forward (1).
    per_level = {"node_reads": 2, "round_trips": 2, "node_visits": 2}
    assert_log_growth(scale, dimension, small, large, per_level)


@pytest.mark.parametrize("dimension", ["files", "history"])
def test_common_prefixes_are_skipped_not_scanned(scale: Scale, dimension: str) -> None:
    """(b) `nested/` with delimiter `/`: a page of GROUPS common prefixes over
    25 (small) or 1,250 (large) keys each. Each common prefix costs one fresh
    descent past it, so the page costs GROUPS + 1 descents whatever the size
    of the groups.

    Catches: rolling up common prefixes by iterating over every key inside
    them (here: all 25,000 nested keys, ~780 leaves, at the large size)."""
    small, large = asyncio.run(_measure_both(scale, dimension, _list_common_prefixes))
    descents = GROUPS + 1
    per_level = {"node_reads": descents, "round_trips": descents, "node_visits": descents}
    assert_log_growth(scale, dimension, small, large, per_level)


# --------------------------------------------------------------------------- (c) diff


async def _diff(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    a = await svc.snapshot_view(data.repo, data.old.hex())
    b = await svc.snapshot_view(data.repo, data.changed.hex())
    changes = [key async for key, _, _ in tree.diff(svc.db.objects, a.root, b.root)]
    assert len(changes) == K


@pytest.mark.parametrize("dimension", ["files", "history"])
def test_diff_costs_changed_paths_times_log_n(scale: Scale, dimension: str) -> None:
    """(c) Two commits that differ in K = 12 paths (files: overwrites, new keys
    and deletes spread over the key space; history: the OLD-th commit and
    the one K commits later). Subtrees with equal ids are skipped, so the diff
    reads the changed path in each tree: at most 2 K nodes per level, and
    the absolute count is O(K * depth), not O(N).

    Catches: a diff that walks or materialises both trees (100,000 paths:
    ~6,250 leaves), or node boundaries that stop lining up after a change
    (history-dependent shapes), which makes unchanged subtrees differ."""
    small, large = asyncio.run(_measure_both(scale, dimension, _diff))
    per_level = {"node_reads": 2 * K, "round_trips": 2 * K, "node_visits": 2 * K}
    assert_log_growth(scale, dimension, small, large, per_level)
    for size, work in (("small", small), ("large", large)):
        depth = scale.data[dimension, size].depth
        # Each changed path: one node per level in each tree, plus a
        # neighbour when a boundary key comes or goes.
        assert work.node_visits <= 2 * 2 * K * depth, (size, work, depth)


# --------------------------------------------------------------------------- (d) GET


async def _get_old(svc: Versioning, plain: Versioning, data: Dataset) -> None:
    # Same service calls as s3api's GetObject on `repo.<commit>` (or with
    # versionId=<commit>): the snapshot view, the entry, the commit that
    # wrote it (x-amz-version-id), and the manifest to read the body.
    view = await svc.snapshot_view(data.repo, data.old.hex())
    entry = await svc.get_entry(view, flat_key(flat_count(data.files) // 2))
    assert await svc.commit_of(entry) is not None
    reader = await svc.reader(entry, data.repo)
    assert reader is not None


@pytest.mark.parametrize("dimension", ["files", "history"])
def test_get_at_an_old_commit_is_log_n(scale: Scale, dimension: str) -> None:
    """(d) GET of a key at an old commit: files, the bulk-loaded commit of a
    100,000-path tree; history, the 10th commit with 5,000 commits after it.
    One node per level of that commit's tree, plus a constant number of
    statements (repo, commit, version, manifest) that do not depend on the
    length of the history.

    Catches: resolving a snapshot or a version by walking the commit chain
    from a head, replaying history to rebuild an old tree, or a lookup that
    scans leaves."""
    small, large = asyncio.run(_measure_both(scale, dimension, _get_old))
    per_level = {"node_reads": 1, "round_trips": 1, "node_visits": 1}
    assert_log_growth(scale, dimension, small, large, per_level)
    for size, work in (("small", small), ("large", large)):
        assert work.node_visits <= scale.data[dimension, size].depth, (size, work)


def test_cold_page_reads_leaves_in_runs(scale: Scale) -> None:
    """A cold 1000-key page spans ~31 leaves; read one by one they cost ~31
    round trips (19 tree_nodes statements at 100k files, seen before
    tree.iterate prefetched). Read in runs of tree.PREFETCH per parent, the
    page costs the descent plus a couple of runs.

    Catches: a walk that fetches leaves one statement at a time."""
    _, large = asyncio.run(_measure_both(scale, "files", _list_block))
    assert large.node_reads <= 9, large
