"""Object history against a model: a hypothesis state machine on a real database.

Random puts, deletes and multi-key deletes go through the real service (and its
committer); after each step, the history index of the branch head must list,
for every key, exactly the commits that changed it, newest first, with delete
markers where a commit deleted it, and paginate and group like S3.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from s3api.operations.versions import version_page
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.ids import CommitId
from versioning.repository import Versioning
from versioning.views import ObjectAttrs, new_entry

KEYS = ["a", "a/b", "a/c", "a/c/d", "b", "b/x/y", "c", "ü/1"]
ATTRS = ObjectAttrs("text/plain", {}, {})
_repos = itertools.count()


class _Env:
    loop: asyncio.AbstractEventLoop
    svc: Versioning


@pytest.fixture(scope="module")
def env(fresh_database: Callable[[], str], tmp_path_factory: Any) -> Iterator[_Env]:
    e = _Env()
    e.loop = asyncio.new_event_loop()
    dsn = fresh_database()
    chunks = Path(tmp_path_factory.mktemp("history")) / "chunks"

    async def start() -> Versioning:
        meta = await Database.connect(dsn, min_size=1, max_size=4)
        return Versioning(meta, LocalChunkStore(chunks))

    e.svc = e.loop.run_until_complete(start())
    yield e
    e.loop.run_until_complete(e.svc.db.close())
    e.loop.close()


async def _one(data: bytes) -> Any:
    yield data


def test_history_matches_a_model(env: _Env) -> None:
    svc, loop = env.svc, env.loop
    run = loop.run_until_complete

    class History(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.repo = f"hist{next(_repos)}"
            run(svc.branches.create_repo(self.repo))
            # key -> [(commit, etag or None for a delete)], newest first
            self.model: dict[str, list[tuple[CommitId, str | None]]] = {}
            self.live: set[str] = set()

        def _commit(self, edits: dict[str, Any], msg: str) -> CommitId | None:
            async def go() -> CommitId | None:
                view = await svc.branch_view(self.repo, "main")
                return await svc.commit(view, edits, msg, {"op": "test"})

            return run(go())

        @rule(key=st.sampled_from(KEYS), body=st.binary(max_size=20))
        def put(self, key: str, body: bytes) -> None:
            async def store() -> Any:
                content, result = await svc.store_content(_one(body))
                return new_entry(content, result.size, result.md5.hex(), ATTRS)

            entry = run(store())
            commit = self._commit({key: entry}, "put")
            assert commit is not None
            self.model.setdefault(key, []).insert(0, (commit, entry.etag))
            self.live.add(key)

        @rule(keys=st.sets(st.sampled_from(KEYS), min_size=1, max_size=3))
        def delete(self, keys: set[str]) -> None:
            commit = self._commit(dict.fromkeys(keys), "delete")
            changed = keys & self.live
            if not changed:
                assert commit is None  # deleting nothing is no commit
                return
            assert commit is not None
            for key in changed:
                self.model[key].insert(0, (commit, None))
            self.live -= changed

        def _expected(self, prefix: str = "") -> list[tuple[str, CommitId, str | None, bool]]:
            out = []
            for key in sorted(self.model):
                if key.startswith(prefix):
                    for n, (commit, etag) in enumerate(self.model[key]):
                        out.append((key, commit, etag, n == 0))
            return out

        def _listed(
            self, page_size: int, prefix: str = "", delimiter: str = ""
        ) -> tuple[list[tuple[str, CommitId, str | None, bool]], list[str]]:
            async def go() -> tuple[list[tuple[str, CommitId, str | None, bool]], list[str]]:
                view = await svc.branch_view(self.repo, "main")
                got: list[tuple[str, CommitId, str | None, bool]] = []
                prefixes: list[str] = []
                key_marker, version_marker = "", None
                for _ in range(500):
                    page = await version_page(
                        svc, view, prefix, delimiter, key_marker, version_marker, page_size
                    )
                    for _key, item in page.items:
                        v = item.record
                        etag = None if v.deleted else v.entry.etag
                        got.append((v.key, v.commit, etag, item.is_latest))
                    prefixes += page.prefixes
                    if not page.truncated:
                        return got, prefixes
                    assert page.last is not None
                    key_marker = page.last
                    version_marker = page.last_item.record.commit if page.last_item else None
                raise AssertionError("pagination did not end")

            return run(go())

        @invariant()
        def full_listing_matches(self) -> None:
            if not hasattr(self, "model"):
                return
            for page_size in (1, 3, 1000):
                got, prefixes = self._listed(page_size)
                assert prefixes == []
                assert got == self._expected(), page_size

        @invariant()
        def grouped_listing_matches(self) -> None:
            if not hasattr(self, "model"):
                return
            got, prefixes = self._listed(2, prefix="a/", delimiter="/")
            nested = [k for k in self.model if k.startswith("a/") and "/" in k[2:]]
            expected_prefixes = sorted({k[: k.index("/", 2) + 1] for k in nested})
            assert prefixes == expected_prefixes
            assert got == [e for e in self._expected("a/") if "/" not in e[0][2:]]

    History.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    History.TestCase().runTest()
