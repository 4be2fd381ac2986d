"""`loxo gc` and `loxo fsck`: maintenance passes run against the same database
and chunk store as `loxo serve`, while it runs or not.

They attach to the embedded PostgreSQL of a data dir the way serve does
(pgserver shares one postmaster between processes), and open the chunk store
from the same options, so the same flags point both commands at the same data.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from dataclasses import asdict
from typing import Any

import asyncpg

from gateway.app import open_chunk_store
from gateway.config import ServeConfig
from gateway.server import open_database
from versioning import fsck, gc
from versioning.catalog import Catalog, GcRunning
from versioning.errors import CorruptData


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def run_gc(cfg: ServeConfig, grace_minutes: float, dry_run: bool, as_json: bool) -> int:
    async def go(dsn: str) -> int:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        store = open_chunk_store(cfg)
        try:
            report = await gc.collect(
                Catalog(pool), store, grace_minutes * 60, dry_run=dry_run, progress=_say
            )
        except (CorruptData, GcRunning) as exc:
            print(f"loxo: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()
            await pool.close()
        print(json.dumps(asdict(report)) if as_json else report.summary())
        return 0

    return _with_database(cfg, go)


def run_fsck(cfg: ServeConfig, as_json: bool) -> int:
    async def go(dsn: str) -> int:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        store = open_chunk_store(cfg)
        try:
            report = await fsck.check(Catalog(pool), store, progress=_say)
        finally:
            await store.close()
            await pool.close()
        if as_json:
            print(
                json.dumps(
                    {
                        "ok": report.ok,
                        "commits": report.commits,
                        "nodes": report.nodes,
                        "contents": report.contents,
                        "chunks": report.chunks,
                        "problems": [
                            {
                                "kind": p.kind,
                                "id": p.id_hex,
                                "detail": p.detail,
                                "affects": [
                                    {"repo": x.repo, "commit": x.commit.hex(), "path": x.path}
                                    for x in p.places
                                ],
                            }
                            for p in report.problems
                        ],
                    }
                )
            )
        else:
            for problem in report.problems:
                print(problem.describe())
            print(report.summary())
        return 0 if report.ok else 1

    return _with_database(cfg, go)


def _with_database(cfg: ServeConfig, go: Any) -> int:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    opened = open_database(cfg, create=False)
    if isinstance(opened, int):
        return opened
    dsn, embedded = opened
    try:
        return int(asyncio.run(go(dsn)))
    finally:
        if embedded is not None:
            embedded.cleanup()
