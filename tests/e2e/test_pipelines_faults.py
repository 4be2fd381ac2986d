"""Pipelines under faults, with real worker processes (`python -m workers`
subprocesses, or `loxo serve --workers N`) against a real server:

- a worker killed with SIGKILL in the middle of a datum: its lease expires,
  another worker runs the datum again, the job succeeds, every output exists
  once with its full content, and no partial write is ever visible in the
  output repo (it is listed and read all along);
- a worker "on another machine": its own scratch folder, HOME, TMPDIR and
  working directory, reaching the server only over HTTP, runs the datums
  (the datum rows name it, the command ran in its scratch folder);
- a failing command: tried datum_tries times, its stderr in the logs for each
  try, the job failed and the output branch left where it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import LoxoServer
from pipeline_helpers import (
    commit_files,
    control,
    datums,
    head,
    job_logs,
    job_of,
    objects,
    poll,
    python_cmd,
    start_worker,
    stop_worker,
    wait_done,
    write_script,
)

from gateway.client import Client

pytestmark = pytest.mark.slow

SLOW = """
    \"\"\"A slow datum writing through S3 (s3_out): a PARTIAL object first, then,
    after a pause, the full output under the same key.\"\"\"
    import os
    import sys
    import time
    from pathlib import Path

    import boto3

    source, pids = Path(sys.argv[1]), Path(sys.argv[2])
    (pids / str(os.getpid())).write_text(os.environ["LOXO_DATUM"])
    s3 = boto3.client("s3")
    bucket = os.environ["LOXO_OUTPUT_BUCKET"]
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=f.name + ".out", Body=b"PARTIAL")
        time.sleep(3)
        s3.put_object(Bucket=bucket, Key=f.name + ".out", Body=f.read_bytes()[::-1] + b"|done")
"""

WHERE = """
    \"\"\"Copy each input to the output, with where the command ran.\"\"\"
    import os
    import sys
    from pathlib import Path

    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        (out / f.name).write_bytes(f.read_bytes() + b"\\n" + os.getcwd().encode())
"""

CHECK = """
    \"\"\"Refuse an input whose header is bad (exit 3, a message on stderr).\"\"\"
    import sys
    from pathlib import Path

    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        data = f.read_bytes()
        if not data.startswith(b"OK"):
            print(f"rejecting {f.name}: bad header {data[:8]!r}", file=sys.stderr)
            sys.exit(3)
        (out / f.name).write_bytes(data.lower())
"""


@pytest.fixture
def loxo_for() -> Iterator[Callable[[LoxoServer], Client]]:
    clients: list[Client] = []

    def make(server: LoxoServer) -> Client:
        clients.append(control(server))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def workers() -> Iterator[list[Any]]:
    """Worker subprocesses a test started: stopped (by pid) at the end."""
    procs: list[Any] = []
    yield procs
    for proc in procs:
        stop_worker(proc)


class Watcher(threading.Thread):
    """Lists and reads an output repo over and over (boto3, the main
    branch), remembering every (key, content) it ever saw."""

    def __init__(self, s3: Any, bucket: str) -> None:
        super().__init__(daemon=True)
        self.s3, self.bucket = s3, bucket
        self.seen: set[tuple[str, bytes]] = set()
        self.listings = 0
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                for key, body in objects(self.s3, self.bucket).items():
                    self.seen.add((key, body))
                self.listings += 1
            except Exception as exc:  # a key deleted between list and get
                self.errors.append(repr(exc))
            self.halt.wait(0.05)


def test_a_worker_killed_mid_datum_loses_nothing_and_shows_nothing_partial(
    make_server: Callable[..., LoxoServer],
    loxo_for: Callable[[LoxoServer], Client],
    workers: list[Any],
    tmp_path: Path,
) -> None:
    server = make_server(extra_args=["--workers", "0", "--lease-seconds", "2"])
    loxo, s3 = loxo_for(server), server.client()
    pids = tmp_path / "pids"
    pids.mkdir()
    script = write_script(tmp_path / "code", "slow.py", SLOW)
    loxo.create_repo("inbox")
    inputs = {"a.bin": os.urandom(3000), "b.bin": os.urandom(5000)}
    expected = {f"{k}.out": v[::-1] + b"|done" for k, v in inputs.items()}
    loxo.create_pipeline(
        {
            "pipeline": {"name": "slow"},
            "input": {"pfs": {"repo": "inbox", "glob": "/*"}},
            "transform": {"cmd": python_cmd(script, "/pfs/inbox", str(pids))},
            "s3_out": True,
        }
    )
    watcher = Watcher(s3, "slow")
    watcher.start()
    try:
        commit = commit_files(loxo, s3, "inbox", inputs)
        first = start_worker(server, tmp_path / "w1", "doomed", log=tmp_path / "w1.log")
        workers.append(first)
        job = poll(lambda: next(loxo.list_jobs("slow"), None), 30, "the job")["id"]
        running = poll(
            lambda: [d for d in datums(loxo, job, "running") if d["worker"] == "doomed"],
            30,
            "a datum running on the first worker",
        )
        victim = running[0]["id"]
        # The command has started (it wrote its pid): the worker dies mid-datum.
        orphans = poll(
            lambda: [int(p.name) for p in pids.iterdir() if p.read_text() == victim],
            30,
            "the datum's command to start",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        for pid in orphans:  # the command outlives its worker (its own session)
            with contextlib.suppress(psutil.NoSuchProcess):
                if str(script) in psutil.Process(pid).cmdline():
                    os.kill(pid, signal.SIGKILL)
        workers.append(start_worker(server, tmp_path / "w2", "rescuer", log=tmp_path / "w2.log"))
        status = wait_done(loxo, "inbox", commit, timeout=90)
        time.sleep(0.2)  # one more listing of the final state
    finally:
        watcher.halt.set()
        watcher.join(10)
    job_doc = job_of(status, "slow")
    assert job_doc["state"] == "success" and job_doc["datums"]["success"] == 2, status
    rows = {d["id"]: d for d in datums(loxo, job)}
    assert rows[victim]["worker"] == "rescuer" and rows[victim]["tries"] == 2, rows[victim]
    notes = [x["text"] for x in job_logs(loxo, job) if x["stream"] == "loxo"]
    assert any("lease expired: worker 'doomed'" in t for t in notes), notes
    assert objects(s3, "slow") == expected, "each output once, full"
    assert watcher.listings > 10, "the output repo was watched while the job ran"
    bad = {(k, v) for k, v in watcher.seen if expected.get(k) != v}
    assert not bad, f"partial or unknown objects were visible: {bad}"
    # Nothing else moved: one output commit, the job's.
    assert [c.id for c in loxo.log("slow")] == [head(loxo, "slow")]


def test_a_worker_on_another_machine_runs_datums_over_http(
    make_server: Callable[..., LoxoServer],
    loxo_for: Callable[[LoxoServer], Client],
    workers: list[Any],
    tmp_path: Path,
) -> None:
    server = make_server(extra_args=["--workers", "0"])
    loxo, s3 = loxo_for(server), server.client()
    elsewhere = tmp_path / "elsewhere"
    for sub in ("home", "cwd", "scratch", "tmp"):
        (elsewhere / sub).mkdir(parents=True)
    script = write_script(tmp_path / "code", "where.py", WHERE)
    loxo.create_repo("docs")
    inputs = {f"d{i}.txt": f"document {i}".encode() for i in range(3)}
    loxo.create_pipeline(
        {
            "pipeline": {"name": "copied"},
            "input": {"pfs": {"repo": "docs", "glob": "/*"}},
            "transform": {"cmd": python_cmd(script, "/pfs/docs", "/pfs/out")},
        }
    )
    commit = commit_files(loxo, s3, "docs", inputs)
    proc = start_worker(
        server,
        elsewhere / "scratch",
        "far-away",
        cwd=elsewhere / "cwd",
        home=elsewhere / "home",
        log=tmp_path / "far.log",
        extra_env={"TMPDIR": str(elsewhere / "tmp")},
    )
    workers.append(proc)
    status = wait_done(loxo, "docs", commit, timeout=60)
    job = job_of(status, "copied")
    assert job["state"] == "success" and job["datums"]["success"] == 3, status
    assert {d["worker"] for d in datums(loxo, job["job"])} == {"far-away"}
    out = objects(s3, "copied")
    assert sorted(out) == sorted(inputs)
    for key, body in out.items():
        data, _, cwd = body.rpartition(b"\n")
        assert data == inputs[key]
        # The datum ran in a fresh folder under that worker's own scratch dir.
        assert Path(cwd.decode()).resolve().is_relative_to((elsewhere / "scratch").resolve())
    assert not (elsewhere / "scratch" / "attempts").exists() or not any(
        (elsewhere / "scratch" / "attempts").iterdir()
    ), "attempt folders are cleaned up"


def test_a_failing_command_is_retried_logged_and_moves_nothing(
    make_server: Callable[..., LoxoServer],
    loxo_for: Callable[[LoxoServer], Client],
    tmp_path: Path,
) -> None:
    server = make_server(extra_args=["--workers", "1"])
    loxo, s3 = loxo_for(server), server.client()
    script = write_script(tmp_path / "code", "check.py", CHECK)
    loxo.create_repo("feed")
    loxo.create_pipeline(
        {
            "pipeline": {"name": "checked"},
            "input": {"pfs": {"repo": "feed", "glob": "/*"}},
            "transform": {"cmd": python_cmd(script, "/pfs/feed", "/pfs/out")},
            "datum_tries": 2,
        }
    )
    good = commit_files(loxo, s3, "feed", {"one.txt": b"OK first"})
    assert job_of(wait_done(loxo, "feed", good), "checked")["state"] == "success"
    before = head(loxo, "checked")
    assert objects(s3, "checked") == {"one.txt": b"ok first"}

    bad = commit_files(loxo, s3, "feed", {"two.txt": b"BROKEN!!", "three.txt": b"OK third"})
    job = job_of(wait_done(loxo, "feed", bad), "checked")
    assert job["state"] == "failure", job
    assert (job["datums"]["success"], job["datums"]["failed"]) == (1, 1), job
    assert head(loxo, "checked") == before, "a failed job does not move the output branch"
    assert objects(s3, "checked") == {"one.txt": b"ok first"}
    failed = datums(loxo, job["job"], "failed")
    assert len(failed) == 1 and failed[0]["inputs"][0]["path"] == "/two.txt"
    assert failed[0]["tries"] == 2 and failed[0]["exit_code"] == 3, failed[0]
    assert "exited with 3" in failed[0]["error"], failed[0]
    doc = loxo.inspect_job(job["job"])
    assert doc["output_commit"] is None and failed[0]["id"][:12] in doc["reason"], doc
    stderr = [x for x in job_logs(loxo, job["job"]) if x["stream"] == "stderr"]
    assert sorted(x["try"] for x in stderr) == [1, 2], stderr
    assert all("rejecting two.txt: bad header b'BROKEN!!'" in x["text"] for x in stderr)
    assert all(x["datum"] == failed[0]["id"] for x in stderr)
