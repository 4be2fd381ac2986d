"""`loxo pipeline validate`: real `python -m gateway.cli` subprocesses,
offline (no server, no settings), on spec files in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import loxo_cli as loxo

EDGES = """\
pipeline:
  name: edges
input:
  pfs: {repo: images, glob: "/*"}
transform:
  cmd: [python3, /edges.py]
"""

MONTAGE = """\
pipeline:
  name: montage
input:
  cross:
    - pfs: {repo: images, glob: "/"}
    - pfs: {repo: edges, glob: "/"}
transform:
  cmd: [sh]
  stdin: ["montage $(find -L /pfs/images /pfs/edges -type f) /pfs/out/montage.png"]
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "edges.yaml").write_text(EDGES)
    (tmp_path / "montage.yaml").write_text(MONTAGE)
    return tmp_path


def test_ok_in_dag_order(specs: Path) -> None:
    proc = loxo(
        "pipeline", "validate", "-f", str(specs / "montage.yaml"), "-f", str(specs / "edges.yaml")
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok: 2 pipelines (order: edges, montage)"
    assert "assumed to exist (no --repos given): images" in proc.stderr


def test_repos_given(specs: Path) -> None:
    proc = loxo("pipeline", "validate", "-f", str(specs / "edges.yaml"), "--repos", "images,other")
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok: 1 pipeline (order: edges)")
    assert "assumed" not in proc.stderr
    # montage alone reads edges, which --repos does not list.
    proc = loxo("pipeline", "validate", "-f", str(specs / "montage.yaml"), "--repos", "images")
    assert proc.returncode == 2
    assert (
        f"{specs / 'montage.yaml'}: input.cross[1].pfs.repo: repo 'edges' does not exist"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_bad_field_is_named_with_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "pipeline": {"name": "edges"},
                "input": {
                    "cross": [
                        {"pfs": {"repo": "images", "glob": "/*"}},
                        {"pfs": {"repo": "labels", "glob": "/[x"}},
                    ]
                },
                "transform": {"cmd": ["sh"]},
            }
        )
    )
    proc = loxo("pipeline", "validate", "-f", str(bad))
    assert proc.returncode == 2
    assert f"{bad}: input.cross[1].pfs.glob: glob '/[x'" in proc.stderr
    assert proc.stdout == ""


def test_cycle_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(EDGES.replace("repo: images", "repo: loopy"))
    (tmp_path / "b.yaml").write_text(
        EDGES.replace("name: edges", "name: loopy").replace("repo: images", "repo: edges")
    )
    proc = loxo(
        "pipeline", "validate", "-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "b.yaml")
    )
    assert proc.returncode == 2
    assert "edges -> loopy -> edges" in proc.stderr
    assert str(tmp_path / "a.yaml") in proc.stderr
    proc = loxo(
        "pipeline", "validate", "-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "a.yaml")
    )
    assert proc.returncode == 2
    assert "pipeline.name: pipeline 'edges' is also defined in" in proc.stderr


def test_missing_file_and_json_output(specs: Path) -> None:
    proc = loxo("pipeline", "validate", "-f", str(specs / "nope.yaml"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    proc = loxo(
        "pipeline",
        "validate",
        "-f",
        str(specs / "edges.yaml"),
        "-f",
        str(specs / "montage.yaml"),
        "-o",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["pipeline"]["name"] for d in docs] == ["edges", "montage"]
    assert docs[0]["input"]["pfs"] == {
        "name": "images",
        "repo": "images",
        "branch": "main",
        "glob": "/*",
        "s3": False,
        "empty_files": False,
    }
    assert docs[0]["datum_tries"] == 3


def test_help_shows_examples() -> None:
    proc = loxo("pipeline", "validate", "--help")
    assert proc.returncode == 0
    assert "Example" in proc.stdout and "--repos" in proc.stdout
    listed = loxo("--help")
    assert "pipeline" in listed.stdout
