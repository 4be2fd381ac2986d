"""Tests for versioning.tree: the prolly tree behind every commit's path map."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.versioning.trees import Edits, Model, collect, fanout, put, run, step
from versioning import tree
from versioning.ids import ContentId, NodeId, VersionId, short_hash
from versioning.model import ObjectEntry, pack
from versioning.tree import ChildRef, MemoryNodeSource, Node, Root

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def entry(n: int, size: int | None = None) -> ObjectEntry:
    return ObjectEntry(
        size=n * 7 % 1000 if size is None else size,
        content=ContentId(n.to_bytes(16, "big")),
        etag=f"{n:032x}",
        content_type="application/octet-stream",
        last_modified=1_700_000_000_000_000 + n,
        version=VersionId((n + 1).to_bytes(16, "big")),
        metadata={"n": str(n)} if n % 3 == 0 else {},
    )


# -- structural invariants -------------------------------------------------------


async def check_invariants(src: MemoryNodeSource, root: Root) -> None:
    """Every node obeys the shape rules and its parent's ChildRef is exact."""
    if root is None:
        return
    top = await src.get_node(root)
    assert top.level == 0 or len(top.keys) > 1, "single-child root not collapsed"
    levels: dict[int, list[Node]] = {}

    async def walk(node_id: NodeId, level: int) -> tuple[str, int, int]:
        node = src.nodes[node_id]
        assert node.id == node_id
        assert node.level == level
        assert node.keys, "empty node"
        assert list(node.keys) == sorted(set(node.keys))
        levels.setdefault(level, []).append(node)
        if level == 0:
            return node.keys[-1], len(node.keys), sum(e.size for e in node.values)
        count = size = 0
        for k, v in zip(node.keys, node.values, strict=True):
            assert isinstance(v, ChildRef)
            mk, c, s = await walk(v.node, level - 1)
            assert mk == k and c == v.count and s == v.size
            count += c
            size += s
        return node.keys[-1], count, size

    await walk(root, top.level)
    for level, nodes in levels.items():
        for pos, node in enumerate(nodes):
            for k in node.keys[:-1]:
                assert tree.height(k) <= level, "boundary inside a node"
            if pos < len(nodes) - 1:
                assert tree.height(node.keys[-1]) > level, "node ended without a boundary"
            else:
                assert level == top.level or len(nodes) > 1


# -- strategies ------------------------------------------------------------------

ALPHABET = "ab/-é日\U0001f600"
small_keys = st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=4)
base_sizes = st.sampled_from([0, 0, 30, 400])


def base_key(i: int) -> str:
    return f"b/{i:04d}"


@st.composite
def scenario(draw: st.DrawFn) -> tuple[int, list[Any]]:
    """A base tree size and batches; a batch is a dict of edits or a
    ("clear", prefix) op deleting every present key with that prefix."""
    n_base = draw(base_sizes)
    keys = small_keys
    if n_base:
        keys = st.one_of(small_keys, st.integers(0, n_base + 5).map(base_key))
    values = st.one_of(st.none(), st.integers(0, 6).map(entry))
    batch = st.one_of(
        st.dictionaries(keys, values, max_size=25),
        st.tuples(st.just("clear"), st.sampled_from(["", "a", "b", "b/00", "/", "日"])),
    )
    batches = draw(st.lists(batch, min_size=1, max_size=6))
    return n_base, batches


def resolve(batch: Any, model: Model) -> Edits:
    if isinstance(batch, tuple):
        return {k: None for k in model if k.startswith(batch[1])}
    return dict(batch)


async def build(src: MemoryNodeSource, model: Model) -> Root:
    return await put(src, None, dict(model))


def base_model(n: int) -> Model:
    return {base_key(i): entry(i) for i in range(n)}


async def check_model(src: MemoryNodeSource, root: Root, model: Model, starts: list[str]) -> None:
    assert await tree.stats(src, root) == (len(model), sum(e.size for e in model.values()))
    for k, v in model.items():
        assert await tree.lookup(src, root, k) == v
    for k in ["", "a", "zz", "b/", "\U0010ffff"]:
        assert await tree.lookup(src, root, k) == model.get(k)
    items = sorted(model.items())
    for s in [*starts, "", "\U0010ffff"]:
        got = await collect(tree.iterate(src, root, s))
        assert got == [(k, v) for k, v in items if k >= s]


def dict_diff(a: Model, b: Model) -> list[tuple[str, ObjectEntry | None, ObjectEntry | None]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# -- properties ------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 5])
@SETTINGS
@given(sc=scenario(), starts=st.lists(small_keys, max_size=4))
def test_incremental_matches_dict_model(
    bits: int, sc: tuple[int, list[Any]], starts: list[str]
) -> None:
    n_base, batches = sc

    async def body() -> None:
        src = MemoryNodeSource()
        model = base_model(n_base)
        root = await build(src, model)
        await check_invariants(src, root)
        for batch in batches:
            edits = resolve(batch, model)
            root = await put(src, root, edits)
            model = step(model, edits)
            await check_invariants(src, root)
            await check_model(src, root, model, starts)
        assert (root is None) == (not model)

    with fanout(bits):
        run(body)


@pytest.mark.parametrize("bits", [1, 2, 5])
@SETTINGS
@given(sc=scenario(), data=st.data())
def test_history_independence(bits: int, sc: tuple[int, list[Any]], data: st.DataObject) -> None:
    n_base, batches = sc
    order = data.draw(st.permutations(range(len(batches))))

    async def body() -> None:
        src = MemoryNodeSource()
        model = base_model(n_base)
        root = await build(src, model)
        for batch in batches:
            edits = resolve(batch, model)
            root = await put(src, root, edits)
            model = step(model, edits)

        # from scratch, in a fresh store
        scratch_src = MemoryNodeSource()
        assert await build(scratch_src, model) == root

        # the batches in another order, then a fix-up batch reaching the same map
        src2 = MemoryNodeSource()
        model2 = base_model(n_base)
        root2 = await build(src2, model2)
        for i in order:
            edits = resolve(batches[i], model2)
            root2 = await put(src2, root2, edits)
            model2 = step(model2, edits)
        fix: Edits = {k: None for k in model2 if k not in model}
        fix.update({k: v for k, v in model.items() if model2.get(k) != v})
        root2 = await put(src2, root2, fix)
        assert root2 == root

        # one key at a time, shuffled
        src3 = MemoryNodeSource()
        root3: Root = None
        keys = list(model)
        random.Random(len(keys)).shuffle(keys)
        for k in keys:
            root3 = await put(src3, root3, {k: model[k]})
        assert root3 == root

    with fanout(bits):
        run(body)


@pytest.mark.parametrize("bits", [1, 2, 5])
@SETTINGS
@given(sc=scenario(), data=st.data())
def test_diff_matches_dict_diff(bits: int, sc: tuple[int, list[Any]], data: st.DataObject) -> None:
    n_base, batches = sc

    async def body() -> None:
        src = MemoryNodeSource()
        model = base_model(n_base)
        root = await build(src, model)
        history: list[tuple[Root, Model]] = [(None, {}), (root, model)]
        for batch in batches:
            edits = resolve(batch, model)
            root = await put(src, root, edits)
            model = step(model, edits)
            history.append((root, model))
        pairs = [(len(history) - 2, len(history) - 1), (0, len(history) - 1), (1, 0)]
        i = data.draw(st.integers(0, len(history) - 1))
        j = data.draw(st.integers(0, len(history) - 1))
        pairs.append((i, j))
        keys = sorted({k for _, m in history for k in m})
        for i, j in pairs:
            (ra, ma), (rb, mb) = history[i], history[j]
            got = await collect(tree.diff(src, ra, rb))
            assert got == dict_diff(ma, mb)
            # Seeking: the same changes from `start` on, whatever start is.
            start = data.draw(st.sampled_from([*keys, "", "\uffff"]) | st.text(max_size=4))
            got = await collect(tree.diff(src, ra, rb, start))
            assert got == [d for d in dict_diff(ma, mb) if d[0] >= start]

    with fanout(bits):
        run(body)


metadata = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
entries = st.builds(
    ObjectEntry,
    size=st.integers(0, 2**63 - 1),
    content=st.binary(min_size=16, max_size=16).map(ContentId),
    etag=st.text(max_size=40),
    content_type=st.text(max_size=20),
    last_modified=st.integers(0, 2**62),
    version=st.binary(min_size=16, max_size=16).map(VersionId),
    metadata=metadata,
    headers=metadata,
    checksums=metadata,
)
refs = st.builds(
    ChildRef,
    node=st.binary(min_size=16, max_size=16).map(NodeId),
    count=st.integers(1, 2**40),
    size=st.integers(0, 2**63 - 1),
)


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    keys = tuple(sorted(draw(st.sets(st.text(min_size=1, max_size=8), min_size=1, max_size=8))))
    level = draw(st.integers(0, 5))
    n = len(keys)
    if level == 0:
        return Node(level, keys, tuple(draw(st.lists(entries, min_size=n, max_size=n))))
    return Node(level, keys, tuple(draw(st.lists(refs, min_size=n, max_size=n))))


@settings(max_examples=150, deadline=None)
@given(node=nodes())
def test_node_encoding_round_trip(node: Node) -> None:
    data = node.encode()
    back = Node.decode(data)
    assert back == node
    assert back.encode() == data
    assert back.id == node.id == NodeId(short_hash(data))
    # a fresh equal node (no memoised encoding) encodes identically
    assert Node(node.level, node.keys, node.values).encode() == data


def test_empty_and_trivial() -> None:
    async def body() -> None:
        src = MemoryNodeSource()
        assert await tree.apply(src, None, {}) == (None, {})
        assert await tree.apply(src, None, {"a": None}) == (None, {})
        assert await tree.lookup(src, None, "a") is None
        assert await collect(tree.iterate(src, None)) == []
        assert await tree.stats(src, None) == (0, 0)
        root = await put(src, None, {"a": entry(1, 5)})
        assert root is not None
        assert await tree.stats(src, root) == (1, 5)
        assert await collect(tree.diff(src, None, root)) == [("a", None, entry(1, 5))]
        assert await collect(tree.diff(src, root, root)) == []
        assert await put(src, root, {"zz": None}) == root  # deleting an absent key
        assert await put(src, root, {"a": entry(1, 5)}) == root  # same value
        assert await put(src, root, {"a": None}) is None

    run(body)


def test_boundary_deletes_merge_nodes() -> None:
    """Deleting every boundary key of a level merges nodes across parents."""

    async def body() -> None:
        src = MemoryNodeSource()
        model = {f"k{i:05d}": entry(i) for i in range(3000)}
        root = await build(src, model)
        boundaries = [k for k in model if tree.height(k) >= 1]
        assert boundaries
        edits: Edits = dict.fromkeys(boundaries[::2])
        root = await put(src, root, edits)
        model = step(model, edits)
        await check_invariants(src, root)
        assert root == await build(MemoryNodeSource(), model)
        # and shrink to a handful, then to nothing
        edits = {k: None for k in list(model)[3:]}
        root = await put(src, root, edits)
        model = step(model, edits)
        await check_invariants(src, root)
        assert root == await build(MemoryNodeSource(), model)
        assert await put(src, root, dict.fromkeys(model)) is None

    run(body)


# -- costs -----------------------------------------------------------------------


N_COST = 20_000


@pytest.fixture(scope="module")
def big() -> tuple[MemoryNodeSource, NodeId, Model, int]:
    async def body() -> tuple[MemoryNodeSource, NodeId, Model, int]:
        src = MemoryNodeSource()
        model = {f"dir{i % 50:02d}/obj-{i:06d}.bin": entry(i) for i in range(N_COST)}
        root = await build(src, model)
        assert root is not None
        levels = (await src.get_node(root)).level + 1
        return src, root, model, levels

    return run(body)


def test_cost_single_put(big: tuple[MemoryNodeSource, NodeId, Model, int]) -> None:
    src, root, model, levels = big
    assert 3 <= levels <= 4
    keys = sorted(model)
    boundary = next(k for k in keys[N_COST // 2 :] if tree.height(k) >= 1)
    cases: list[Edits] = [
        {keys[N_COST // 2]: entry(10**6)},  # overwrite
        {"dir07/obj-010000.bin~": entry(10**6)},  # insert
        {keys[123]: None},  # delete
        {boundary: None},  # delete a node boundary: merge with the next node
        {keys[-1]: None},  # delete the very last key
        {"~after-everything": entry(10**6)},  # append past the end
        {"": entry(10**6)},  # before everything
    ]

    async def body() -> None:
        for edits in cases:
            src.fetches = 0
            new_root, nodes = await tree.apply(src, root, edits)
            assert len(nodes) <= (levels + 2) * 2, edits
            assert src.fetches <= 3 * (levels + 1), edits
            src.add(nodes)
            await check_invariants(src, new_root)
            expected = await tree.stats(src, root)
            delta = sum(
                (e.size if e else 0) - (model[k].size if k in model else 0)
                for k, e in edits.items()
            )
            count_delta = sum((e is not None) - (k in model) for k, e in edits.items())
            assert await tree.stats(src, new_root) == (
                expected[0] + count_delta,
                expected[1] + delta,
            )
            for k, e in edits.items():
                assert await tree.lookup(src, new_root, k) == e

    run(body)


def test_cost_diff_and_iterate(big: tuple[MemoryNodeSource, NodeId, Model, int]) -> None:
    src, root, model, levels = big
    keys = sorted(model)

    async def body() -> None:
        key = keys[N_COST // 3]
        new_root = await put(src, root, {key: entry(10**7), key + "x": entry(3)})
        src.fetches = 0
        got = await collect(tree.diff(src, root, new_root))
        assert got == [(key, model[key], entry(10**7)), (key + "x", None, entry(3))]
        assert src.fetches < 60

        # Seeking past every change but the last reads about one path down.
        src.fetches = 0
        got = await collect(tree.diff(src, root, new_root, key + "\0"))
        assert got == [(key + "x", None, entry(3))]
        assert src.fetches <= 2 * levels + 4
        # Seeking past all of them reads no more.
        src.fetches = 0
        assert await collect(tree.diff(src, root, new_root, key + "y")) == []
        assert src.fetches <= 2 * levels + 4

        src.fetches = 0
        it = tree.iterate(src, root, keys[N_COST // 2] + "\0")
        first = [await it.__anext__() for _ in range(10)]
        await it.aclose()  # type: ignore[attr-defined]
        assert [k for k, _ in first] == keys[N_COST // 2 + 1 : N_COST // 2 + 11]
        assert src.fetches <= levels + 3

        src.fetches = 0
        assert await tree.lookup(src, root, keys[7]) == model[keys[7]]
        assert src.fetches == levels
        src.fetches = 0
        assert await tree.stats(src, root) == (N_COST, sum(e.size for e in model.values()))
        assert src.fetches == 1

    run(body)


def test_cost_batch_put(big: tuple[MemoryNodeSource, NodeId, Model, int]) -> None:
    """k scattered edits write O(k log N) nodes, far fewer than the tree."""
    src, root, model, levels = big
    keys = sorted(model)
    edits: Edits = {keys[i]: entry(i + 10**6) for i in range(0, N_COST, N_COST // 20)}

    async def body() -> None:
        src.fetches = 0
        new_root, nodes = await tree.apply(src, root, edits)
        assert len(nodes) <= len(edits) * (levels + 2)
        assert src.fetches <= len(edits) * (levels + 2)
        src.add(nodes)
        assert new_root == await build(MemoryNodeSource(), step(model, edits))

    run(body)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=40, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_leaf_encoding_is_the_plain_msgpack_encoding(keys: list[str], seed: int) -> None:
    """Node.encode joins cached entry bytes; it must equal packing the whole
    page at once, or node ids (and so commit ids) would change."""
    rng = random.Random(seed)
    keys.sort()
    entries = tuple(
        ObjectEntry(
            size=rng.randrange(2**40),
            content=ContentId(rng.randbytes(16)),
            etag=rng.randbytes(16).hex(),
            content_type="text/plain",
            last_modified=rng.randrange(2**62),
            version=VersionId(rng.randbytes(16)),
            metadata={"k": "v"} if rng.random() < 0.5 else {},
            parts=(5, 7) if rng.random() < 0.3 else (),
        )
        for _ in keys
    )
    node = Node(0, tuple(keys), entries)
    assert node.encode() == pack([0, keys, [e.to_wire() for e in entries]])
    assert Node.decode(node.encode()).encode() == node.encode()
