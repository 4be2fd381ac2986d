"""Schema migrations: numbered SQL files applied in order, forward-only.

`NNNN_name.sql` files in this folder are applied once each, in a transaction,
under an advisory lock so that servers starting together do not race. A
database whose schema is newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6C6F786F  # "loxo"
log = logging.getLogger("loxo.migrations")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


class SchemaTooNew(RuntimeError):
    pass


def available() -> list[Migration]:
    found = []
    for item in resources.files(__package__).iterdir():
        m = _FILE.match(item.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), item.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps: {versions}")
    return found


async def apply_all(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    migrations = available()
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version FROM schema_migrations")
        done = {r["version"] for r in rows}
        newest_known = migrations[-1].version if migrations else 0
        if done and max(done) > newest_known:
            raise SchemaTooNew(
                f"the database schema is at version {max(done)}, newer than this loxo "
                f"(knows up to {newest_known}); upgrade loxo"
            )
        for mig in migrations:
            if mig.version in done:
                continue
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                mig.version,
                mig.name,
            )
            applied_now.append(mig.version)
    # Said once the transaction committed: a failed one applied nothing.
    for mig in migrations:
        if mig.version in applied_now:
            log.info(
                "applied schema migration %04d_%s",
                mig.version,
                mig.name,
                extra={"event": "migration", "version": mig.version},
            )
    return applied_now
