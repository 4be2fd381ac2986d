"""Ref syntax: parsing (property tests against a tiny reference grammar) and
resolution against a real PostgreSQL: branches, commit prefixes, ~N and ^."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from versioning import errors
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.ids import CommitId
from versioning.refs import Ref, parse_ref, resolve
from versioning.repository import Versioning
from versioning.views import ObjectAttrs, new_entry

NAMES = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("~"), st.integers(0, 50)),
        st.tuples(st.just("~"), st.none()),
        st.tuples(st.just("^"), st.integers(1, 3)),
        st.tuples(st.just("^"), st.none()),
    ),
    max_size=5,
)


def render(steps: list[tuple[str, int | None]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    text, parsed = "", []
    for op, n in steps:
        text += op + ("" if n is None else str(n))
        if op == "~":
            parsed.append((0, 1 if n is None else n))
        else:
            parsed.append(((1 if n is None else n) - 1, 1))
    return text, tuple(parsed)


@given(repo=NAMES, name=st.one_of(st.none(), NAMES), steps=STEPS)
def test_parse_round_trips_the_grammar(
    repo: str, name: str | None, steps: list[tuple[str, int | None]]
) -> None:
    suffix, parsed = render(steps)
    text = repo + (f"@{name}" if name is not None else "") + suffix
    assert parse_ref(text) == Ref(repo, name, parsed)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@main",
        "repo@",
        "repo@~1",
        "repo@main~x",
        "repo@main^0",
        "repo@main!",
        "re@a@b",
        "Repo@main",
        "repo@Main",
    ],
)
def test_parse_refuses_malformed_refs(text: str) -> None:
    with pytest.raises(errors.InvalidRef):
        parse_ref(text)


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_resolve_branches_prefixes_and_ancestors(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = fresh_database()

    async def scenario() -> None:
        meta = await Database.connect(dsn, min_size=1, max_size=4)
        svc = Versioning(meta, LocalChunkStore(tmp_path / "chunks"))
        try:
            await svc.branches.create_repo("data")
            commits: list[CommitId] = []
            for i in range(5):
                view = await svc.branch_view("data", "main")
                content, result = await svc.store_content(_pieces(b"v%d" % i))
                entry = new_entry(
                    content, result.size, result.md5.hex(), ObjectAttrs("text/plain", {}, {})
                )
                made = await svc.commit(view, {"f": entry}, f"c{i}", {})
                assert made is not None
                commits.append(made)
            await svc.branches.ensure_branch("data", "dev")

            async def r(text: str) -> CommitId:
                return await resolve(meta, parse_ref(text))

            assert await r("data") == commits[-1]
            assert await r("data@main") == commits[-1]
            assert await r("data@dev") == commits[-1]
            assert await r("data@main~2") == commits[2]
            assert await r("data@main^^") == commits[2]
            assert await r("data@main~1^") == commits[2]
            assert await r("data~4") == commits[0]
            assert await r(f"data@{commits[1].hex()}") == commits[1]
            assert await r(f"data@{commits[3].hex()[:9]}~1") == commits[2]
            assert await r("data@main~0") == commits[-1]
            with pytest.raises(errors.RefNotFound, match="no parent"):
                await r("data@main~5")
            with pytest.raises(errors.RefNotFound, match="at least 8 hex"):
                await r("data@abc")
            with pytest.raises(errors.RefNotFound, match="no such branch"):
                await r("data@nope")
            with pytest.raises(errors.RefNotFound):
                await r(f"data@{'0' * 32}")
            with pytest.raises(errors.RepoNotFound):
                await r("other@main")
            # Two real commits sharing 8 hex digits cannot be built, so the
            # prefix lookup behind AmbiguousRef is checked with the prefix
            # the first two ids do share.
            shared = 0
            a, b = commits[0].hex(), commits[1].hex()
            while shared < 32 and a[shared] == b[shared]:
                shared += 1
            both = await meta.objects.commits_with_prefix("data", a[:shared], limit=10)
            assert commits[0] in both and commits[1] in both
        finally:
            await meta.close()

    asyncio.run(scenario())
