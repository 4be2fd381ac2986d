"""PipelineStore contract: a pipeline starts at version 1, running; each
update is the next version (the salt as given); state changes; listing in
byte order; deletion takes the versions with it; unknown names are
PipelineNotFound, a taken name PipelineExists."""

from __future__ import annotations

import pytest

from tests.versioning.db.harness import Backend, Stores, unique
from versioning import errors
from versioning.db.pipelines import RUNNING, STOPPED


def test_create_get_and_exists(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        name = unique("p")
        made = await db.pipelines.create_pipeline(name, '{"v":1}', "salt1", 1000)
        assert (made.name, made.state, made.version, made.salt, made.spec) == (
            name,
            RUNNING,
            1,
            "salt1",
            '{"v":1}',
        )
        assert (made.created, made.updated, made.reprocess) == (1000, 1000, False)
        assert await db.pipelines.get_pipeline(name) == made
        with pytest.raises(errors.PipelineExists):
            await db.pipelines.create_pipeline(name, '{"v":2}', "other", 2000)
        assert await db.pipelines.get_pipeline(name) == made
        with pytest.raises(errors.PipelineNotFound):
            await db.pipelines.get_pipeline(unique("p"))

    backend.run(scenario)


def test_versions_salt_and_state(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        name = unique("p")
        await db.pipelines.create_pipeline(name, '{"v":1}', "s1", 1000)
        two = await db.pipelines.add_version(name, '{"v":2}', "s1", False, 2000)
        assert (two.version, two.salt, two.spec, two.reprocess) == (2, "s1", '{"v":2}', False)
        assert (two.created, two.updated) == (1000, 2000)
        three = await db.pipelines.add_version(name, '{"v":3}', "s2", True, 3000)
        assert (three.version, three.salt, three.reprocess) == (3, "s2", True)
        assert await db.pipelines.get_pipeline(name) == three
        stopped = await db.pipelines.set_state(name, STOPPED, 4000)
        assert (stopped.state, stopped.version, stopped.updated) == (STOPPED, 3, 4000)
        started = await db.pipelines.set_state(name, RUNNING, 5000)
        assert started.state == RUNNING
        # A new version keeps the state.
        await db.pipelines.set_state(name, STOPPED, 6000)
        four = await db.pipelines.add_version(name, '{"v":4}', "s2", False, 7000)
        assert (four.state, four.version) == (STOPPED, 4)
        missing = unique("p")
        with pytest.raises(errors.PipelineNotFound):
            await db.pipelines.add_version(missing, "{}", "s", False, 1)
        with pytest.raises(errors.PipelineNotFound):
            await db.pipelines.set_state(missing, STOPPED, 1)

    backend.run(scenario)


def test_list_in_byte_order_and_delete(backend: Backend) -> None:
    async def scenario(db: Stores) -> None:
        base = unique("p")
        names = [f"{base}-b", f"{base}-a", f"{base}-B"]
        for n in names:
            await db.pipelines.create_pipeline(n, "{}", "s", 1)
        await db.pipelines.add_version(f"{base}-a", '{"v":2}', "s", False, 2)
        listed = [p for p in await db.pipelines.list_pipelines() if p.name.startswith(base)]
        assert [p.name for p in listed] == sorted(names, key=lambda n: n.encode())
        assert [p.version for p in listed] == [1, 2, 1]
        await db.pipelines.delete_pipeline(f"{base}-a")
        with pytest.raises(errors.PipelineNotFound):
            await db.pipelines.get_pipeline(f"{base}-a")
        with pytest.raises(errors.PipelineNotFound):
            await db.pipelines.delete_pipeline(f"{base}-a")
        # The name is free again, and starts over at version 1.
        again = await db.pipelines.create_pipeline(f"{base}-a", '{"v":9}', "t", 3)
        assert (again.version, again.spec) == (1, '{"v":9}')

    backend.run(scenario)
