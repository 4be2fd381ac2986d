"""Tests for versioning.pipelines.datums: datum sets, datum ids and job plans."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from versioning.pipelines.datums import (
    Datum,
    PastDatum,
    PfsInput,
    PfsListing,
    cross,
    datum_id,
    datum_location,
    group,
    join,
    pfs_datums,
    plan,
    union,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

contents = st.binary(min_size=16, max_size=16)
files_st = st.dictionaries(
    st.text(alphabet="abc/", min_size=1, max_size=5).filter(lambda k: not k.startswith("/")),
    contents,
    max_size=10,
)


def listing(files: dict[str, bytes], name: str = "in", commit: str = "c1") -> PfsListing:
    return PfsListing(name=name, repo=name + "-repo", branch="master", commit=commit, files=files)


def pfs(files: dict[str, bytes], glob: str = "/*", name: str = "in", **kw: object) -> PfsInput:
    return PfsInput(listing(files, name), glob, **kw)  # type: ignore[arg-type]


def paths(datums: list[Datum]) -> list[tuple[str, ...]]:
    return [tuple(d.path for d in datum) for datum in datums]


def keys_of(datum: Datum) -> list[str]:
    return [k for d in datum for k, _ in d.files]


def cid(n: int) -> bytes:
    return n.to_bytes(16, "big")


# -- datum sets -------------------------------------------------------------------


@SETTINGS
@given(files_st)
def test_star_partitions_the_keys_by_top_level_segment(files: dict[str, bytes]) -> None:
    datums = pfs_datums(pfs(files))
    seen = [k for datum in datums for k in keys_of(datum)]
    assert sorted(seen) == sorted(files)  # every key once
    for datum in datums:
        (d,) = datum
        assert {k.split("/")[0] for k, _ in d.files} == {d.path[1:]}
        assert all(files[k] == c for k, c in d.files)
        assert [k for k, _ in d.files] == sorted(k for k, _ in d.files)
    assert len(datums) == len({k.split("/")[0] for k in files})


@SETTINGS
@given(files_st)
def test_root_is_one_datum_with_every_file(files: dict[str, bytes]) -> None:
    datums = pfs_datums(pfs(files, "/"))
    if not files:
        assert datums == []
        return
    ((d,),) = datums
    assert d.path == "/"
    assert dict(d.files) == files


@SETTINGS
@given(st.lists(files_st, min_size=1, max_size=3))
def test_cross_sizes_multiply_and_union_sizes_add(listings: list[dict[str, bytes]]) -> None:
    sets = [pfs_datums(pfs(f, name=f"in{i}")) for i, f in enumerate(listings)]
    crossed = cross(*sets)
    sizes = [len(s) for s in sets]
    assert len(crossed) == math.prod(sizes)
    assert crossed == [tuple(itertools.chain(*c)) for c in itertools.product(*sets)]
    assert all([d.name for d in datum] == [f"in{i}" for i in range(len(sets))] for datum in crossed)
    assert len(union(*sets)) == sum(sizes)
    assert union(*sets) == [d for s in sets for d in s]


def test_empty_cross_union_join_group_are_refused() -> None:
    for f in (cross, union, join, group):
        with pytest.raises(ValueError, match="at least one input"):
            f()


join_files = st.dictionaries(
    st.builds(lambda k, n: f"{k}-{n}", st.sampled_from("pqrs"), st.integers(0, 3)),
    contents,
    max_size=6,
)


@SETTINGS
@given(join_files, join_files, st.booleans(), st.booleans())
def test_join_pairs_exactly_the_equal_captures(
    a: dict[str, bytes], b: dict[str, bytes], outer_a: bool, outer_b: bool
) -> None:
    left = pfs(a, "/(*)-*", "left", join_on="$1", outer_join=outer_a)
    right = pfs(b, "/(*)-*", "right", join_on="$1", outer_join=outer_b)
    got = paths(join(left, right))

    def cap(path: str) -> str:
        return path[1:].split("-")[0]

    expected = {("/" + x, "/" + y) for x in a for y in b if cap("/" + x) == cap("/" + y)}
    if outer_a:
        expected |= {("/" + x,) for x in a if all(cap("/" + x) != cap("/" + y) for y in b)}
    if outer_b:
        expected |= {("/" + y,) for y in b if all(cap("/" + x) != cap("/" + y) for x in a)}
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))
    # datums come in key order
    assert [cap(p[0]) for p in got] == sorted(cap(p[0]) for p in got)


def test_join_substitutes_several_groups_and_refuses_unknown_ones() -> None:
    a = pfs({"x-1.csv": cid(1), "y-2.csv": cid(2)}, "/(*)-(*).csv", "a", join_on="$2$1")
    b = pfs({"1x.txt": cid(3), "2z.txt": cid(4)}, "/(*).txt", "b", join_on="$1")
    assert paths(join(a, b)) == [("/x-1.csv", "/1x.txt")]
    bad = pfs({"x-1.csv": cid(1)}, "/(*)-(*).csv", "a", join_on="$3")
    with pytest.raises(ValueError, match=r"\$3"):
        join(bad, b)


@SETTINGS
@given(join_files, join_files)
def test_group_partitions_by_key(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    left = pfs(a, "/(*)-*", "left", group_by="$1")
    right = pfs(b, "/(*)-*", "right", group_by="$1")
    datums = group(left, right)
    all_paths = [(d.name, d.path) for datum in datums for d in datum]
    expected = [("left", "/" + k) for k in a] + [("right", "/" + k) for k in b]
    assert sorted(all_paths) == sorted(expected)  # each path exactly once
    keys = [{d.path[1:].split("-")[0] for d in datum} for datum in datums]
    assert all(len(k) == 1 for k in keys)  # one key per datum
    assert len({next(iter(k)) for k in keys}) == len(datums)  # one datum per key


# -- datum ids --------------------------------------------------------------------


@SETTINGS
@given(files_st.filter(bool), st.randoms(use_true_random=False))
def test_datum_id_is_stable_and_content_addressed(
    files: dict[str, bytes], rnd: random.Random
) -> None:
    (datum,) = pfs_datums(pfs(files, "/"))
    base = datum_id(datum, "salt")
    shuffled = list(files.items())
    rnd.shuffle(shuffled)
    (again,) = pfs_datums(pfs(dict(shuffled), "/"))
    assert datum_id(again, "salt") == base
    other_commit = pfs_datums(PfsInput(listing(files, commit="c2"), "/"))[0]
    assert other_commit[0].commit == "c2"
    assert datum_id(other_commit, "salt") == base
    assert datum_id(datum, "salt2") != base
    key = rnd.choice(sorted(files))
    changed = dict(files)
    changed[key] = bytes(x ^ 1 for x in files[key])
    assert datum_id(pfs_datums(pfs(changed, "/"))[0], "salt") != base
    assert datum_location(pfs_datums(pfs(changed, "/"))[0]) == datum_location(datum)
    renamed = pfs_datums(pfs(files, "/", name="other"))[0]
    assert datum_id(renamed, "salt") != base
    assert len(base) == 32 and int(base, 16) >= 0


# -- plans ------------------------------------------------------------------------


def succeeded(datums: list[Datum], salt: str = "s") -> dict[str, PastDatum]:
    return {datum_id(d, salt): PastDatum("success", datum_location(d), True) for d in datums}


def reasons(entries: list[object]) -> list[str]:
    return [e.reason for e in entries]  # type: ignore[attr-defined]


top_files = st.dictionaries(
    st.builds(lambda d, f: f"{d}/{f}", st.sampled_from("abcdef"), st.sampled_from("xyz")),
    contents,
    min_size=1,
    max_size=12,
)


@SETTINGS
@given(top_files, st.sampled_from("abcdefg"), st.sampled_from("xyzw"))
def test_adding_one_file_runs_exactly_its_datum(
    files: dict[str, bytes], top: str, name: str
) -> None:
    before = pfs_datums(pfs(files))
    key = f"{top}/{name}"
    if key in files:
        return
    after = pfs_datums(pfs({**files, key: cid(7)}))
    p = plan(succeeded(before), after, "s")
    assert [e.datum[0].path for e in p.to_run] == [f"/{top}"]
    assert len(p.skipped) == len(after) - 1
    assert set(reasons(p.skipped)) <= {"unchanged"}
    if any(k.startswith(f"{top}/") for k in files):
        assert reasons(p.to_run) == ["content changed"]
        assert reasons(p.removed) == ["content changed"]
    else:
        assert reasons(p.to_run) == ["new"]
        assert p.removed == []


@SETTINGS
@given(top_files, st.data())
def test_deleting_a_datum_removes_exactly_it(files: dict[str, bytes], data: st.DataObject) -> None:
    before = pfs_datums(pfs(files))
    top = data.draw(st.sampled_from(sorted({k.split("/")[0] for k in files})))
    after = pfs_datums(pfs({k: c for k, c in files.items() if not k.startswith(top + "/")}))
    p = plan(succeeded(before), after, "s")
    assert p.to_run == []
    assert len(p.skipped) == len(before) - 1
    gone = [d for d in before if d[0].path == f"/{top}"]
    assert [(r.id, r.reason) for r in p.removed] == [(datum_id(gone[0], "s"), "input removed")]


def test_reverting_a_file_reuses_an_older_result() -> None:
    v1 = {"a/x": cid(1), "b/x": cid(2)}
    v2 = {"a/x": cid(3), "b/x": cid(2)}
    job1 = pfs_datums(pfs(v1))
    history = succeeded(job1)
    job2 = pfs_datums(pfs(v2))
    p2 = plan(history, job2, "s")
    assert [(e.datum[0].path, e.reason) for e in p2.to_run] == [("/a", "content changed")]
    # after job 2: its datums are live, job 1's /a is not (but its result is kept)
    history = {k: PastDatum(v.outcome, v.location, False) for k, v in history.items()}
    history.update(succeeded(job2))
    p3 = plan(history, pfs_datums(pfs(v1)), "s")
    assert p3.to_run == []
    assert sorted((e.datum[0].path, e.reason) for e in p3.skipped) == [
        ("/a", "unchanged since an older job"),
        ("/b", "unchanged"),
    ]
    assert [r.id for r in p3.removed] == [datum_id(job2[0], "s")]
    assert reasons(p3.removed) == ["content changed"]


def test_failed_recovered_reprocess_and_salt() -> None:
    datums = pfs_datums(pfs({"a": cid(1), "b": cid(2), "c": cid(3)}))
    ids = [datum_id(d, "s") for d in datums]
    locs = [datum_location(d) for d in datums]
    history = {
        ids[0]: PastDatum("success", locs[0], True),
        ids[1]: PastDatum("failed", locs[1], False),
        ids[2]: PastDatum("recovered", locs[2], False),
    }
    p = plan(history, datums, "s")
    assert reasons(p.to_run) == ["failed last time", "recovered last time"]
    assert reasons(p.skipped) == ["unchanged"] and p.removed == []
    p = plan(history, datums, "s", reprocess_every_job=True)
    assert reasons(p.to_run) == ["reprocess", "failed last time", "recovered last time"]
    assert p.skipped == []
    # a new salt: no id is known (the caller passes the last job's live datums
    # whatever their salt), so every datum runs and the old live outputs go
    p = plan(history, datums, "new salt")
    assert reasons(p.to_run) == ["content changed"] * 3
    assert [r.id for r in p.removed] == [ids[0]]


def test_a_datum_listed_twice_is_planned_once() -> None:
    datums = pfs_datums(pfs({"a": cid(1)}))
    p = plan({}, union(datums, datums), "s")
    assert len(p.to_run) == 1 and p.skipped == [] and p.removed == []
