"""The embedded PostgreSQL: a pgserver instance kept inside the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddedUnavailable(RuntimeError):
    pass


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded server; returns (dsn, handle)."""
    try:
        import pgserver
    except ImportError:
        raise EmbeddedUnavailable(
            "the embedded PostgreSQL needs the 'pgserver' package, which has wheels for "
            "CPython 3.11 and 3.12 only. Install python3.12 (or 3.11) and reinstall loxo, or "
            "pass --database-url postgresql://USER@HOST:PORT/DB to use your own PostgreSQL."
        ) from None
    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return server.get_uri(), server
