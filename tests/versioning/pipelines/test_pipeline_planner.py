"""Tests for versioning.pipelines.planner over an in-memory tree reader: what
it lists (only under each glob's prefix), the datums of each input kind, the
decisions against a history, and what it refuses."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from versioning import errors
from versioning.ids import CommitId, ContentId
from versioning.model import ObjectEntry
from versioning.pipelines.datums import PastDatum
from versioning.pipelines.planner import SpecPlan, plan_spec
from versioning.pipelines.spec import SpecError, parse_spec
from versioning.views import ObjectAttrs, View, new_entry

COMMIT = CommitId(b"\x01" * 16)


def entry(data: bytes) -> ObjectEntry:
    content = ContentId(data.ljust(16, b"\0")[:16])
    return new_entry(content, len(data), "0" * 32, ObjectAttrs("text/plain", {}, {}))


class FakeTrees:
    """Branch heads of in-memory repos; counts the keys each iteration yields."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = {r: {k: entry(v) for k, v in files.items()} for r, files in repos.items()}
        self.yielded = 0
        self.starts: list[str] = []

    async def branch_view(self, repo: str, name: str | None) -> View:
        if repo not in self.repos:
            raise errors.RepoNotFound(repo)
        if name != "main":
            raise errors.BranchNotFound(f"{repo}@{name}")
        return View(repo, name, COMMIT if self.repos[repo] else None, None)

    async def _iterate(self, view: View, start: str) -> AsyncIterator[tuple[str, ObjectEntry]]:
        self.starts.append(start)
        files = self.repos[view.repo]
        keys = sorted(files)
        for key in keys[bisect.bisect_left(keys, start) :]:
            self.yielded += 1
            yield key, files[key]

    def iterate(self, view: View, start: str = "") -> AsyncIterator[tuple[str, ObjectEntry]]:
        return self._iterate(view, start)


def spec(input_: dict[str, Any]) -> Any:
    return parse_spec(
        {"pipeline": {"name": "planned"}, "input": input_, "transform": {"cmd": ["true"]}}
    )


def pfs(repo: str, glob: str, **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


def run(trees: FakeTrees, input_: dict[str, Any], **kwargs: Any) -> SpecPlan:
    return asyncio.run(plan_spec(trees, spec(input_), **kwargs))


IMAGES = {"images/a.png": b"aaaa", "images/b.png": b"bb", "other/c.txt": b"c"}


def paths(plan: SpecPlan) -> list[tuple[str, ...]]:
    return [tuple(i.path for i in d.inputs) for d in plan.datums]


def test_glob_star_under_a_folder() -> None:
    trees = FakeTrees({"images": IMAGES})
    plan = run(trees, pfs("images", "/images/*"))
    assert paths(plan) == [("/images/a.png",), ("/images/b.png",)]
    assert [(d.decision, d.reason) for d in plan.datums] == [("run", "new")] * 2
    first = plan.datums[0].inputs[0]
    assert (first.name, first.repo, first.branch, first.commit) == (
        "images",
        "images",
        "main",
        COMMIT.hex(),
    )
    assert (first.files, first.bytes) == (1, 4)
    assert plan.totals == {"datums": 2, "run": 2, "skip": 0, "remove": 0}
    assert trees.starts == ["images/"]


def test_root_glob_is_one_datum_of_everything() -> None:
    plan = run(FakeTrees({"images": IMAGES}), pfs("images", "/"))
    assert paths(plan) == [("/",)]
    assert (plan.datums[0].inputs[0].files, plan.datums[0].inputs[0].bytes) == (3, 7)


def test_empty_branch_has_no_datums() -> None:
    plan = run(FakeTrees({"images": {}}), pfs("images", "/*"))
    assert plan.datums == () and plan.totals["datums"] == 0


def test_reads_only_under_the_prefix() -> None:
    """1,000 keys outside the glob's prefix (before and after it) cost nothing:
    the tree is entered at the prefix and left at the first key past it."""
    small = FakeTrees({"rrr": {"in/x": b"1", "in/y": b"2"}})
    run(small, pfs("rrr", "/in/*"))
    files = {"in/x": b"1", "in/y": b"2"}
    files.update({f"a/{i:04}": b"." for i in range(500)})
    files.update({f"z/{i:04}": b"." for i in range(500)})
    big = FakeTrees({"rrr": files})
    plan = run(big, pfs("rrr", "/in/*"))
    assert paths(plan) == [("/in/x",), ("/in/y",)]
    # The two keys under the prefix, and in the big repo the first key past them.
    assert (small.yielded, big.yielded) == (2, 3)


def test_cross_is_the_product() -> None:
    trees = FakeTrees({"images": IMAGES, "models": {"m1": b"1", "m2": b"2", "m3": b"3"}})
    plan = run(trees, {"cross": [pfs("images", "/images/*"), pfs("models", "/*")]})
    assert len(plan.datums) == 6
    assert paths(plan)[:3] == [
        ("/images/a.png", "/m1"),
        ("/images/a.png", "/m2"),
        ("/images/a.png", "/m3"),
    ]


def test_union_and_nested() -> None:
    trees = FakeTrees({"images": IMAGES, "models": {"m1": b"1"}})
    plan = run(
        trees,
        {
            "union": [
                pfs("images", "/images/*"),
                {"cross": [pfs("models", "/*"), pfs("images", "/", name="all")]},
            ]
        },
    )
    assert paths(plan) == [("/images/a.png",), ("/images/b.png",), ("/m1", "/")]


def test_join_on_a_capture() -> None:
    trees = FakeTrees(
        {
            "left": {"a.csv": b"1", "b.csv": b"2", "c.csv": b"3"},
            "right": {"a.json": b"1", "c.json": b"2", "d.json": b"3"},
        }
    )
    plan = run(
        trees,
        {
            "join": [
                pfs("left", "/(*).csv", join_on="$1"),
                pfs("right", "/(*).json", join_on="$1"),
            ]
        },
    )
    assert paths(plan) == [("/a.csv", "/a.json"), ("/c.csv", "/c.json")]


def test_group_by_a_capture() -> None:
    trees = FakeTrees({"logs": {"1-a": b"1", "1-b": b"2", "2-a": b"3"}})
    plan = run(trees, {"group": [pfs("logs", "/(?)-*", group_by="$1")]})
    assert paths(plan) == [("/1-a", "/1-b"), ("/2-a",)]


def test_decisions_against_a_history() -> None:
    trees = FakeTrees({"images": IMAGES})
    first = run(trees, pfs("images", "/images/*"), salt="s")
    a, b = first.datums
    previous = {
        a.id: PastDatum("success", "loc-a", live=True),
        b.id: PastDatum("failed", "loc-b", live=False),
        "gone": PastDatum("success", "loc-gone", live=True),
    }
    plan = run(trees, pfs("images", "/images/*"), previous=previous, salt="s")
    assert [(d.decision, d.reason) for d in plan.datums] == [
        ("run", "failed last time"),
        ("skip", "unchanged"),
        ("remove", "input removed"),
    ]
    assert plan.totals == {"datums": 2, "run": 1, "skip": 1, "remove": 1}
    # Another salt: every datum is new again.
    other = run(trees, pfs("images", "/images/*"), salt="t")
    assert {d.id for d in other.datums}.isdisjoint({a.id, b.id})


def test_missing_repo_and_branch_name_the_field() -> None:
    trees = FakeTrees({"images": IMAGES})
    with pytest.raises(errors.RepoNotFound, match=r"input\.cross\[1\]\.pfs\.repo: repo 'nope'"):
        run(trees, {"cross": [pfs("images", "/*"), pfs("nope", "/*")]})
    with pytest.raises(errors.BranchNotFound, match=r"input\.pfs\.branch: branch 'dev'"):
        run(trees, pfs("images", "/*", branch="dev"))


def test_refusals_name_the_field() -> None:
    trees = FakeTrees({"images": IMAGES})
    with pytest.raises(SpecError) as cron:
        run(
            trees, {"cross": [pfs("images", "/*"), {"cron": {"name": "tick", "spec": "@every 1m"}}]}
        )
    assert cron.value.field == "input.cross[1].cron"
    assert "cron inputs cannot be planned yet" in str(cron.value)
    with pytest.raises(SpecError) as nested:
        run(
            trees,
            {
                "join": [
                    pfs("images", "/(*)", join_on="$1"),
                    {"cross": [pfs("images", "/", name="x")]},
                ]
            },
        )
    assert nested.value.field == "input.join[1]"
    with pytest.raises(SpecError) as glob:
        run(trees, pfs("images", "/{a}"))
    assert glob.value.field == "input.pfs.glob"
