"""Which bodies a path's history names (purge.versions_of), against a model.

Random puts, deletes, branches, merges (with and without fast-forward) and
branch deletes go through the real services on a real database. The model
reads every commit stored for the repo and looks the path up in its tree:
the bodies a purge plan names must be exactly those. History indexes follow
first parents only, so merged-in branches that were deleted are the case a
walk of the heads' indexes alone gets wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from versioning import errors, merge, services, tree
from versioning.chunkstore.local import LocalChunkStore
from versioning.db import Database
from versioning.ids import ContentId, NodeId
from versioning.model import Commit
from versioning.views import ObjectAttrs, new_entry

KEYS = ["a", "a/b", "a/c", "b", "c/d"]
BODIES = [b"", b"one", b"two", b"three", b"four"]
ATTRS = ObjectAttrs("text/plain", {}, {})


@pytest.fixture(scope="module")
def env(
    fresh_database: Callable[[], str], tmp_path_factory: Any
) -> Iterator[tuple[asyncio.AbstractEventLoop, services.Services]]:
    loop = asyncio.new_event_loop()
    dsn = fresh_database()
    chunks = Path(tmp_path_factory.mktemp("purge")) / "chunks"

    async def start() -> services.Services:
        return services.build(
            await Database.connect(dsn, min_size=1, max_size=4), LocalChunkStore(chunks)
        )

    svc = loop.run_until_complete(start())
    yield loop, svc
    loop.run_until_complete(svc.db.close())
    loop.close()


async def _one(data: bytes) -> Any:
    yield data


async def _model(svc: services.Services, repo: str, path: str) -> set[ContentId]:
    """Every non-empty body at `path` (or under folder `path`) in any commit's tree."""
    found: set[ContentId] = set()
    for _cid, data, _ in await svc.db.purged.repo_commits(repo):
        commit = Commit.decode(data)
        root = NodeId(commit.tree) if commit.tree else None
        if root is None:
            continue
        async for key, entry in tree.iterate(svc.db.objects, root):
            inside = key.startswith(path) if path.endswith("/") else key == path
            if inside and entry.size > 0:
                found.add(entry.content)
    return found


async def _scenario(svc: services.Services, repo: str, seed: int) -> None:
    rnd = random.Random(seed)
    vs = svc.versioning
    await svc.control.create_repo(repo)
    branches = ["main"]
    counter = 0
    for _ in range(40):
        op = rnd.random()
        branch = rnd.choice(branches)
        view = await vs.branch_view(repo, branch)
        if op < 0.55:
            data = rnd.choice(BODIES)
            content, result = await vs.store_content(_one(data))
            entry = new_entry(content, len(data), result.md5.hex(), ATTRS, {})
            await vs.commit(view, {rnd.choice(KEYS): entry}, "put", {"op": "test"})
        elif op < 0.7:
            await vs.commit(view, {rnd.choice(KEYS): None}, "delete", {"op": "test"})
        elif op < 0.8 and len(branches) < 4:
            counter += 1
            name = f"b{counter}"
            await svc.control.create_branch(repo, name, rnd.choice(branches))
            branches.append(name)
        elif op < 0.92 and len(branches) > 1:
            source = rnd.choice(branches[1:])
            with contextlib.suppress(errors.VersioningError):
                await svc.control.merge(repo, source, "main", merge.Strategy.THEIRS)
        elif len(branches) > 1:
            gone = rnd.choice(branches[1:])
            await svc.control.delete_branch(repo, gone)
            branches.remove(gone)


@pytest.mark.parametrize("seed", range(6))
def test_plan_names_every_body_any_commit_holds(
    env: tuple[asyncio.AbstractEventLoop, services.Services], seed: int
) -> None:
    loop, svc = env
    repo = f"purgemodel{seed}"

    async def go() -> None:
        await _scenario(svc, repo, seed)
        for path in [*KEYS, "a/", "c/", "zzz"]:
            plan = await svc.control.purges.plan(repo, path)
            assert set(plan.contents) == await _model(svc, repo, path), (seed, path)
            assert all(
                v.entry.size > 0 or v.entry.content not in plan.contents for v in plan.versions
            )

    loop.run_until_complete(go())
