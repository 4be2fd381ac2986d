"""The log formats: JSON lines (one object per record, the record's fields
as keys, tracebacks inside) and the human format (fields as key=value);
`auto` picks human on a terminal."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.client import Client, logs
from tests.conftest import child_pids


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.getLogger("loxo.test").makeRecord(
        "loxo.test", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )
    return rec


def test_json_lines_carry_the_fields_and_stay_on_one_line() -> None:
    line = logs.JsonFormatter().format(
        record("job %s ended\nfor real", "j1", job="j1", key="dir/ü\n", count=3, raw=b"\x01")
    )
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "WARNING" and doc["logger"] == "loxo.test"
    assert doc["message"] == "job j1 ended\nfor real"
    assert (doc["job"], doc["key"], doc["count"], doc["raw"]) == ("j1", "dir/ü\n", 3, "01")
    assert doc["time"].endswith("Z") and "T" in doc["time"]


def test_json_lines_hold_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    doc = json.loads(logs.JsonFormatter().format(rec))
    assert "Traceback" in doc["exception"] and "ValueError: boom" in doc["exception"]


def test_the_human_format_appends_fields_as_key_values() -> None:
    text = logs.HumanFormatter().format(
        record("GET /b/k 200", status=200, key="a key", user=None, action="GetObject", n={"ok": 1})
    )
    assert " WARNING loxo.test GET /b/k 200 " in text
    assert 'status=200 key="a key" action=GetObject n={"ok":1}' in text
    assert "user=" not in text


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_human_on_a_terminal_and_json_elsewhere() -> None:
    assert logs.resolve_format("auto", Tty()) == "human"
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("human", io.StringIO()) == "human"


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_configure_replaces_the_handlers_and_sets_the_level(root_handlers: None) -> None:
    out = io.StringIO()
    assert logs.configure("warning", "auto", out) == "json"
    assert logs.configure("warning", "json", out) == "json"  # again: still one handler
    logging.getLogger("loxo.test").info("hidden")
    logging.getLogger("loxo.test").warning("shown", extra={"event": "x"})
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown"]
    assert json.loads(lines[0])["event"] == "x"


def test_local_workers_run_while_a_pipeline_exists_and_log_in_the_servers_format(
    make_server: Any,
) -> None:
    """Local workers start with the first pipeline and stop with the last,
    and a server logging JSON starts them logging JSON: every line of its
    stderr stream, the workers' included, is one JSON object."""
    server = make_server(extra_args=["--workers", "1", "--log-format", "json"])
    assert server.proc is not None
    s3 = server.client()
    s3.create_bucket(Bucket="logsrc")
    # No pipeline yet: no worker process.
    assert child_pids(server.proc.pid) == []
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        api.create_pipeline(
            {
                "pipeline": {"name": "logcopy"},
                "input": {"pfs": {"repo": "logsrc", "glob": "/*"}},
                "transform": {"cmd": ["true"]},
            }
        )
        deadline = time.monotonic() + 30
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = [
                json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")
            ]
            if any(r["logger"] == "loxo.worker" for r in records):
                break
            time.sleep(0.2)
        worker = [r for r in records if r["logger"] == "loxo.worker"]
        assert worker and "serving" in worker[0]["message"], records[-5:]
        assert len(child_pids(server.proc.pid)) == 1
        api.delete_pipeline("logcopy", confirm=True)
        deadline = time.monotonic() + 30
        while child_pids(server.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert child_pids(server.proc.pid) == []
    # stdout's few lines (the readiness line) are the only ones that are not JSON.
    others = [line for line in server.log_text().splitlines() if not line.startswith("{")]
    assert all("listening" in line or not line.strip() for line in others), others
