"""Property tests for versioning.merge against plain dict models.

Trees are built in memory (tree.apply into a MemoryNodeSource); the models
are dicts path -> ObjectEntry, compared by object identity (content id,
content type, metadata, headers, tags) where merge semantics call for "the same
object", and by full entry equality where a side's entry is simply taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.versioning.trees import Edits, Model, fanout, put, read, run, step
from versioning import merge
from versioning.ids import CommitId, ContentId, VersionId
from versioning.merge import Conflict, Strategy
from versioning.model import Commit, ObjectEntry
from versioning.tree import MemoryNodeSource

Pairs = tuple[tuple[str, str], ...]
Identity = tuple[bytes, str, Pairs, Pairs, Pairs]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STRATEGIES: list[Strategy | None] = [None, Strategy.OURS, Strategy.THEIRS]


# -- object identities and writes ------------------------------------------------

# (content number, content type, metadata, headers, tags). Several differ from
# the first in exactly one attribute, so `same_object` must look at each of them.
BODIES: list[tuple[int, str, dict[str, str], dict[str, str], dict[str, str]]] = [
    (0, "application/octet-stream", {}, {}, {}),
    (1, "application/octet-stream", {}, {}, {}),
    (0, "text/plain", {}, {}, {}),
    (0, "application/octet-stream", {"m": "1"}, {}, {}),
    (0, "application/octet-stream", {}, {"cache-control": "no-cache"}, {}),
    (2, "application/octet-stream", {"m": "1"}, {}, {}),
    (0, "application/octet-stream", {}, {}, {"team": "data"}),
]


class Writer:
    """Makes entries as separate writes would: a fresh version and
    last_modified each time, whatever the body."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, body: int) -> ObjectEntry:
        self.n += 1
        content, ctype, meta, headers, tags = BODIES[body]
        return ObjectEntry(
            size=100 + content,
            content=ContentId(content.to_bytes(16, "big")),
            etag=f"{content:032x}",
            content_type=ctype,
            last_modified=1_700_000_000_000_000 + self.n,
            version=VersionId(self.n.to_bytes(16, "big")),
            metadata=dict(meta),
            headers=dict(headers),
            checksums={"n": str(self.n)},  # not part of the identity either
            tags=dict(tags),
        )


def body_of(e: ObjectEntry) -> int:
    """The BODIES index of an entry made by a Writer."""
    return next(i for i in range(len(BODIES)) if ident(Writer().write(i)) == ident(e))


def ident(e: ObjectEntry | None) -> Identity | None:
    if e is None:
        return None
    return (
        bytes(e.content),
        e.content_type,
        tuple(sorted(e.metadata.items())),
        tuple(sorted(e.headers.items())),
        tuple(sorted(e.tags.items())),
    )


def kind(ours: ObjectEntry | None, theirs: ObjectEntry | None) -> str:
    if theirs is None:
        return "deleted-in-source"
    if ours is None:
        return "deleted-in-target"
    return "both-changed"


# -- scenario strategies ---------------------------------------------------------

KEEP, PUT, DELETE, LIKE_OTHER, EXACT_OTHER, LIKE_BASE = range(6)


def key_space(n: int) -> list[str]:
    # nested-looking names too, so keys sort across "directory" boundaries
    return [f"k{i:02d}" if i % 3 else f"d/{i:02d}" for i in range(n)]


def filler(n: int) -> Model:
    w = Writer()
    w.n = 10**6  # distinct versions from the scenario's writes
    return {f"f/{i:03d}": w.write(i % len(BODIES)) for i in range(n)}


@dataclass
class MergeCase:
    base: Model
    ours: Model
    theirs: Model


@st.composite
def merge_cases(draw: st.DrawFn) -> MergeCase:
    """A base map and two independent edit sets over a small key space, so
    that both sides often touch the same paths, sometimes identically."""
    w = Writer()
    keys = key_space(draw(st.integers(6, 12)))
    bodies = st.integers(0, len(BODIES) - 1)
    base = filler(draw(st.sampled_from([0, 0, 40])))
    for k in keys:
        if draw(st.booleans()):
            base[k] = w.write(draw(bodies))

    theirs_edits: Edits = {}
    for k in keys:
        op = draw(st.sampled_from([KEEP, KEEP, PUT, PUT, DELETE, LIKE_BASE]))
        if op == PUT:
            theirs_edits[k] = w.write(draw(bodies))
        elif op == DELETE:
            theirs_edits[k] = None
        elif op == LIKE_BASE and k in base:
            # rewritten with the very same body: a new version, same object
            theirs_edits[k] = w.write(body_of(base[k]))
    theirs = step(base, theirs_edits)

    ours_edits: Edits = {}
    for k in keys:
        op = draw(st.sampled_from([KEEP, KEEP, PUT, DELETE, LIKE_OTHER, EXACT_OTHER]))
        if op == PUT:
            ours_edits[k] = w.write(draw(bodies))
        elif op == DELETE:
            ours_edits[k] = None
        elif op in (LIKE_OTHER, EXACT_OTHER) and k in theirs_edits:
            other = theirs_edits[k]
            if other is None or op == EXACT_OTHER:
                ours_edits[k] = other
            else:
                # the same body as the other side, written separately
                ours_edits[k] = w.write(body_of(other))
    ours = step(base, ours_edits)
    return MergeCase(base, ours, theirs)


def model_merge(
    case: MergeCase, strategy: Strategy | None
) -> tuple[Model, set[tuple[str, str]], set[str]]:
    """(merged map, {(path, conflict kind)}, paths changed by theirs)."""
    merged = dict(case.ours)
    conflicts: set[tuple[str, str]] = set()
    their_changes: set[str] = set()
    for k in set(case.base) | set(case.ours) | set(case.theirs):
        b, o, t = case.base.get(k), case.ours.get(k), case.theirs.get(k)
        if ident(t) == ident(b):
            continue  # theirs did not change it (a rewrite of the same object): ours stands
        their_changes.add(k)
        if ident(o) == ident(b):
            chosen = t  # changed on their side only
        elif ident(o) == ident(t):
            chosen = o  # changed on both sides to the same object
        else:
            conflicts.add((k, kind(o, t)))
            chosen = t if strategy is Strategy.THEIRS else o
        if chosen is None:
            merged.pop(k, None)
        else:
            merged[k] = chosen
    return merged, conflicts, their_changes


# -- three_way -------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 5])
@SETTINGS
@given(case=merge_cases())
def test_three_way_matches_model(bits: int, case: MergeCase) -> None:
    async def body() -> None:
        src = MemoryNodeSource()
        base = await put(src, None, dict(case.base))
        ours = await put(src, base, {k: case.ours.get(k) for k in set(case.base) | set(case.ours)})
        theirs = await put(
            src, base, {k: case.theirs.get(k) for k in set(case.base) | set(case.theirs)}
        )
        assert await read(src, ours) == case.ours
        assert await read(src, theirs) == case.theirs

        conflict_lists = []
        for strategy in STRATEGIES:
            want, want_conflicts, their_changes = model_merge(case, strategy)
            plan = await merge.three_way(src, base, ours, theirs, strategy)
            got_conflicts = {(c.path, c.kind) for c in plan.conflicts}
            assert got_conflicts == want_conflicts, strategy
            assert len(plan.conflicts) == len(got_conflicts), "duplicate conflicts"
            conflict_lists.append(plan.conflicts)
            # only paths their side changed are written; conflicts only by THEIRS
            assert set(plan.edits) <= their_changes
            conflict_paths = {p for p, _ in want_conflicts}
            if strategy is Strategy.THEIRS:
                assert conflict_paths <= set(plan.edits)
            else:
                assert not conflict_paths & set(plan.edits)
            assert step(case.ours, plan.edits) == want, strategy
            merged = await put(src, ours, plan.edits)
            assert await read(src, merged) == want, strategy
        # the strategy settles conflicts but does not change which they are
        assert conflict_lists[0] == conflict_lists[1] == conflict_lists[2]

    with fanout(bits):
        run(body)


@pytest.mark.parametrize("bits", [1, 5])
@SETTINGS
@given(case=merge_cases())
def test_three_way_fast_forward_shapes(bits: int, case: MergeCase) -> None:
    async def body() -> None:
        src = MemoryNodeSource()
        base = await put(src, None, dict(case.base))
        theirs = await put(
            src, base, {k: case.theirs.get(k) for k in set(case.base) | set(case.theirs)}
        )
        for strategy in STRATEGIES:
            # ours is the base: their side wins everywhere, without conflicts
            # (a path theirs rewrote with the same object is not a change, so
            # the result equals theirs object for object)
            plan = await merge.three_way(src, base, base, theirs, strategy)
            assert plan.conflicts == []
            merged = step(case.base, plan.edits)
            assert {k: ident(v) for k, v in merged.items()} == {
                k: ident(v) for k, v in case.theirs.items()
            }
            # theirs is the base: nothing to do
            plan = await merge.three_way(src, base, theirs, base, strategy)
            assert plan.edits == {}
            assert plan.conflicts == []
            # merging a tree into itself
            plan = await merge.three_way(src, base, theirs, theirs, strategy)
            assert plan.edits == {}
            assert plan.conflicts == []

    with fanout(bits):
        run(body)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, len(BODIES) - 1), b=st.integers(0, len(BODIES) - 1))
def test_same_object_is_identity(a: int, b: int) -> None:
    w = Writer()
    ea, eb = w.write(a), w.write(b)
    assert ea != eb  # different writes
    assert merge.same_object(ea, eb) == (a == b) == (ident(ea) == ident(eb))
    assert merge.same_object(ea, ea)
    assert not merge.same_object(ea, None)
    assert not merge.same_object(None, eb)
    assert merge.same_object(None, None)


def test_three_way_conflict_kinds() -> None:
    """One path of each kind, spelled out."""
    w = Writer()
    base = {"both": w.write(0), "src-del": w.write(0), "tgt-del": w.write(0), "same": w.write(0)}
    ours = {"both": w.write(1), "src-del": w.write(2), "same": w.write(3)}
    theirs = {"both": w.write(2), "tgt-del": w.write(1), "same": w.write(3), "new": w.write(5)}

    async def body() -> None:
        src = MemoryNodeSource()
        rb = await put(src, None, dict(base))
        ro = await put(src, None, dict(ours))
        rt = await put(src, None, dict(theirs))
        plan = await merge.three_way(src, rb, ro, rt)
        assert sorted(plan.conflicts, key=lambda c: c.path) == [
            Conflict("both", "both-changed"),
            Conflict("src-del", "deleted-in-source"),
            Conflict("tgt-del", "deleted-in-target"),
        ]
        assert plan.edits == {"new": theirs["new"]}
        plan = await merge.three_way(src, rb, ro, rt, Strategy.THEIRS)
        assert plan.edits == {
            "both": theirs["both"],
            "src-del": None,
            "tgt-del": theirs["tgt-del"],
            "new": theirs["new"],
        }

    run(body)


# -- revert ----------------------------------------------------------------------


@dataclass
class RevertCase:
    parent: Model
    commit: Model
    head: Model


@st.composite
def revert_cases(draw: st.DrawFn) -> RevertCase:
    w = Writer()
    keys = key_space(draw(st.integers(6, 12)))
    bodies = st.integers(0, len(BODIES) - 1)
    parent = filler(draw(st.sampled_from([0, 0, 40])))
    for k in keys:
        if draw(st.booleans()):
            parent[k] = w.write(draw(bodies))

    commit_edits: Edits = {}
    for k in keys:
        op = draw(st.sampled_from([KEEP, PUT, PUT, DELETE, LIKE_BASE]))
        if op == PUT:
            commit_edits[k] = w.write(draw(bodies))
        elif op == DELETE:
            commit_edits[k] = None
        elif op == LIKE_BASE and k in parent:
            commit_edits[k] = w.write(body_of(parent[k]))
    commit = step(parent, commit_edits)

    # later changes on the head: some touch the commit's paths again
    head_edits: Edits = {}
    for k in keys:
        op = draw(st.sampled_from([KEEP, KEEP, KEEP, PUT, DELETE, LIKE_OTHER, LIKE_BASE]))
        if op == PUT:
            head_edits[k] = w.write(draw(bodies))
        elif op == DELETE:
            head_edits[k] = None
        elif op == LIKE_OTHER and k in commit:
            # rewritten with the commit's body: still the commit's object
            head_edits[k] = w.write(body_of(commit[k]))
        elif op == LIKE_BASE:
            # set back to the parent's entry by hand
            head_edits[k] = parent.get(k)
    head = step(commit, head_edits)
    return RevertCase(parent, commit, head)


def model_revert(case: RevertCase) -> tuple[Model, set[tuple[str, str]]]:
    result = dict(case.head)
    conflicts: set[tuple[str, str]] = set()
    for k in set(case.parent) | set(case.commit):
        before, after = case.parent.get(k), case.commit.get(k)
        if ident(before) == ident(after):
            continue  # the commit did not touch it, or rewrote the same object
        now = case.head.get(k)
        if ident(now) == ident(before):
            continue  # already undone
        if ident(now) != ident(after):
            conflicts.add((k, kind(now, before)))
            continue
        if before is None:
            result.pop(k, None)
        else:
            result[k] = before
    return result, conflicts


@pytest.mark.parametrize("bits", [1, 5])
@SETTINGS
@given(case=revert_cases())
def test_revert_matches_model(bits: int, case: RevertCase) -> None:
    async def body() -> None:
        src = MemoryNodeSource()
        parent = await put(src, None, dict(case.parent))
        commit = await put(
            src, parent, {k: case.commit.get(k) for k in set(case.parent) | set(case.commit)}
        )
        head = await put(
            src, commit, {k: case.head.get(k) for k in set(case.commit) | set(case.head)}
        )
        assert await read(src, head) == case.head

        want, want_conflicts = model_revert(case)
        plan = await merge.revert(src, parent, commit, head)
        assert {(c.path, c.kind) for c in plan.conflicts} == want_conflicts
        assert len(plan.conflicts) == len(want_conflicts), "duplicate conflicts"
        # conflicting paths are left alone; the rest is undone
        assert not {p for p, _ in want_conflicts} & set(plan.edits)
        assert step(case.head, plan.edits) == want
        assert await read(src, await put(src, head, plan.edits)) == want
        if not want_conflicts:
            # nothing changed since: reverting on the commit itself gives the parent
            again = await merge.revert(src, parent, commit, commit)
            assert again.conflicts == []
            undone = await read(src, await put(src, commit, again.edits))
            assert {k: ident(v) for k, v in undone.items()} == {
                k: ident(v) for k, v in case.parent.items()
            }

    with fanout(bits):
        run(body)


# -- merge_base ------------------------------------------------------------------


@dataclass
class Dag:
    commits: dict[CommitId, Commit]
    order: list[CommitId]  # creation order


@st.composite
def dags(draw: st.DrawFn, ties: bool = False) -> Dag:
    """Commits in creation order, each with 0 (a root), 1 or 2 earlier
    parents. Times increase strictly, or with `ties` only weakly."""
    n = draw(st.integers(1, 16))
    commits: dict[CommitId, Commit] = {}
    order: list[CommitId] = []
    time = 1_700_000_000_000_000
    for i in range(n):
        time += draw(st.integers(0, 2)) if ties else draw(st.integers(1, 3))
        parents: list[CommitId] = []
        if i and draw(st.integers(0, 5)) != 0:  # one in six is a root
            picks = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=2, unique=True))
            parents = [order[p] for p in picks]
        c = Commit(
            parents=tuple(parents),
            tree=None,
            author="t",
            message=f"c{i}",
            time=time,
            origin={},
        )
        commits[c.id] = c
        order.append(c.id)
    return Dag(commits, order)


def ancestors(dag: Dag, cid: CommitId) -> set[CommitId]:
    seen = {cid}
    todo = [cid]
    while todo:
        for p in dag.commits[todo.pop()].parents:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


async def check_merge_base(dag: Dag, a: CommitId, b: CommitId) -> None:
    async def get_commit(cid: CommitId) -> Commit:
        return dag.commits[cid]

    def name(cid: Any) -> str:
        return "None" if cid is None else f"c{dag.order.index(cid)}"

    graph = {name(c): [name(p) for p in dag.commits[c].parents] for c in dag.order}
    times = {name(c): dag.commits[c].time for c in dag.order}
    got = await merge.merge_base(get_commit, a, b)
    common = ancestors(dag, a) & ancestors(dag, b)
    where = f"merge_base({name(a)}, {name(b)}) = {name(got)}; parents {graph}; times {times}"
    if not common:
        assert got is None, where
        return
    assert got is not None, where
    assert got in common, f"not a common ancestor: {where}"
    best = max(dag.commits[c].time for c in common)
    assert dag.commits[got].time == best, f"a newer common ancestor exists: {where}"


@settings(max_examples=300, deadline=None)
@given(dag=dags(), data=st.data())
def test_merge_base_is_newest_common_ancestor(dag: Dag, data: st.DataObject) -> None:
    a = data.draw(st.sampled_from(dag.order))
    b = data.draw(st.sampled_from(dag.order))

    async def get_commit(cid: CommitId) -> Commit:
        return dag.commits[cid]

    async def body() -> None:
        await check_merge_base(dag, a, b)
        await check_merge_base(dag, b, a)
        for c in dag.order:
            assert await merge.merge_base(get_commit, c, c) == c

    run(body)


@settings(max_examples=300, deadline=None)
@given(dag=dags(ties=True), data=st.data())
def test_merge_base_with_equal_times(dag: Dag, data: st.DataObject) -> None:
    """Commits made within the same microsecond (equal times, parent and
    child included) still give a newest common ancestor."""
    a = data.draw(st.sampled_from(dag.order))
    b = data.draw(st.sampled_from(dag.order))

    async def body() -> None:
        await check_merge_base(dag, a, b)
        await check_merge_base(dag, b, a)

    run(body)


def test_merge_base_examples() -> None:
    """A criss-cross, a linear history and two unrelated roots."""
    commits: dict[CommitId, Commit] = {}

    def mk(name: str, t: int, *parents: CommitId) -> CommitId:
        c = Commit(tuple(parents), None, "t", name, t, {})
        commits[c.id] = c
        return c.id

    async def get_commit(cid: CommitId) -> Commit:
        return commits[cid]

    r = mk("r", 1)
    x = mk("x", 2, r)
    y = mk("y", 3, r)
    m1 = mk("m1", 4, x, y)
    m2 = mk("m2", 5, y, x)
    a = mk("a", 6, m1)
    b = mk("b", 7, m2)
    other = mk("other", 8)

    async def body() -> None:
        assert await merge.merge_base(get_commit, a, b) == y  # newest of x and y
        assert await merge.merge_base(get_commit, a, m1) == m1
        assert await merge.merge_base(get_commit, r, b) == r
        assert await merge.merge_base(get_commit, a, other) is None
        assert await merge.merge_base(get_commit, other, other) == other

    run(body)
