#!/usr/bin/env python3
"""Pipelines: incremental jobs and datum throughput, side by side with DVC.

One `loxo serve --workers N` on loopback with a scratch PostgreSQL database;
input files are loaded through an open commit (ONE commit, many PUTs at once),
then:

  P8   a `glob: "/*"` pipeline copying each file to /pfs/out over N small files:
       the first (full) job's wall time, from the input commit to the job's
       success (wait_status polled every 20 ms, a long job at 0.5 % of its
       age), then the job after adding ONE
       file: exactly one datum must run. Peer: DVC, `dvc repro` of a stage with
       `deps: [data]`, `outs: [out]` copying every file (a changed dependency
       reruns the whole stage), initial and after adding the same one file.
  P9   the same one-file incremental job over BIG input files: its wall time
       against P8's (the planning follows the change, not the input's size),
       with the job's plan stats (kind, listed_keys, plan_seconds).
  P10  datum throughput of P8's full job (datums/s) and where each datum's
       time goes, from inspect_job's timings summed over datums.

    python benchmarks/bench_pipelines.py --quick        # N=1,000, BIG=10,000
    python benchmarks/bench_pipelines.py                # N=10,000, BIG=100,000
    python benchmarks/bench_pipelines.py --files 2000 --big 20000 --skip-dvc

Quote the ratios (incremental/full, BIG/N, loxo/DVC), not the absolute times.
DVC runs from its own venv (benchmarks/.venv-dvc, made on first use), never
from loxo's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(REPO_ROOT))

from gateway.client import Client  # noqa: E402

ACCESS_KEY = "loxobenchaccess"
SECRET_KEY = "loxobenchsecret0123456789abcdefghijklmn"
REGION = "us-east-1"
DVC_VENV = HERE / ".venv-dvc"
TARGET_INCREMENTAL = 0.02  # incremental/full
TARGET_SCALE = 1.5  # incremental at BIG / at N
TARGET_THROUGHPUT = 100.0  # datums/s
LONG_POLL = 10.0  # a worker's lease wait_seconds (workers.worker.WAIT_SECONDS)


def log(msg: str) -> None:
    print(f"[bench_pipelines {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the machine and its processes ---------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd[:4])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return done


class Scratch:
    """A fresh database on the admin URL's server, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"loxo_bench_pl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"
        self._sql(f'CREATE DATABASE "{self.name}"')

    def _sql(self, sql: str) -> str:
        psql = shutil.which("psql")
        if psql is None:
            raise RuntimeError("needs psql to create the scratch database")
        return run([psql, self.admin_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).stdout

    def version(self) -> str:
        return self._sql("SHOW server_version").strip()

    def backends(self) -> list[int]:
        out = self._sql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.name}'")
        return [int(x) for x in out.split()]

    def drop(self) -> None:
        try:
            self._sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except RuntimeError as exc:
            log(f"warning: could not drop {self.name}: {exc}")


@dataclass
class Server:
    """`loxo serve --workers N` in its own process group."""

    cmd: list[str]
    env: dict[str, str]
    logdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    _files: list[Any] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def err_path(self) -> Path:
        return self.logdir / "loxo.stderr.log"

    def start(self, timeout: float) -> None:
        log(f"starting: {shlex.join(self.cmd)}")
        out = open(self.logdir / "loxo.stdout.log", "wb")  # noqa: SIM115 (closed in stop)
        err = open(self.err_path, "wb")  # noqa: SIM115
        self._files = [out, err]
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loxo exited during startup:\n{self.tail()}")
            logs = (self.logdir / "loxo.stdout.log").read_bytes() + self.err_path.read_bytes()
            if b"listening on http://" in logs:
                return
            time.sleep(0.1)
        raise RuntimeError(f"loxo not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.err_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no stderr)"

    def workers(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        kids = psutil.Process(self.proc.pid).children()
        found = []
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                if "workers" in kid.cmdline():
                    found.append(kid)
        return found

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    if sig == signal.SIGINT:
                        proc.send_signal(sig)  # loxo stops its workers on it
                    else:
                        os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for f in self._files:
            f.close()
        self._files = []


def _cpu(p: psutil.Process, children: bool = False) -> float:
    t = p.cpu_times()
    total = float(t.user + t.system)
    if children:  # waited-for children: the datums' commands
        total += t.children_user + t.children_system
    return total


class CpuMeter:
    """CPU seconds of the gateway, its workers (with their commands) and the
    scratch database's backends, between start() and stop()."""

    def __init__(self, server: Server, db: Scratch) -> None:
        self.server = server
        self.db = db
        self.start_values: dict[str, dict[int, float]] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        assert self.server.proc is not None
        out: dict[str, dict[int, float]] = {"gateway": {}, "workers": {}, "postgres": {}}
        with contextlib.suppress(psutil.Error):
            out["gateway"][0] = _cpu(psutil.Process(self.server.proc.pid))
        for w in self.server.workers():
            with contextlib.suppress(psutil.Error):
                out["workers"][w.pid] = _cpu(w, children=True)
        for pid in self.db.backends():
            with contextlib.suppress(psutil.Error):
                out["postgres"][pid] = _cpu(psutil.Process(pid))
        return out

    def start(self) -> None:
        self.start_values = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        used: dict[str, float] = {}
        for group, values in end.items():
            before = self.start_values.get(group, {})
            used[group] = sum(v - before.get(pid, 0.0) for pid, v in values.items())
        return used


# -- loading inputs ----------------------------------------------------------------------


def content(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def key_of(i: int) -> str:
    return f"f{i:07d}.bin"


def s3_client(endpoint: str, pool: int) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=pool,
        ),
    )


def load(
    api: Client, s3: Any, repo: str, items: Iterable[tuple[str, bytes]], threads: int
) -> tuple[str, float]:
    """Every item into ONE commit of repo's main (an open commit, PUTs in
    parallel); the commit id and the seconds it took."""
    started = time.perf_counter()
    opened = api.start_commit(repo)

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=opened.bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, items):
            pass
    commit = api.finish_commit(repo, opened.id, "bench input")
    assert commit is not None
    return commit, time.perf_counter() - started


# -- jobs --------------------------------------------------------------------------------


def ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class JobRun:
    """One job, from the input commit to its end as the client saw it."""

    wall: float  # commit -> wait_status says done
    job: dict[str, Any]  # inspect_job
    committed_at: float  # epoch seconds, client clock

    @property
    def ran(self) -> int:
        datums = self.job["datums"]
        return int(datums["success"] + datums["failed"] + datums["recovered"])

    def phase(self, name: str) -> float | None:
        """Server side: commit -> job created (trigger), created -> started
        (first lease), started -> finished."""
        created, started = ts(self.job["created"]), ts(self.job["started"])
        finished = ts(self.job["finished"])
        if name == "trigger" and created is not None:
            return created - self.committed_at
        if name == "lease" and created is not None and started is not None:
            return started - created
        if name == "run" and started is not None and finished is not None:
            return finished - started
        return None


def wait_job(
    api: Client, repo: str, commit: str, started: float, poll: float, timeout: float
) -> JobRun:
    committed_at = time.time() - (time.perf_counter() - started)
    deadline = started + timeout
    while True:
        status = api.wait_status(repo, commit)
        if status["done"]:
            wall = time.perf_counter() - started
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no job finished within {timeout:.0f} s: {status}")
        # Every 20 ms for a short job; a long one is polled at 0.5 % of its
        # age (each poll counts the job's datums: 50 a second would load the
        # server being measured), which keeps the wall within 0.5 %.
        time.sleep(max(poll, 0.005 * (time.perf_counter() - started)))
    jobs = status["jobs"]
    if len(jobs) != 1:
        raise RuntimeError(f"expected one job downstream of {repo}@{commit}: {status}")
    job = api.inspect_job(jobs[0]["job"])
    if job["state"] != "success":
        raise RuntimeError(f"job {job['id']} ended {job['state']}: {job['reason']}")
    return JobRun(wall, job, committed_at)


def add_one(api: Client, s3: Any, repo: str, key: str, body: bytes) -> tuple[str, float]:
    """One PUT to repo's main (a commit of its own); its commit id and the
    perf_counter time the PUT returned."""
    s3.put_object(Bucket=repo, Key=key, Body=body)
    at = time.perf_counter()
    head = api.get_branch(repo, "main").head
    assert head is not None
    return head, at


class Helpers:
    """Extra `python -m workers` processes that only speed up P9's setup (the
    full job over BIG files); stopped before anything of P9 is measured."""

    def __init__(self, server: Server, count: int, parallel: int, root: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for i in range(count):
            scratch = root / f"helper-{i}"
            scratch.mkdir(parents=True)
            cmd = [sys.executable, "-m", "workers", "--endpoint", server.endpoint]
            cmd += ["--scratch", str(scratch), "--parallel", str(parallel)]
            cmd += ["--name", f"bench-helper-{i}"]
            errors = open(root / f"helper-{i}.log", "wb")  # noqa: SIM115 (the child keeps it)
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=REPO_ROOT,
                    env=server.env,
                    stdin=subprocess.DEVNULL,
                    stdout=errors,
                    stderr=errors,
                    start_new_session=True,
                )
            )
            errors.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def pipeline_spec(name: str, repo: str) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "name": "data", "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", "cp /pfs/data/* /pfs/out/"]},
    }


def incremental(
    api: Client,
    s3: Any,
    repo: str,
    args: argparse.Namespace,
    file_id: Callable[[int], int],
) -> list[JobRun]:
    runs = []
    for r in range(args.repeat):
        i = file_id(r)
        commit, at = add_one(api, s3, repo, f"added-{i:07d}.bin", content(i, args.file_bytes))
        job = wait_job(api, repo, commit, at, args.poll, args.job_timeout)
        if job.ran != 1:
            raise AssertionError(f"incremental job ran {job.ran} datums, not 1: {job.job}")
        runs.append(job)
        log(
            f"{repo}: +1 file -> job of {job.ran} datum in {job.wall:.3f} s "
            f"(plan {job.job['plan']['plan']}, listed {job.job['plan']['listed_keys']} keys)"
        )
    return runs


# -- DVC -----------------------------------------------------------------------------------


def dvc_exe(install: bool) -> tuple[Path | None, str]:
    """DVC in its own venv (made on first use); the executable and a note."""
    exe = DVC_VENV / "bin" / "dvc"
    if not exe.exists():
        if not install:
            return None, "not installed (--no-install)"
        log(f"installing DVC into {DVC_VENV} (once)")
        try:
            run([sys.executable, "-m", "venv", str(DVC_VENV)])
            run([str(DVC_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "dvc"])
        except RuntimeError as exc:
            return None, f"could not install DVC: {str(exc)[-300:]}"
    try:
        version = run([str(exe), "--version"]).stdout.strip()
    except (RuntimeError, OSError) as exc:
        return None, f"DVC does not run: {exc}"
    return exe, f"DVC {version} from {DVC_VENV}"


@dataclass
class DvcResult:
    full: float
    incremental: float
    note: str


DVC_STAGE = """\
stages:
  copy:
    cmd: mkdir -p out && for f in data/*; do cp "$f" out/; done
    deps:
      - data
    outs:
      - out
"""


def bench_dvc(exe: Path, work: Path, n: int, args: argparse.Namespace, note: str) -> DvcResult:
    root = work / "dvc"
    data = root / "data"
    data.mkdir(parents=True)
    for i in range(n):
        (data / key_of(i)).write_bytes(content(i, args.file_bytes))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", SHELL="/bin/sh")
    git = shutil.which("git")
    if git is not None:
        run([git, "init", "-q"], root, env)
        run([str(exe), "init", "-q"], root, env)
    else:
        run([str(exe), "init", "-q", "--no-scm"], root, env)
    (root / "dvc.yaml").write_text(DVC_STAGE)

    def repro() -> float:
        started = time.perf_counter()
        run([str(exe), "repro", "-q"], root, env)
        return time.perf_counter() - started

    full = repro()
    log(f"dvc repro (full, {n} files): {full:.2f} s")
    times = []
    for r in range(args.repeat):
        i = 10_000_000 + r
        (data / f"added-{i:07d}.bin").write_bytes(content(i, args.file_bytes))
        times.append(repro())
        copied = sum(1 for _ in (root / "out").iterdir())
        assert copied == n + r + 1, (copied, n + r + 1)
        log(f"dvc repro after +1 file: {times[-1]:.2f} s ({copied} files copied)")
    return DvcResult(full, statistics.median(times), note)


# -- the table --------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str
    loxo: str
    peer: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


def fmt(value: float | None, prec: int = 3) -> str:
    return "-" if value is None else f"{value:,.{prec}f}"


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def decile_rates(api: Client, job: str) -> tuple[float, float]:
    """Datums/s over the first and the last tenth of the job's completions
    (from each datum's `finished`): whether the rate falls as the job grows."""
    ends = sorted(
        t for d in api.list_datums(job, state="success") if (t := ts(d["finished"])) is not None
    )
    tenth = max(2, len(ends) // 10)
    if len(ends) < 2 * tenth:
        return 0.0, 0.0
    first, last = ends[:tenth], ends[-tenth:]
    return (
        (tenth - 1) / max(first[-1] - first[0], 1e-9),
        (tenth - 1) / max(last[-1] - last[0], 1e-9),
    )


def walls(runs: list[JobRun]) -> str:
    """The median, and every run in order."""
    each = ", ".join(f"{j.wall:.3f}" for j in runs)
    return f"{statistics.median(j.wall for j in runs):.3f} ({each})"


def plan_text(job: JobRun) -> str:
    plan = job.job["plan"]
    return (
        f"{plan['plan']}, listed_keys={plan['listed_keys']}, "
        f"plan_seconds={plan['plan_seconds']:.4f}, run={plan['run']}"
    )


def print_table(rows: list[Row]) -> None:
    print()
    print("| row | unit | loxo | peer (DVC) | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.label} | {r.unit} | {r.loxo} | {r.peer} | {r.ratio} | {r.target} | {r.met} |")


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N=1,000 and BIG=10,000")
    p.add_argument("--files", type=int, default=None, help="N: P8/P10 input files (10,000)")
    p.add_argument("--big", type=int, default=None, help="BIG: P9's large input (100,000)")
    p.add_argument("--file-bytes", type=int, default=1024, help="size of each input file")
    p.add_argument("--workers", type=int, default=2, help="local workers (loxo serve --workers)")
    p.add_argument(
        "--worker-parallel",
        type=int,
        default=None,
        help="datums each local worker runs at once (loxo serve's default when unset)",
    )
    p.add_argument("--repeat", type=int, default=3, help="one-file additions (median reported)")
    p.add_argument("--poll", type=float, default=0.02, help="wait_status poll interval, s")
    p.add_argument("--load-threads", type=int, default=32, help="concurrent PUTs when loading")
    p.add_argument(
        "--big-helpers",
        type=int,
        default=1,
        help="extra worker processes for the full job over BIG files only (P9's setup)",
    )
    p.add_argument("--big-helper-parallel", type=int, default=8, help="datums each runs at once")
    p.add_argument("--skip-dvc", action="store_true", help="no DVC rows")
    p.add_argument("--skip-big", action="store_true", help="no P9 BIG run")
    p.add_argument("--no-install", action="store_true", help="never pip install DVC")
    p.add_argument("--job-timeout", type=float, default=7200.0, help="limit for each job, s")
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the scratch dir")
    p.add_argument("--keep-workdir", action="store_true", help="keep it (server logs inside)")
    args = p.parse_args(argv)
    if args.files is None:
        args.files = 1_000 if args.quick else 10_000
    if args.big is None:
        args.big = 10_000 if args.quick else 100_000
    if args.repeat < 1 or args.files < 1 or args.big < 1:
        p.error("--repeat, --files and --big must be positive")
    return args


def environment(db: Scratch, dvc_note: str) -> list[str]:
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"cores: {os.cpu_count()} ({platform.processor() or platform.machine()}), "
        f"python {platform.python_version()} ({sys.executable})",
        f"loxo: {REPO_ROOT} at {head or '?'}; PostgreSQL {db.version()}",
        f"peer: {dvc_note}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="loxo-bench-pipelines-", dir=args.workdir))
    dvc: tuple[Path | None, str] = (None, "skipped (--skip-dvc)")
    if not args.skip_dvc:
        dvc = dvc_exe(not args.no_install)
    db = Scratch(args.pg_admin_url)
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        LOXO_ACCESS_KEY=ACCESS_KEY,
        LOXO_SECRET_KEY=SECRET_KEY,
    )
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{port}"]
    cmd += ["--data-dir", str(work / "data"), "--database-url", db.url]
    cmd += ["--workers", str(args.workers)]
    if args.worker_parallel is not None:
        cmd += ["--worker-parallel", str(args.worker_parallel)]
    server = Server(cmd, env, work, port)
    rows: list[Row] = []
    notes: list[str] = []
    env_lines = environment(db, dvc[1])
    try:
        server.start(120)
        api = Client(server.endpoint, ACCESS_KEY, SECRET_KEY)
        s3 = s3_client(server.endpoint, args.load_threads)
        meter = CpuMeter(server, db)
        n, big = args.files, args.big

        # P8 / P10: the full job over N files, then one file at a time.
        api.create_repo("small")
        api.create_pipeline(pipeline_spec("copy-small", "small"))
        commit, load_s = load(
            api,
            s3,
            "small",
            ((key_of(i), content(i, args.file_bytes)) for i in range(n)),
            args.load_threads,
        )
        at = time.perf_counter()
        meter.start()
        notes.append(f"load of {n:,} files into one commit: {load_s:.1f} s ({n / load_s:,.0f}/s)")
        log(f"loaded {n} files in {load_s:.1f} s; waiting for the full job")
        full = wait_job(api, "small", commit, at, args.poll, args.job_timeout)
        cpu = meter.stop()
        log(f"full job: {full.ran} datums in {full.wall:.1f} s")
        if full.ran != n:
            raise AssertionError(f"full job ran {full.ran} datums, not {n}")
        rates = decile_rates(api, full.job["id"])
        inc = incremental(api, s3, "small", args, lambda r: 10_000_000 + r)
        inc_s = statistics.median(j.wall for j in inc)

        dvc_res: DvcResult | None = None
        if dvc[0] is not None:
            try:
                dvc_res = bench_dvc(dvc[0], work, n, args, dvc[1])
            except (RuntimeError, AssertionError) as exc:
                dvc = (None, f"DVC failed: {str(exc)[-300:]}")

        # P9: the same one-file job over BIG files.
        big_inc: list[JobRun] = []
        big_full: JobRun | None = None
        if not args.skip_big:
            api.create_repo("big")
            api.create_pipeline(pipeline_spec("copy-big", "big"))
            helpers = Helpers(server, args.big_helpers, args.big_helper_parallel, work)
            commit, load_s = load(
                api,
                s3,
                "big",
                ((key_of(i), content(i, args.file_bytes)) for i in range(big)),
                args.load_threads,
            )
            at = time.perf_counter()
            notes.append(
                f"load of {big:,} files into one commit: {load_s:.1f} s ({big / load_s:,.0f}/s)"
            )
            log(f"loaded {big} files in {load_s:.1f} s; waiting for its full job")
            try:
                big_full = wait_job(api, "big", commit, at, args.poll, args.job_timeout)
            finally:
                helpers.stop()
            # A stopped worker's pending lease long-poll still runs on the
            # server (up to its wait_seconds, 10 s) and would take the next
            # datum for nobody (it then waits out lease_seconds): let it end.
            time.sleep(LONG_POLL + 2)
            log(f"full job over {big}: {big_full.ran} datums in {big_full.wall:.1f} s")
            big_inc = incremental(api, s3, "big", args, lambda r: 20_000_000 + r)
        api.close()
    finally:
        server.stop()
        db.drop()
        if args.keep_workdir:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # P8
    r = f"median of {args.repeat}"
    dvc_cell = dvc[1] if dvc_res is None else ""
    rows.append(
        Row(
            f"P8 full job, {n:,} files",
            "s",
            fmt(full.wall, 2),
            fmt(dvc_res.full, 2) if dvc_res else dvc_cell,
            f"{full.wall / dvc_res.full:.2f}x" if dvc_res else "",
        )
    )
    rows.append(
        Row(
            f"P8 +1 file: incremental job ({r})",
            "s",
            walls(inc),
            fmt(dvc_res.incremental) if dvc_res else dvc_cell,
            f"{inc_s / dvc_res.incremental:.3f}x" if dvc_res else "",
        )
    )
    ran = [j.ran for j in inc]
    rows.append(
        Row(
            "P8 +1 file: datums run",
            "datums",
            ", ".join(map(str, ran)),
            f"{n + 1:,} files copied (whole stage)" if dvc_res else "",
            "",
            "exactly 1",
            yes(all(x == 1 for x in ran)),
        )
    )
    ratio = inc_s / full.wall
    rows.append(
        Row(
            "P8 incremental / full",
            "%",
            fmt(100 * ratio, 2),
            fmt(100 * dvc_res.incremental / dvc_res.full, 1) if dvc_res else "",
            "",
            f"<= {100 * TARGET_INCREMENTAL:g} %",
            yes(ratio <= TARGET_INCREMENTAL),
        )
    )
    trig = statistics.median(j.phase("trigger") or 0.0 for j in inc)
    lease = statistics.median(j.phase("lease") or 0.0 for j in inc)
    run_s = statistics.median(j.phase("run") or 0.0 for j in inc)
    rows.append(
        Row(
            "P8 +1 file: commit->job / job->lease / lease->end",
            "s",
            f"{trig:.3f} / {lease:.3f} / {run_s:.3f}",
        )
    )

    # P9
    rows.append(Row(f"P9 +1 file at {n:,} files ({r})", "s", walls(inc)))
    rows.append(Row(f"P9   plan at {n:,}", "", plan_text(inc[-1])))
    if big_inc and big_full is not None:
        big_s = statistics.median(j.wall for j in big_inc)
        rows.append(Row(f"P9 +1 file at {big:,} files ({r})", "s", walls(big_inc)))
        rows.append(Row(f"P9   plan at {big:,}", "", plan_text(big_inc[-1])))
        rows.append(
            Row(
                f"P9 {big:,} / {n:,}",
                "x",
                fmt(big_s / inc_s, 2),
                "",
                "",
                f"<= {TARGET_SCALE:g}x",
                yes(big_s / inc_s <= TARGET_SCALE),
            )
        )
        notes.append(
            f"full job over {big:,} files (P9's setup, not measured; {args.workers} workers "
            f"+ {args.big_helpers} helper(s) x {args.big_helper_parallel} at once): "
            f"{big_full.wall:.1f} s, {big_full.ran / big_full.wall:,.1f} datums/s; "
            f"plan {plan_text(big_full)}"
        )
    else:
        rows.append(Row(f"P9 +1 file at {big:,} files", "s", "skipped (--skip-big)"))

    # P10
    datums = full.ran
    throughput = datums / full.wall
    rows.append(
        Row(
            f"P10 full job throughput, {args.workers} workers",
            "datums/s",
            fmt(throughput, 1),
            fmt(n / dvc_res.full, 1) if dvc_res else "",
            "",
            f">= {TARGET_THROUGHPUT:g}",
            yes(throughput >= TARGET_THROUGHPUT),
        )
    )
    t = full.job["timings"]
    per = {
        k: 1000 * float(t.get(k) or 0.0) / datums for k in ("wait", "download", "process", "upload")
    }
    wall_per = 1000 * full.wall / datums
    slot = wall_per * args.workers
    busy = per["download"] + per["process"] + per["upload"]
    rows.append(Row("P10   wall / datum", "ms", fmt(wall_per, 2)))
    rows.append(
        Row("P10   wall x workers / datum (one worker's time per datum)", "ms", fmt(slot, 2))
    )
    rows.append(Row("P10   queued -> leased (wait, summed / datums)", "ms", fmt(per["wait"], 1)))
    for k in ("download", "process", "upload"):
        rows.append(Row(f"P10   {k} / datum", "ms", fmt(per[k], 2)))
    rows.append(
        Row(
            "P10   rest of a worker's time / datum (lease, complete, setup)",
            "ms",
            fmt(slot - busy, 2),
        )
    )
    rows.append(
        Row(
            "P10   datums/s over the first / last 10 % of completions",
            "datums/s",
            f"{rates[0]:.1f} / {rates[1]:.1f}",
        )
    )
    for phase in ("trigger", "lease", "run"):
        value = full.phase(phase)
        rows.append(Row(f"P10   job phase: {phase}", "s", fmt(value, 2)))
    total_cpu = sum(cpu.values())
    rows.append(
        Row(
            "P10   CPU gateway / workers+cmds / postgres",
            "ms/datum",
            " / ".join(fmt(1000 * cpu[k] / datums, 2) for k in ("gateway", "workers", "postgres")),
            "",
            "",
            f"{total_cpu / full.wall:.2f} cores busy of {os.cpu_count()}",
        )
    )

    print()
    print("## bench_pipelines")
    for line in env_lines:
        print(f"- {line}")
    print(f"- N={n:,}, BIG={big:,}, {args.file_bytes} B files, {args.workers} local workers")
    print_table(rows)
    print()
    for line in notes:
        print(f"- {line}")
    if dvc_res is None:
        print(f"- DVC: {dvc[1]}")
    print(
        "- walls: input commit -> wait_status done (polled every "
        f"{1000 * args.poll:g} ms, a long job at 0.5 % of its age); CPU: from the input "
        "commit to the full job's end"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
