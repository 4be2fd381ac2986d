"""Pipelines and the versions of their specs.

A pipeline row holds what changes in place (state, current version, salt);
each spec version is a row of its own, never changed. Specs are stored as
their canonical JSON text: this store does not parse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import asyncpg

from versioning import errors

RUNNING = "running"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class PipelineRow:
    name: str
    state: str  # RUNNING or STOPPED
    created: int  # microseconds since the epoch
    updated: int
    version: int  # the current version
    salt: str
    spec: str  # the current version's canonical JSON
    reprocess: bool  # the current version came with a new salt


class PipelineStore(Protocol):
    async def create_pipeline(self, name: str, spec: str, salt: str, now: int) -> PipelineRow: ...
    async def add_version(
        self, name: str, spec: str, salt: str, reprocess: bool, now: int
    ) -> PipelineRow: ...
    async def get_pipeline(self, name: str) -> PipelineRow: ...
    async def get_version(self, name: str, version: int) -> str: ...
    async def list_pipelines(self) -> list[PipelineRow]: ...
    async def any_pipeline(self) -> bool: ...
    async def set_state(self, name: str, state: str, now: int) -> PipelineRow: ...
    async def delete_pipeline(self, name: str) -> None: ...


_SELECT = (
    "SELECT p.name, p.state, p.created, p.updated, p.current_version AS version, p.salt, "
    "v.spec, v.reprocess FROM pipelines p JOIN pipeline_versions v "
    "ON v.pipeline = p.name AND v.version = p.current_version"
)


class PgPipelines:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_pipeline(self, name: str, spec: str, salt: str, now: int) -> PipelineRow:
        """Version 1, running; PipelineExists when the name is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO pipelines (name, state, created, updated, current_version, salt) "
                    "VALUES ($1, $2, $3, $3, 1, $4)",
                    name,
                    RUNNING,
                    now,
                    salt,
                )
            except asyncpg.UniqueViolationError:
                raise errors.PipelineExists(name) from None
            await conn.execute(
                "INSERT INTO pipeline_versions (pipeline, version, spec, created, reprocess) "
                "VALUES ($1, 1, $2, $3, false)",
                name,
                spec,
                now,
            )
        return PipelineRow(name, RUNNING, now, now, 1, salt, spec, False)

    async def add_version(
        self, name: str, spec: str, salt: str, reprocess: bool, now: int
    ) -> PipelineRow:
        """The next version, current from now on, with `salt`."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE pipelines SET current_version = current_version + 1, salt = $2, "
                "updated = $3 WHERE name = $1 RETURNING state, created, current_version",
                name,
                salt,
                now,
            )
            if row is None:
                raise errors.PipelineNotFound(name)
            await conn.execute(
                "INSERT INTO pipeline_versions (pipeline, version, spec, created, reprocess) "
                "VALUES ($1, $2, $3, $4, $5)",
                name,
                row["current_version"],
                spec,
                now,
                reprocess,
            )
        return PipelineRow(
            name, row["state"], row["created"], now, row["current_version"], salt, spec, reprocess
        )

    async def get_pipeline(self, name: str) -> PipelineRow:
        row = await self.pool.fetchrow(f"{_SELECT} WHERE p.name = $1", name)
        if row is None:
            raise errors.PipelineNotFound(name)
        return PipelineRow(**dict(row))

    async def list_pipelines(self) -> list[PipelineRow]:
        rows = await self.pool.fetch(f'{_SELECT} ORDER BY p.name COLLATE "C"')
        return [PipelineRow(**dict(r)) for r in rows]

    async def any_pipeline(self) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM pipelines)"))

    async def set_state(self, name: str, state: str, now: int) -> PipelineRow:
        status = await self.pool.execute(
            "UPDATE pipelines SET state = $2, updated = $3 WHERE name = $1", name, state, now
        )
        if status != "UPDATE 1":
            raise errors.PipelineNotFound(name)
        return await self.get_pipeline(name)

    async def delete_pipeline(self, name: str) -> None:
        """The pipeline and all its versions."""
        status = await self.pool.execute("DELETE FROM pipelines WHERE name = $1", name)
        if status != "DELETE 1":
            raise errors.PipelineNotFound(name)

    async def get_version(self, name: str, version: int) -> str:
        """One version's canonical spec JSON (jobs run the version they began with)."""
        spec = await self.pool.fetchval(
            "SELECT spec FROM pipeline_versions WHERE pipeline = $1 AND version = $2",
            name,
            version,
        )
        if spec is None:
            raise errors.PipelineNotFound(f"{name}@{version}")
        return str(spec)
