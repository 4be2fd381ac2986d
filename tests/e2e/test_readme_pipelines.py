"""The README's pipeline walk-through, run as written against a server with
its local workers (only the endpoint and keys are this test's), so what the
README promises about jobs, incrementality and lineage stays true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[str]:
    text = README.read_text("utf-8")
    section = text[text.index("## Pipelines") :]
    section = section[: section.index("\n## ", 3)]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_readme_pipeline_walkthrough_runs(make_server: Any, tmp_path: Path) -> None:
    srv = make_server(extra_args=["--workers", "2"])
    script = blocks()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOXO_", "AWS_"))}
    env.update(
        LOXO_ENDPOINT=srv.endpoint,
        LOXO_ACCESS_KEY=srv.access_key,
        LOXO_SECRET_KEY=srv.secret_key,
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        # `loxo` runs this checkout's code, not whichever checkout installed it.
        PYTHONPATH=str(README.parent),
    )
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"upper +\w{12} +success +2 done, 0 skipped, 0 failed of 2", out), out
    assert re.search(r"counts +\w{12} +success +1 done, 0 skipped, 0 failed of 1", out), out
    assert "a.txt\n" in out and "2 a.txt" in out and "3 b.txt" in out
    # After one more note: exactly one datum of upper ran, the other two were kept.
    assert re.search(r"upper +\w{12} +success +1 done, 2 skipped, 0 failed of 3", out), out
    assert "notes@main -> [upper] -> upper@main" in out
    assert "upper@main -> [counts] -> counts@main" in out
