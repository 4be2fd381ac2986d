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
        doc = json.loads(path.read_text("utf-8"))
        return Credentials(doc["access_key"], doc["secret_key"])
    creds = Credentials(
        "LX" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30), generated=True
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return creds
