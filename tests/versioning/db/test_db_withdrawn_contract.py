"""WithdrawnStore contract: versions withdrawn from a branch's version listing,
listed in key byte order, gone with their branch; and `serialized`, which
lets one version delete at a time judge a branch, across every server."""

from __future__ import annotations

import asyncio
import contextlib

from tests.versioning.db.harness import (
    Backend,
    Chain,
    Stores,
    new_repo,
    unique,
)
from versioning.ids import CommitId

Until = asyncio.Event | None


async def _commits(db: Stores, repo: str, n: int) -> list[CommitId]:
    chain = await Chain.on(db, repo, "main")
    for i in range(n):
        await chain.add({f"k{i}": b"v"})
    assert await db.writer.commit_chain(chain.write())
    return [c.id for c in chain.commits]


def test_withdraw_is_idempotent(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        c1, c2 = await _commits(db, repo, 2)
        await db.withdrawn.withdraw(repo, "main", [])
        assert not await db.withdrawn.is_withdrawn(repo, "main", "k", c1)
        await db.withdrawn.withdraw(repo, "main", [("k", c1)])
        await db.withdrawn.withdraw(repo, "main", [("k", c1), ("k", c1), ("k", c2)])
        assert await db.withdrawn.is_withdrawn(repo, "main", "k", c1)
        assert await db.withdrawn.is_withdrawn(repo, "main", "k", c2)
        assert not await db.withdrawn.is_withdrawn(repo, "main", "K", c1)
        assert not await db.withdrawn.is_withdrawn(repo, "main", "other", c1)
        await db.refs.create_branch_at(repo, "dev", c2)
        assert not await db.withdrawn.is_withdrawn(repo, "dev", "k", c1)
        assert sorted(await db.withdrawn.withdrawn_of(repo, "main", "k")) == sorted(
            [("k", c1), ("k", c2)]
        )

    backend.run(scenario)


def test_withdrawn_from_in_key_byte_order(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        commits = await _commits(db, repo, 3)
        keys = ["b", "B", "a", "é", "Z", "a/b", "ab", "É", "z", "a b"]
        records = [(k, commits[i % 3]) for i, k in enumerate(keys)] + [("a", commits[0])]
        await db.withdrawn.withdraw(repo, "main", records)
        await db.refs.create_branch_at(repo, "dev", commits[0])
        await db.withdrawn.withdraw(repo, "dev", [("a", commits[0]), ("zz", commits[0])])
        in_order = sorted(records, key=lambda r: r[0].encode())

        listed = await db.withdrawn.withdrawn_from(repo, "main", "", 100)
        assert [k for k, _ in listed] == [k for k, _ in in_order]  # a key's records: any order
        assert sorted(listed) == sorted(records)
        # From a key (included), at most `limit`.
        for start in ("B", "a", "a/", "b", "z", "É", "ê"):
            got = await db.withdrawn.withdrawn_from(repo, "main", start, 3)
            want = [k for k, _ in in_order if k.encode() >= start.encode()][:3]
            assert [k for k, _ in got] == want, start
        assert await db.withdrawn.withdrawn_from(repo, "main", "\uffff", 10) == []

        assert sorted(await db.withdrawn.withdrawn_of(repo, "main", "a")) == sorted(
            [("a", commits[2]), ("a", commits[0])]
        )
        assert await db.withdrawn.withdrawn_of(repo, "dev", "a") == [("a", commits[0])]
        assert await db.withdrawn.withdrawn_of(repo, "main", "nope") == []

    backend.run(scenario)


def test_withdrawn_rows_go_with_their_branch(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        (c,) = await _commits(db, repo, 1)
        await db.refs.create_branch_at(repo, "dev", c)
        await db.withdrawn.withdraw(repo, "dev", [("k", c)])
        await db.withdrawn.withdraw(repo, "main", [("k", c)])
        assert await db.refs.delete_branch(repo, "dev", c)
        assert not await db.withdrawn.is_withdrawn(repo, "dev", "k", c)
        assert await db.withdrawn.withdrawn_from(repo, "dev", "", 10) == []
        # A new branch of that name starts with a full listing.
        await db.refs.create_branch_at(repo, "dev", c)
        assert await db.withdrawn.withdrawn_of(repo, "dev", "k") == []
        assert await db.withdrawn.is_withdrawn(repo, "main", "k", c)
        # Withdrawing on a branch that is gone keeps nothing, and raises nothing.
        await db.withdrawn.withdraw(repo, "gone", [("k", c)])
        assert not await db.withdrawn.is_withdrawn(repo, "gone", "k", c)
        await db.withdrawn.withdraw(unique(), "main", [("k", c)])

    backend.run(scenario)


def test_serialized_excludes_a_second_holder_of_the_same_branch(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        repo = await new_repo(db)
        await db.refs.create_branch_at(repo, "dev", None)
        async with backend.stores() as other_server:
            log: list[str] = []

            async def hold(
                store: Stores, branch: str, name: str, entered: asyncio.Event, until: Until
            ) -> None:
                async with store.withdrawn.serialized(repo, branch):
                    log.append(f"in {name}")
                    entered.set()
                    if until is None:
                        await asyncio.sleep(0.2)  # time enough for a wrong entry
                    else:
                        await asyncio.wait_for(until.wait(), 5)
                    log.append(f"out {name}")

            async def race(second: Stores, branch: str, overlap: bool) -> list[str]:
                """`a` holds main; then `b` enters `branch`. With `overlap`,
                `a` stays until `b` is in (and times out if it never is)."""
                log.clear()
                a_in, b_in = asyncio.Event(), asyncio.Event()
                a = asyncio.create_task(hold(db, "main", "a", a_in, b_in if overlap else None))
                await a_in.wait()
                b = asyncio.create_task(hold(second, branch, "b", b_in, None))
                await asyncio.gather(a, b)
                return list(log)

            # Same branch: the second waits, on this server or another.
            assert await race(db, "main", False) == ["in a", "out a", "in b", "out b"]
            assert await race(other_server, "main", False) == ["in a", "out a", "in b", "out b"]
            # Another branch: no wait.
            assert await race(other_server, "dev", True) == ["in a", "in b", "out a", "out b"]

            # A block that raises releases it.
            with contextlib.suppress(RuntimeError):
                async with db.withdrawn.serialized(repo, "main"):
                    raise RuntimeError("boom")
            async with asyncio.timeout(5), other_server.withdrawn.serialized(repo, "main"):
                pass

    backend.run(scenario)
