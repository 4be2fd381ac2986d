"""Server configuration: the only module that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A setting is malformed; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str
    port: int
    data_dir: Path
    database_url: str | None  # None: the embedded PostgreSQL inside data_dir
    store_url: str
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen must be HOST:PORT, e.g. 127.0.0.1:9000 (got {value!r})")
    return host.strip("[]") or "127.0.0.1", int(port)


def build(
    listen: str,
    data_dir: str,
    database_url: str | None,
    store: str | None,
    region: str,
) -> ServeConfig:
    host, port = parse_listen(listen)
    root = Path(data_dir).expanduser().resolve()
    access = os.environ.get("LOXO_ACCESS_KEY") or None
    secret = os.environ.get("LOXO_SECRET_KEY") or None
    if (access is None) != (secret is None):
        raise ConfigError("set both LOXO_ACCESS_KEY and LOXO_SECRET_KEY, or neither")
    return ServeConfig(
        host=host,
        port=port,
        data_dir=root,
        database_url=database_url or os.environ.get("LOXO_DATABASE_URL") or None,
        store_url=store or f"file://{root / 'chunks'}",
        region=region,
        access_key=access,
        secret_key=secret,
    )
