"""`loxo job`, `datum`, `logs`, `wait`, `dag`, `provenance`, `subvenance`.

Offline: real `python -m gateway.cli` subprocesses for help texts, argument
checks and an unreachable server; the text renderings (DAG, lineage trees,
datum counts, log prefixes) as functions over answers shaped as
docs/design/jobs.md describes them. End to end: the same commands against a
server of this module's own whose local workers run shell pipelines."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from gateway.commands.jobs import counts_of, datum_summary, log_prefix, seconds
from gateway.commands.lineage import dag_lines, provenance_lines, subvenance_lines
from tests.conftest import REPO_ROOT, LoxoServer, free_port
from tests.conftest import loxo_cli as loxo
from tests.gateway.test_client_cli import Cli, env_cli, unique

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


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def workers_server(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[], str]
) -> Iterator[LoxoServer]:
    """A server of this module's own, with two local workers running datums."""
    srv = LoxoServer(extra_args=["--workers", "2"])
    srv.start(tmp_path_factory.mktemp("jobs-cli") / "data", fresh_database())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(workers_server: LoxoServer) -> Iterator[Client]:
    server = workers_server
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as client:
        yield client


@pytest.fixture(scope="module")
def s3(workers_server: LoxoServer) -> Any:
    """A boto3 client of this module's server (the session's `s3` is another's)."""
    return workers_server.client()


@pytest.fixture
def cli(workers_server: LoxoServer, tmp_path: Path) -> Cli:
    return env_cli(workers_server, tmp_path)


def source_repo(api: Client, s3: Any, files: int = 3) -> tuple[str, str]:
    """A repo with f1.txt .. fN.txt on main, in one commit; (repo, commit)."""
    repo = unique("in")
    api.create_repo(repo)
    opened = api.start_commit(repo, "main")
    for i in range(1, files + 1):
        s3.put_object(Bucket=opened.bucket, Key=f"f{i}.txt", Body=f"hello {i}\n".encode())
    commit = api.finish_commit(repo, opened.id, "inputs")
    assert commit is not None
    return repo, commit


def pipeline(api: Client, repo: str, script: str, tries: int = 3) -> str:
    """A pipeline running `sh -c script` on each file of `repo`, seen as
    /pfs/in/<file>."""
    name = unique("p")
    spec = {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
        "transform": {"cmd": ["sh", "-c", script]},
        "datum_tries": tries,
    }
    api.create_pipeline(spec)
    return name


def first_job(api: Client, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(api.list_jobs(name))
        if jobs:
            return jobs[-1]
        time.sleep(0.2)
    raise AssertionError(f"no job of {name} started in {timeout} s")


def with_tty_stderr(cli: Cli, *args: str) -> tuple[int, str, str]:
    """`loxo ARGS` with stderr on a pseudo-terminal: (exit code, stdout, what
    the terminal showed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env.update(cli.env)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    stdout, _ = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, stdout, shown.decode(errors="replace")


def test_jobs_datums_logs_and_lineage_of_a_pipeline(cli: Cli, api: Client, s3: Any) -> None:
    repo, commit = source_repo(api, s3)
    name = pipeline(api, repo, "echo working on $(ls /pfs/in) >&2; cp -r /pfs/in/* /pfs/out/")
    # Wait for everything downstream of the commit: one job, all datums done.
    done = cli("wait", f"{repo}@{commit[:12]}")
    assert re.search(
        rf"{name}\s+[0-9a-f]{{12}}\s+success\s+3 done, 0 skipped, 0 failed of 3", done.stdout
    )
    status = cli.json("wait", f"{repo}@main")
    assert status["done"] is True and [j["pipeline"] for j in status["jobs"]] == [name]

    [job] = cli.json("job", "list", "--pipeline", name)
    assert (job["state"], job["version"], job["datums"]["total"]) == ("success", 1, 3)
    jid = job["id"]
    listed = cli("job", "list", "-p", name, "--state", "success").stdout
    assert re.search(
        rf"{jid[:12]}\s+{name}@v1\s+success\s+\S+ \S+\s+\S+\s+3/0/0/3\s+[0-9a-f]{{12}}", listed
    )
    assert cli("job", "list", "-p", name, "--state", "failure").stdout.count("\n") == 1  # a header

    shown = cli("job", "inspect", jid[:10]).stdout
    for text in (
        f"job:            {jid}",
        "state:          success",
        f"output commit:  {job['output_commit']}",
        f"  in: {repo}@main {commit[:12]}",
        "3 total: 3 success",
        "plan:           full: 3 run",
        "where the time goes",
        "download:",
        "process:",
        "upload:",
        "scheduling:",
    ):
        assert text in shown, (text, shown)
    assert cli("job", "wait", jid).stdout.startswith(f"job {jid}: success (3/0/0/3")

    datums = cli.json("datum", "list", jid)
    assert sorted(i["path"] for d in datums for i in d["inputs"]) == [
        "/f1.txt",
        "/f2.txt",
        "/f3.txt",
    ]
    one = next(d for d in datums if d["inputs"][0]["path"] == "/f1.txt")
    assert f"{one['id'][:12]}  success  1" in cli("datum", "list", jid, "-s", "success").stdout
    detail = cli("datum", "inspect", jid, one["id"]).stdout
    assert f"  in  {repo}@{commit[:12]}:/f1.txt (1 file)" in detail
    assert re.search(rf"outputs: {name}@[0-9a-f]{{12}} \(1 file, 8 B\)", detail)
    assert "tries:      1" in detail and "timings: scheduling" in detail

    logs = cli("logs", "--job", jid).stdout.splitlines()
    assert f"[{jid[:8]} {one['id'][:8]} try 1 stderr] working on f1.txt" in logs
    records = [
        json.loads(line) for line in cli("logs", "-p", name, "-o", "json").stdout.splitlines()
    ]
    assert {"job", "datum", "try", "worker", "stream", "text", "time"} <= set(records[0])
    assert len([r for r in records if r["stream"] == "stderr"]) == 3
    assert cli("logs", "--job", jid, "--datum", one["id"]).stdout.count("working on") == 1

    dag = cli("dag").stdout
    assert (
        f"{repo}@main -> [{name}] -> {name}@main    running v1, last job {jid[:12]} success" in dag
    )
    assert name in [p["name"] for p in cli.json("dag")["pipelines"]]

    up = cli("provenance", f"{name}@main:f2.txt").stdout.splitlines()
    d2 = next(d for d in datums if d["inputs"][0]["path"] == "/f2.txt")
    assert up[0] == (
        f"{name}@{job['output_commit'][:12]}:f2.txt  "
        f"({name}@v1 job {jid[:12]} datum {d2['id'][:12]})"
    )
    assert up[1:] == [f"  {repo}@{commit[:12]}:f2.txt  (source)"]
    assert cli.json("provenance", f"{name}@main:f2.txt")["producer"]["job"] == jid
    down = cli("subvenance", f"{repo}@main:f2.txt").stdout.splitlines()
    assert down == [
        f"{repo}@{commit[:12]}:f2.txt",
        f"  {name}@{job['output_commit'][:12]}:f2.txt  "
        f"({name}@v1 job {jid[:12]} datum {d2['id'][:12]})",
    ]


def test_a_failing_pipeline_fails_wait_and_shows_why(cli: Cli, api: Client, s3: Any) -> None:
    repo, _ = source_repo(api, s3, files=1)
    name = pipeline(api, repo, "echo boom from $(ls /pfs/in) >&2; exit 3", tries=1)
    failed = cli("wait", f"{repo}@main", code=1)
    assert re.search(
        rf"{name}\s+[0-9a-f]{{12}}\s+failure\s+0 done, 0 skipped, 1 failed of 1", failed.stdout
    )
    assert f"1 downstream job(s) did not succeed: {name} (failure)" in failed.stderr
    jid = first_job(api, name)["id"]
    waited = cli("job", "wait", jid, code=1)
    assert f"job {jid} failure: " in waited.stderr
    assert f"[{jid[:8]}" in cli("logs", "-p", name).stdout
    assert "stderr] boom from f1.txt" in cli("logs", "-p", name).stdout
    [datum] = cli.json("datum", "list", jid, "--state", "failed")
    detail = cli("datum", "inspect", jid, datum["id"][:8]).stdout
    assert "state:      failed" in detail and "exit code:  3" in detail
    assert "last error:" in detail and "outputs: -" in detail
    restarted = cli("datum", "restart", jid, datum["id"]).stdout
    assert restarted.startswith(f"datum {datum['id']} of job {jid}: ")
    # It fails again (the same command): the job ends failed once more.
    cli("job", "wait", jid, "--timeout", "60", code=1)


def test_stop_a_running_job_and_wait_progress_on_a_terminal(cli: Cli, api: Client, s3: Any) -> None:
    repo, _ = source_repo(api, s3, files=2)
    name = pipeline(api, repo, "sleep 60")
    jid = first_job(api, name)["id"]
    code, stdout, shown = with_tty_stderr(cli, "wait", f"{repo}@main", "--timeout", "2")
    assert code == 1, (stdout, shown)
    # The bar redraws one line (\r, erase line) and ends with the timeout's message.
    assert "\r\x1b[K[" in shown and " datums (" in shown, shown
    assert "not done after 2.00s (--timeout)" in shown
    assert name in stdout  # the summary of where things stand
    code, _, shown = with_tty_stderr(cli, "job", "wait", jid, "--timeout", "1")
    assert code == 1 and f"job {jid[:12]} " in shown and "(--timeout)" in shown
    assert cli("job", "stop", jid).stdout.strip() == f"job {jid}: killed"
    assert "job " + jid + " killed" in cli("job", "wait", jid, code=1).stderr
    cli("job", "stop", jid, code=4)  # it ended: a conflict


def test_logs_follow_until_ctrl_c(cli: Cli, api: Client, s3: Any) -> None:
    repo, _ = source_repo(api, s3, files=1)
    name = pipeline(api, repo, "echo one; sleep 1; echo two >&2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env.update(cli.env)
    follow = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "logs", "-p", name, "-f"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT: give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        cli("wait", f"{repo}@main")
        time.sleep(1.5)  # two polls after the last record
    finally:
        follow.send_signal(signal.SIGINT)
        stdout, stderr = follow.communicate(timeout=30)
    assert follow.returncode == 130 and "Traceback" not in stderr, stderr
    lines = stdout.splitlines()
    assert [line.split("] ")[1] for line in lines if "stdout]" in line or "stderr]" in line] == [
        "one",
        "two",
    ]


def test_unknown_job_or_datum_is_not_found(cli: Cli) -> None:
    missing = "0" * 32
    proc = cli("job", "inspect", missing, code=3)
    assert f"job {missing} does not exist [job_not_found]" in proc.stderr
    cli("job", "wait", missing, code=3)
    cli("datum", "list", missing, code=3)
    cli("datum", "inspect", missing, "0" * 32, code=3)
    cli("provenance", "nosuchrepo@main:x", code=3)
