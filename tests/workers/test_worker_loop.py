"""The worker loop as a process (`python -m workers`): what it does when
loxo is not there, and how it stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from tests.conftest import child_pids

REPO_ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(
    endpoint: str, scratch: Path, access: str = "key", secret: str = "secret", *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "LOXO_ACCESS_KEY": access, "LOXO_SECRET_KEY": secret}
    return subprocess.Popen(
        [sys.executable, "-m", "workers", "--endpoint", endpoint, "--scratch", str(scratch),
         *extra],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_an_unreachable_server_is_retried_and_sigterm_stops_the_worker(tmp_path: Path) -> None:
    worker = start_worker(f"http://127.0.0.1:{_closed_port()}", tmp_path / "scratch")
    try:
        time.sleep(3)
        assert worker.poll() is None, worker.communicate()[1]  # still running, retrying
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr
    # stderr is not a terminal: one JSON record per line (--log-format auto).
    records = [json.loads(line) for line in stderr.splitlines()]
    messages = [r["message"] for r in records]
    assert any("lease failed" in m and "retrying" in m for m in messages), messages
    assert messages[-1].endswith("stopped") and records[-1]["logger"] == "loxo.worker"


def test_two_workers_cannot_share_a_scratch_folder(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    first = start_worker(endpoint, tmp_path / "scratch")
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "scratch" / "attempts").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = start_worker(endpoint, tmp_path / "scratch")
        _, stderr = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "another worker uses" in stderr
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_missing_keys_are_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    proc = subprocess.run(
        [sys.executable, "-m", "workers", "--endpoint", "http://127.0.0.1:1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--access-key, --secret-key required" in proc.stderr


# -- against a real server: jobs run by `python -m workers` -------------------------------

LENGTHS = """
import os, sys, time
time.sleep(float(os.environ.get("SLOW", "0")))
src = "/pfs/images"
for folder, _, names in os.walk(src):
    for name in names:
        path = os.path.join(folder, name)
        target = os.path.join("/pfs/out", os.path.relpath(path, src) + ".len")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(str(os.path.getsize(path)))
"""
FILES = {"a.txt": b"aaa", "b.txt": b"bbbbb", "dir/c.txt": b"c", "dir/d/e.txt": b"eeeeeee"}
EXPECTED = {"a.txt.len": b"3", "b.txt.len": b"5", "dir/c.txt.len": b"1", "dir/d/e.txt.len": b"7"}


def _pipeline(api: Any, s3: Any, slow: float = 0.0) -> str:
    """An input repo holding FILES and a pipeline over it; the pipeline's name."""
    name = f"lens{uuid.uuid4().hex[:8]}"
    repo = f"img{uuid.uuid4().hex[:8]}"
    api.create_repo(repo)
    for key, body in FILES.items():
        s3.put_object(Bucket=repo, Key=key, Body=body)
    api.create_pipeline(
        {
            "pipeline": {"name": name},
            "input": {"pfs": {"repo": repo, "name": "images", "glob": "/*"}},
            "transform": {
                # /pfs/ in the script is rewritten to the datum folder
                "cmd": [sys.executable, "-c", LENGTHS],
                "env": {"SLOW": str(slow)},
            },
        }
    )
    return name


def _wait_job(api: Any, pipeline: str, seconds: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = list(api.list_jobs(pipeline=pipeline))
        if jobs and jobs[0]["state"] in ("success", "failure", "killed"):
            return dict(jobs[0])
        time.sleep(0.2)
    raise AssertionError(f"no job of {pipeline} ended within {seconds:.0f} s: {jobs}")


def _outputs(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def jobs_server(make_server: Any) -> Any:
    # Short leases: a killed worker's datum is taken over within seconds.
    return make_server(extra_args=["--workers", "0", "--lease-seconds", "3"])


def test_a_worker_process_runs_a_pipelines_job(jobs_server: Any, tmp_path: Path) -> None:
    s3 = jobs_server.client()
    with Client(jobs_server.endpoint, jobs_server.access_key, jobs_server.secret_key) as api:
        pipeline = _pipeline(api, s3)
        worker = start_worker(
            jobs_server.endpoint,
            tmp_path / "w",
            jobs_server.access_key,
            jobs_server.secret_key,
            "--parallel",
            "2",
        )
        try:
            job = _wait_job(api, pipeline)
        finally:
            worker.terminate()
            _, log = worker.communicate(timeout=30)
        assert job["state"] == "success", (job, log)
        assert _outputs(s3, pipeline) == EXPECTED
        datums = list(api.list_datums(job["id"]))
        assert sorted(d["state"] for d in datums) == ["success"] * 3  # /a.txt, /b.txt, /dir
        # one log line per datum: pipeline, job and datum ids, outcome, timings
        for d in datums:
            assert f"{pipeline} job {job['id'][:8]} datum {d['id'][:8]} success" in log
        assert worker.returncode == 0

        # The datum replayed here, in a folder of our own, uploading nothing.
        d = next(d for d in datums if d["inputs"][0]["path"].rstrip("/").endswith("dir"))
        folder = tmp_path / "replay"
        replay = subprocess.run(
            [sys.executable, "-c", RUN_DATUM, job["id"], d["id"], "--local", "--folder",
             str(folder)],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "LOXO_ENDPOINT": jobs_server.endpoint,
                "LOXO_ACCESS_KEY": jobs_server.access_key,
                "LOXO_SECRET_KEY": jobs_server.secret_key,
                "LOXO_CONFIG": str(tmp_path / "no-config.json"),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert str(folder.resolve()) in replay.stdout
        assert (folder / "pfs" / "out" / "dir" / "d" / "e.txt.len").read_text() == "7"
        assert (folder / "pfs" / "images" / "dir" / "c.txt").read_bytes() == b"c"
        assert _outputs(s3, pipeline) == EXPECTED


# `loxo datum run` before the lead registers it: the command function, as its own CLI.
RUN_DATUM = "import typer; from gateway.commands.worker import datum_run; typer.run(datum_run)"


def test_a_killed_workers_datums_run_again_on_another(jobs_server: Any, tmp_path: Path) -> None:
    s3 = jobs_server.client()
    access, secret = jobs_server.access_key, jobs_server.secret_key
    with Client(jobs_server.endpoint, access, secret) as api:
        pipeline = _pipeline(api, s3, slow=3.0)
        first = start_worker(
            jobs_server.endpoint, tmp_path / "w1", access, secret, "--parallel", "3"
        )
        try:
            deadline = time.monotonic() + 60
            running: list[dict[str, Any]] = []
            while not running and time.monotonic() < deadline:
                jobs = list(api.list_jobs(pipeline=pipeline))
                if jobs:
                    running = list(api.list_datums(jobs[0]["id"], state="running"))
                time.sleep(0.1)
            assert running, "the first worker never started a datum"
            first.kill()  # kill -9, mid-datum: nothing reported, the leases expire
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        second = start_worker(
            jobs_server.endpoint, tmp_path / "w2", access, secret, "--parallel", "3"
        )
        try:
            job = _wait_job(api, pipeline)
        finally:
            second.terminate()
            _, log = second.communicate(timeout=30)
        assert job["state"] == "success", (job, log)
        assert _outputs(s3, pipeline) == EXPECTED  # each output exactly once
        datums = {d["id"]: d for d in api.list_datums(job["id"])}
        assert all(d["state"] == "success" for d in datums.values())
        for d in running:
            assert datums[d["id"]]["tries"] >= 2  # it ran again after the kill


def test_heartbeats_keep_a_long_datum_leased(jobs_server: Any, tmp_path: Path) -> None:
    s3 = jobs_server.client()
    access, secret = jobs_server.access_key, jobs_server.secret_key
    with Client(jobs_server.endpoint, access, secret) as api:
        pipeline = _pipeline(api, s3, slow=7.0)  # more than twice the 3 s lease
        # This time as `loxo worker`, its keys from the environment as for every command.
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker", "--endpoint", jobs_server.endpoint,
             "--scratch", str(tmp_path / "w"), "--parallel", "3"],
            cwd=REPO_ROOT,
            env={**os.environ, "LOXO_ACCESS_KEY": access, "LOXO_SECRET_KEY": secret,
                 "LOXO_CONFIG": str(tmp_path / "no-config.json")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            job = _wait_job(api, pipeline)
        finally:
            worker.terminate()
            _, log = worker.communicate(timeout=30)
        assert job["state"] == "success", (job, log)
        assert [d["tries"] for d in api.list_datums(job["id"])] == [1, 1, 1], log
        assert _outputs(s3, pipeline) == EXPECTED


def test_a_stopped_jobs_commands_are_killed(jobs_server: Any, tmp_path: Path) -> None:
    s3 = jobs_server.client()
    access, secret = jobs_server.access_key, jobs_server.secret_key
    with Client(jobs_server.endpoint, access, secret) as api:
        pipeline = _pipeline(api, s3, slow=120.0)
        worker = start_worker(
            jobs_server.endpoint, tmp_path / "w", access, secret, "--parallel", "3"
        )
        try:
            deadline = time.monotonic() + 60
            running: list[dict[str, Any]] = []
            while len(running) < 3 and time.monotonic() < deadline:
                jobs = list(api.list_jobs(pipeline=pipeline))
                if jobs:
                    running = list(api.list_datums(jobs[0]["id"], state="running"))
                time.sleep(0.1)
            assert len(running) == 3, running
            api.stop_job(running[0]["job"])
            job = _wait_job(api, pipeline, 30)
            # The heartbeat learns the leases are gone and kills the commands:
            # the worker is idle again long before the 120 s sleeps would end.
            assert job["state"] == "killed"
            time.sleep(3)
        finally:
            stopping = time.monotonic()
            worker.terminate()
            _, log = worker.communicate(timeout=30)
        assert time.monotonic() - stopping < 10
        assert log.count("lost: killing it") == 3, log
        for d in running:
            assert f"datum {d['id'][:8]} lost" in log


def test_the_servers_own_workers_run_jobs_and_stop_with_it(make_server: Any) -> None:
    srv = make_server(extra_args=["--workers", "2", "--lease-seconds", "3"])
    s3 = srv.client()
    with Client(srv.endpoint, srv.access_key, srv.secret_key) as api:
        pipeline = _pipeline(api, s3)
        job = _wait_job(api, pipeline)
        assert job["state"] == "success", (job, srv.log_text()[-3000:])
        assert _outputs(s3, pipeline) == EXPECTED
        workers = {d["worker"] for d in api.list_datums(job["id"])}
        assert workers and all("-local-" in w for w in workers)
    assert srv.proc is not None
    pids = child_pids(srv.proc.pid)
    assert len(pids) == 2, pids
    assert srv.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def _first_job(api: Any, pipeline: str, seconds: float = 60.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = list(api.list_jobs(pipeline=pipeline))
        if jobs:
            return str(jobs[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"no job of {pipeline} started within {seconds:.0f} s")


def test_a_dedicated_worker_runs_its_own_job_only_and_exits_when_idle(
    jobs_server: Any, tmp_path: Path
) -> None:
    """What a Kubernetes pod does: `--job ID --exit-when-idle` runs that job's
    datums only (the lease's `jobs` filter) and exits 0 once the job ended;
    `--pipelines NAME` does the same for a pipeline's jobs."""
    s3 = jobs_server.client()
    access, secret = jobs_server.access_key, jobs_server.secret_key
    with Client(jobs_server.endpoint, access, secret) as api:
        mine, other = _pipeline(api, s3), _pipeline(api, s3)
        job, other_job = _first_job(api, mine), _first_job(api, other)
        worker = start_worker(
            jobs_server.endpoint, tmp_path / "w1", access, secret,
            "--job", job, "--exit-when-idle", "--wait-seconds", "0.5", "--parallel", "2",
        )  # fmt: skip
        try:
            _, log = worker.communicate(timeout=90)  # it ends by itself
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert worker.returncode == 0, log
        assert "no job of its own is active: exiting" in log
        assert api.inspect_job(job)["state"] == "success"
        assert _outputs(s3, mine) == EXPECTED
        # Not one datum of the other pipeline's job was leased.
        assert {d["state"] for d in api.list_datums(other_job)} == {"pending"}

        worker = start_worker(
            jobs_server.endpoint, tmp_path / "w2", access, secret,
            "--pipelines", f"nothing-here,{other}", "--exit-when-idle", "--wait-seconds", "0.5",
        )  # fmt: skip
        try:
            _, log = worker.communicate(timeout=90)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert worker.returncode == 0, log
        assert api.inspect_job(other_job)["state"] == "success"
        assert _outputs(s3, other) == EXPECTED
