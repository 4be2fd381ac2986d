"""`loxo job`, `datum`, `logs`, `wait`, `dag`, `provenance`, `subvenance`
offline: real `python -m gateway.cli` subprocesses for help texts, argument
checks and an unreachable server; the text renderings (DAG, lineage trees,
datum counts, log prefixes) as functions over answers shaped as
docs/design/jobs.md describes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.commands.jobs import counts_of, datum_summary, log_prefix, seconds
from gateway.commands.lineage import dag_lines, provenance_lines, subvenance_lines
from tests.conftest import free_port
from tests.conftest import loxo_cli as loxo

COMMANDS = [
    ("job", "list"),
    ("job", "inspect"),
    ("job", "wait"),
    ("job", "stop"),
    ("datum", "list"),
    ("datum", "inspect"),
    ("datum", "restart"),
    ("logs",),
    ("wait",),
    ("dag",),
    ("provenance",),
    ("subvenance",),
]


@pytest.fixture
def offline(tmp_path: Path) -> dict[str, str]:
    """Settings that point at a port nothing listens on (and no config file)."""
    return {
        "LOXO_CONFIG": str(tmp_path / "none.json"),
        "LOXO_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "LOXO_ACCESS_KEY": "k",
        "LOXO_SECRET_KEY": "s",
    }


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_a_summary_and_runnable_examples(command: tuple[str, ...]) -> None:
    proc = loxo(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout
    assert f"loxo {' '.join(command)}" in " ".join(proc.stdout.split())


def test_groups_are_registered() -> None:
    top = loxo("--help").stdout
    for name in ("job", "datum", "logs", "wait", "dag", "provenance", "subvenance"):
        assert f" {name} " in top, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("provenance", "images@main"), "name a file, as REPO@REF:PATH"),
        (("subvenance", "images"), "name a file, as REPO@REF:PATH"),
        (("provenance", "@main:a.txt"), "expected REPO@REF[:PATH]"),
        (("provenance", "images@:a.txt"), "expected REPO@REF[:PATH]"),
        (("wait", "images"), "name the branch or commit too, as REPO@REF"),
        (("wait", "images@main:a.txt"), "expected REPO@REF, without a :PATH"),
        (("job", "list", "--state", "done"), "--state 'done': expected one of created"),
        (("datum", "list", "J", "--state", "ok"), "--state 'ok': expected one of pending"),
    ],
)
def test_bad_arguments_are_usage_errors(
    offline: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    # Checked before any request: the endpoint answers nothing.
    proc = loxo(*args, env=offline)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [("job", "list"), ("job", "wait", "abc"), ("logs", "-f"), ("wait", "images@main"), ("dag",)],
)
def test_unreachable_server_is_exit_6(offline: dict[str, str], args: tuple[str, ...]) -> None:
    proc = loxo(*args, env=offline)
    assert proc.returncode == 6, (proc.stdout, proc.stderr)
    assert "cannot reach loxo at" in proc.stderr and "Traceback" not in proc.stderr


def test_no_settings_is_exit_5(tmp_path: Path) -> None:
    proc = loxo("job", "list", env={"LOXO_CONFIG": str(tmp_path / "none.json")})
    assert proc.returncode == 5 and "no endpoint and keys configured" in proc.stderr


# ------------------------------------------------------------------ text renderings


def test_datum_counts_tolerate_missing_keys() -> None:
    job = {"datums": {"success": 3, "recovered": 1, "skipped": 2, "failed": 1, "total": 8}}
    assert datum_summary(job) == "4/2/1/8"
    assert datum_summary({}) == "0/0/0/0"
    # No total: the sum of the states.
    assert counts_of({"datums": {"success": 2, "pending": 3}})["total"] == 5


def test_log_prefix() -> None:
    record = {"job": "a" * 32, "datum": "b" * 32, "try": 2, "stream": "stderr", "text": "x"}
    assert log_prefix(record) == "[aaaaaaaa bbbbbbbb try 2 stderr]"
    assert log_prefix({}) == "[- - try - -]"


def test_seconds() -> None:
    assert [seconds(v) for v in (None, 0.25, 12.34, 245, 7380)] == [
        "-",
        "0.25s",
        "12.3s",
        "4m05s",
        "2h03m",
    ]


def test_dag_lines_upstream_first_with_states() -> None:
    doc = {
        "pipelines": [
            {
                "name": "montage",
                "state": "running",
                "version": 1,
                "inputs": ["images", "edges"],
                "last_job": None,
            },
            {
                "name": "edges",
                "state": "stopped",
                "version": 3,
                "inputs": ["images"],
                "last_job": {"id": "f" * 32, "state": "failure"},
            },
            {"name": "bare"},  # every key but the name missing
        ]
    }
    assert dag_lines(doc) == [
        "repos: images",
        "(no input) -> [bare] -> bare    -, no job yet",
        "images -> [edges] -> edges    stopped v3, last job ffffffffffff failure",
        "images, edges -> [montage] -> montage    running v1, no job yet",
    ]


def test_provenance_tree() -> None:
    made = {"pipeline": "montage", "version": 2, "job": "1" * 32, "datum": "2" * 32}
    doc = {
        "file": {"repo": "montage", "commit": "c" * 32, "path": "m.png"},
        "producer": made,
        "inputs": [
            {"repo": "images", "commit": "a" * 32, "path": "x.png", "provenance": None},
            {
                "repo": "edges",
                "commit": "e" * 32,
                "path": "x.png",
                "provenance": {
                    "producer": {"pipeline": "edges", "version": 1, "job": "3" * 32, "datum": "4"},
                    "inputs": [{"repo": "images", "commit": "a" * 32, "path": "x.png"}],
                },
            },
        ],
    }
    assert provenance_lines(doc) == [
        "montage@cccccccccccc:m.png  (montage@v2 job 111111111111 datum 222222222222)",
        "  images@aaaaaaaaaaaa:x.png  (source)",
        "  edges@eeeeeeeeeeee:x.png  (edges@v1 job 333333333333 datum 4)",
        "    images@aaaaaaaaaaaa:x.png  (source)",
    ]
    assert provenance_lines({"file": {"repo": "images", "path": "a"}, "producer": None}) == [
        "images@-:a  (source)"
    ]


def test_subvenance_tree() -> None:
    doc = {
        "file": {"repo": "images", "commit": "a" * 32, "path": "x.png"},
        "derived": [
            {
                "repo": "edges",
                "commit": "e" * 32,
                "path": "x.png",
                "pipeline": "edges",
                "version": 1,
                "job": "3" * 32,
                "datum": "4" * 32,
                "derived": [
                    {
                        "repo": "montage",
                        "commit": "c" * 32,
                        "path": "m.png",
                        "pipeline": "montage",
                        "version": 2,
                        "job": "1" * 32,
                        "datum": "2" * 32,
                    }
                ],
            }
        ],
    }
    assert subvenance_lines(doc) == [
        "images@aaaaaaaaaaaa:x.png",
        "  edges@eeeeeeeeeeee:x.png  (edges@v1 job 333333333333 datum 444444444444)",
        "    montage@cccccccccccc:m.png  (montage@v2 job 111111111111 datum 222222222222)",
    ]
