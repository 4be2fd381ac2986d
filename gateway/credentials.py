"""Root credentials: from the environment, or generated once and kept in the data dir."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    generated: bool = False  # True only on the start that created them


def load_or_create(data_dir: Path, access: str | None, secret: str | None) -> Credentials:
    if access and secret:
        return Credentials(access, secret)
    path = data_dir / FILE_NAME
    if path.exists():
        return _read(path)
    creds = Credentials(
        "LX" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30), generated=True
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    # A temp name of our own: several gateways may share this data dir and
    # start at once (docs/design/multi-gateway.md).
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            # Atomic and exclusive: of gateways starting together, the first
            # one's credentials are everyone's.
            os.link(tmp, path)
        except FileExistsError:
            return _read(path)
        except OSError:
            os.replace(tmp, path)  # a filesystem without hard links
    finally:
        tmp.unlink(missing_ok=True)
    return creds


def _read(path: Path) -> Credentials:
    doc = json.loads(path.read_text("utf-8"))
    return Credentials(doc["access_key"], doc["secret_key"])
