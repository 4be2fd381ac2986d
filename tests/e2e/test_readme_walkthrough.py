"""The README's CLI walk-through, run as written (only the endpoint, the keys
and where `loxo` is installed are this test's), so the README stays true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import LoxoServer, require_tool

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text("utf-8")
    section = text[text.index("## Drive versions like git") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, "the walk-through's sh block is gone"
    return match.group(1)


def test_readme_walkthrough_runs(server: LoxoServer, tmp_path: Path) -> None:
    require_tool("aws")
    assert server.access_key is not None and server.secret_key is not None
    script = walkthrough()
    assert script.startswith(". .venv/bin/activate\n")
    script = script.replace(". .venv/bin/activate\n", "")
    script = script.replace("http://127.0.0.1:9000", server.endpoint)
    script = script.replace("demo-secret-key", server.secret_key)
    script = script.replace("--access-key demo ", f"--access-key {server.access_key} ")
    script = script.replace("AWS_ACCESS_KEY_ID=demo ", f"AWS_ACCESS_KEY_ID={server.access_key} ")
    script = script.replace("labels", "walk-labels")
    assert "demo" not in script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOXO_", "AWS_"))}
    env["HOME"] = str(tmp_path)
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".config")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # `loxo` runs this checkout's code, not whichever checkout installed it.
    env["PYTHONPATH"] = str(README.parent)
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
    assert "3 files -> walk-labels@main:train" in out
    assert "~ train/cats/a.csv  (15 B -> 15 B)" in out
    assert "fast-forward: walk-labels@main" in out
    assert "id,label\n1,cat\n" in out  # cat of main~1
    assert (tmp_path / "train-v1" / "cats" / "a.csv").read_text() == "id,label\n1,dog\n"
    assert (tmp_path / "train-v1" / "README").read_text() == "v1\n"
    # The log is JSON, newest first: the synced open commit, then the revert.
    log_json = out[out.rindex("\n[\n") + 1 :]
    log = json.loads(log_json)
    assert [c["message"] for c in log[:2]] == ["sync data", 'Revert "PutObject train/cats/a.csv"']
    assert log[0]["origin"]["op"] == "commit" and len(log) == 3
