"""Workers run on machines without the server: importing them must not load
any of it (the static rule in tests/test_static.py checks the source; this
checks what an import really pulls in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_MODULES = (
    "versioning",
    "s3api",
    "starlette",
    "uvicorn",
    "asyncpg",
    "gateway.api",
    "gateway.app",
    "gateway.server",
)
PROBE = """
import json, sys
import workers.worker, workers.runner, workers.local, workers.__main__
print(json.dumps(sorted(sys.modules)))
"""


def test_workers_import_nothing_of_the_server() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert "workers.worker" in loaded and "gateway.client" in loaded  # the probe ran
    found = [m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)]
    assert found == []
