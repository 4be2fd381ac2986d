#!/usr/bin/env python3
"""Side-by-side S3 benchmark: loxo vs moto_server.

One command starts both servers on free loopback ports, runs the same
workloads against each (one server at a time, so they never compete for CPU),
and prints one table with loxo, moto and the loxo/moto ratio:

    python benchmarks/bench_s3.py                      # 1 GiB, 4000 x 4 KiB, 16 threads
    python benchmarks/bench_s3.py --only moto --size-mib 64 --small-count 500
    python benchmarks/bench_s3.py --json results.json

Workloads (per server):
  * large PUT: boto3 ``upload_file`` of a --size-mib random file with the
    aws-cli transfer defaults (8 MiB multipart threshold and parts, 10 threads);
  * large GET: ``download_file`` of the same object, then a byte-for-byte
    check (SHA-256 computed while the file was generated);
  * small PUT: --small-count objects of --small-kib KiB from --concurrency
    threads, each with its own boto3 client and distinct keys.

Measured: wall-clock throughput, server CPU seconds per phase (psutil, the
server process and its children, sampled every 50 ms), peak RSS of the server
process tree, client CPU seconds (getrusage of this process, all threads).
For loxo the PostgreSQL processes (embedded, or the backends of the
benchmark's database on an external server) are accounted separately.

Only the standard library, boto3/botocore and psutil are required; asyncpg
or psql are used (if available) to create a scratch database when a
PostgreSQL server answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import boto3
    import botocore
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:  # pragma: no cover
    sys.exit("bench_s3.py needs boto3 (pip install boto3)")
try:
    import psutil
except ImportError:  # pragma: no cover
    sys.exit("bench_s3.py needs psutil (pip install psutil)")

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = 8 * MIB
REGION = "us-east-1"
ACCESS_KEY = "loxobenchaccess"
SECRET_KEY = "loxobenchsecret0123456789abcdefghijklmn"
SAMPLE_INTERVAL = 0.05  # seconds between RSS/CPU samples
DISCOVER_EVERY = 10  # re-discover child processes every N samples
PG_PROCESS_NAMES = {"postgres", "postmaster", "pg_ctl", "initdb", "pg_ctl.exe", "postgres.exe"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# process accounting
# --------------------------------------------------------------------------


def _cpu_total(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


class ProcTracker:
    """Tracks peak RSS (sum over a set of processes) and cumulative CPU.

    ``discover`` returns the processes that currently belong to the set.  CPU
    is kept per (pid, create_time) with the last value seen, so processes
    that exit keep their contribution and processes that start mid-phase are
    counted from zero.  Short-lived processes that start and end between two
    discoveries (0.5 s) are missed.
    """

    def __init__(self, name: str, discover: Callable[[], list[psutil.Process]], pss: bool = False):
        self.name = name
        # PSS (proportional set size) splits shared pages between the processes
        # mapping them; used for postgres, whose backends all map shared_buffers.
        self.pss = pss
        self._discover = discover
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._cpu: dict[tuple[int, float], float] = {}
        self._lock = threading.Lock()
        self._n = 0
        self.peak_rss = 0
        self.phase_peak_rss = 0
        self.last_rss = 0
        self.seen_any = False

    def rediscover(self) -> None:
        try:
            procs = self._discover()
        except (psutil.Error, OSError):
            procs = []
        for p in procs:
            try:
                key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            self._procs.setdefault(key, p)

    def sample(self, force_discover: bool = False) -> None:
        with self._lock:
            if force_discover or self._n % DISCOVER_EVERY == 0:
                self.rediscover()
            self._n += 1
            rss = 0
            for key, p in list(self._procs.items()):
                try:
                    with p.oneshot():
                        self._cpu[key] = _cpu_total(p)
                        if self.pss:
                            try:
                                rss += p.memory_full_info().pss
                            except (psutil.AccessDenied, AttributeError):
                                rss += p.memory_info().rss
                        else:
                            rss += p.memory_info().rss
                except psutil.Error:
                    del self._procs[key]  # exited: keep its last CPU value
            if self._procs:
                self.seen_any = True
            self.last_rss = rss
            self.peak_rss = max(self.peak_rss, rss)
            self.phase_peak_rss = max(self.phase_peak_rss, rss)

    def cpu_seconds(self) -> float:
        with self._lock:
            return sum(self._cpu.values())

    def reset_phase_peak(self) -> None:
        with self._lock:
            self.phase_peak_rss = self.last_rss

    def alive(self) -> list[psutil.Process]:
        with self._lock:
            return list(self._procs.values())


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.trackers: list[ProcTracker] = []
        self._stop_evt = threading.Event()
        self._lock = threading.Lock()

    def add(self, t: ProcTracker) -> None:
        with self._lock:
            self.trackers.append(t)

    def run(self) -> None:
        while not self._stop_evt.wait(SAMPLE_INTERVAL):
            with self._lock:
                trackers = list(self.trackers)
            for t in trackers:
                t.sample()

    def stop(self) -> None:
        self._stop_evt.set()


def client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    return "\n".join(lines[-n:]) or "(empty)"


def s3_client(
    endpoint: str,
    *,
    pool: int = 10,
    attempts: int = 3,
    connect_timeout: float = 10,
    read_timeout: float = 300,
):
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            region_name=REGION,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts},
            max_pool_connections=pool,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    logdir: Path
    env: dict[str, str]
    cwd: Path | None = None
    data_dir: Path | None = None
    ready_line: str | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    startup_s: float | None = None
    server_tracker: ProcTracker | None = None
    pg_tracker: ProcTracker | None = None
    pg_note: str = ""
    _pg_postmaster: psutil.Process | None = None
    _ext_postmaster: psutil.Process | None = None
    ext_dbname: str | None = None
    _stdout = None
    _stderr = None
    notes: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def out_path(self) -> Path:
        return self.logdir / f"{self.name}.stdout.log"

    @property
    def err_path(self) -> Path:
        return self.logdir / f"{self.name}.stderr.log"

    def start(self) -> None:
        log(f"starting {self.name}: {shlex.join(self.cmd)}")
        self._stdout = open(self.out_path, "wb")  # noqa: SIM115 (closed in stop())
        self._stderr = open(self.err_path, "wb")  # noqa: SIM115
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,  # own process group: Ctrl-C hits only us; we stop it
        )
        root = psutil.Process(self.proc.pid)
        self.server_tracker = ProcTracker(f"{self.name}", lambda: self._server_procs(root))

    # -- process discovery ------------------------------------------------
    def _is_pg(self, p: psutil.Process) -> bool:
        try:
            if p.name() in PG_PROCESS_NAMES:
                return True
            pm = self._pg_postmaster
            if pm is not None:
                return p.pid == pm.pid or pm.pid in {a.pid for a in p.parents()}
        except psutil.Error:
            return False
        return False

    def _server_procs(self, root: psutil.Process) -> list[psutil.Process]:
        try:
            kids = root.children(recursive=True)
        except psutil.Error:
            return []
        return [root] + [k for k in kids if not self._is_pg(k)]

    def find_embedded_postmaster(self) -> psutil.Process | None:
        """The embedded PostgreSQL writes postmaster.pid into its data dir."""
        if self._pg_postmaster is not None or self.data_dir is None:
            return self._pg_postmaster
        base_depth = len(self.data_dir.parts)
        for dirpath, dirnames, filenames in os.walk(self.data_dir):
            depth = len(Path(dirpath).parts) - base_depth
            if depth >= 4:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if d not in ("chunks", "objects", "blobs")]
            if "postmaster.pid" in filenames:
                try:
                    pid = int((Path(dirpath) / "postmaster.pid").read_text().split()[0])
                    self._pg_postmaster = psutil.Process(pid)
                except (OSError, ValueError, IndexError, psutil.Error):
                    continue
                return self._pg_postmaster
        return None

    def _embedded_pg_procs(self) -> list[psutil.Process]:
        pm = self.find_embedded_postmaster()
        if pm is None:
            # No postmaster.pid under the data dir: fall back to postgres
            # processes that are descendants of the server.
            if self.proc is None:
                return []
            try:
                kids = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                return []
            out = []
            for k in kids:
                try:
                    if k.name() in PG_PROCESS_NAMES:
                        out.append(k)
                except psutil.Error:
                    pass
            return out
        try:
            return [pm, *pm.children(recursive=True)]
        except psutil.Error:
            return []

    def _external_pg_procs(self) -> list[psutil.Process]:
        pm, db = self._ext_postmaster, self.ext_dbname
        if pm is None or db is None:
            return []
        out = []
        try:
            kids = pm.children()
        except psutil.Error:
            return []
        for k in kids:
            try:
                # process title: "postgres: [cluster: ]<user> <db> <host>(<port>) <state>";
                # the scratch database name is unique, so a token match suffices.
                parts = " ".join(k.cmdline()).split()
            except psutil.Error:
                continue
            if db in parts:
                out.append(k)
        return out

    def setup_pg_tracking(self, sampler: Sampler, external: PgScratch | None) -> None:
        if external is not None:
            self.ext_dbname = external.dbname
            if external.postmaster_pid:
                with contextlib.suppress(psutil.Error):
                    self._ext_postmaster = psutil.Process(external.postmaster_pid)
            if self._ext_postmaster is not None:
                self.pg_tracker = ProcTracker(f"{self.name}-pg", self._external_pg_procs, pss=True)
                self.pg_note = (
                    "external PostgreSQL: backends of the bench database only "
                    "(shared checkpointer/WAL writer not counted)"
                )
            else:
                self.pg_note = "external PostgreSQL: not measured (postmaster pid unknown)"
        else:
            self.pg_tracker = ProcTracker(f"{self.name}-pg", self._embedded_pg_procs, pss=True)
            self.pg_note = "embedded PostgreSQL (postmaster + all its processes)"
        if self.pg_tracker is not None:
            self.pg_tracker.sample(force_discover=True)
            sampler.add(self.pg_tracker)

    # -- lifecycle --------------------------------------------------------
    def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        probe = s3_client(self.endpoint, attempts=1, connect_timeout=2, read_timeout=10)
        deadline = time.monotonic() + timeout
        last_err: Exception | str = "no attempt"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {rc} during startup\n"
                    f"--- {self.name} stderr (tail) ---\n{tail(self.err_path)}\n"
                    f"--- {self.name} stdout (tail) ---\n{tail(self.out_path)}"
                )
            if self.ready_line is None or self._saw_ready_line():
                try:
                    probe.list_buckets()
                    self.startup_s = time.monotonic() - self.started_at
                    log(f"{self.name} ready on {self.endpoint} after {self.startup_s:.1f}s")
                    return
                except Exception as e:  # connection refused, 5xx while starting, ...
                    last_err = e
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready after {timeout:.0f}s (last error: {last_err})\n"
            f"--- {self.name} stderr (tail) ---\n{tail(self.err_path)}\n"
            f"--- {self.name} stdout (tail) ---\n{tail(self.out_path)}"
        )

    def _saw_ready_line(self) -> bool:
        for p in (self.out_path, self.err_path):
            try:
                if self.ready_line in p.read_text(errors="replace"):
                    return True
            except OSError:
                pass
        return False

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} died (exit code {self.proc.returncode})\n"
                f"--- {self.name} stderr (tail) ---\n{tail(self.err_path)}"
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            # SIGINT first: it is the signal both servers handle gracefully
            # (loxo stops its embedded PostgreSQL on it), then SIGTERM and
            # SIGKILL to the process group we created for the server.
            for sig, wait, group in (
                (signal.SIGINT, 20, False),
                (signal.SIGTERM, 10, True),
                (signal.SIGKILL, 5, True),
            ):
                try:
                    if group:
                        os.killpg(proc.pid, sig)
                    else:
                        proc.send_signal(sig)
                except (ProcessLookupError, PermissionError):
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # Already dead: clean up whatever is left in its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        # An embedded postmaster started through pg_ctl runs in its own
        # session; it lives in our temp data dir, so stop it if loxo did not.
        pm = self._pg_postmaster
        if pm is not None:
            try:
                if pm.is_running() and pm.status() != psutil.STATUS_ZOMBIE:
                    log(f"stopping leftover embedded postgres pid {pm.pid}")
                    pm.send_signal(signal.SIGINT)  # fast shutdown
                    try:
                        pm.wait(10)
                    except psutil.TimeoutExpired:
                        pm.kill()
            except psutil.Error:
                pass
        for f in (self._stdout, self._stderr):
            if f is not None:
                f.close()
        self._stdout = self._stderr = None


# --------------------------------------------------------------------------
# external PostgreSQL scratch database
# --------------------------------------------------------------------------


@dataclass
class PgScratch:
    admin_url: str
    dbname: str
    url: str
    postmaster_pid: int | None = None
    method: str = ""

    @staticmethod
    def _with_db(url: str, db: str) -> str:
        u = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))

    @classmethod
    def create(cls, admin_url: str) -> PgScratch:
        db = f"loxo_bench_{os.getpid()}_{random.randrange(16**6):06x}"
        self = cls(admin_url=admin_url, dbname=db, url=cls._with_db(admin_url, db))
        errors = []
        try:
            import asyncpg  # noqa: F401

            self.postmaster_pid = self._asyncpg(f'CREATE DATABASE "{db}"', want_ppid=True)
            self.method = "asyncpg"
            return self
        except Exception as e:
            errors.append(f"asyncpg: {e}")
        psql = shutil.which("psql")
        if psql:
            r = subprocess.run(
                [psql, admin_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", f'CREATE DATABASE "{db}"'],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if r.returncode == 0:
                self.method = "psql"
                # The checkpointer is a long-lived child of the postmaster.
                q = subprocess.run(
                    [
                        psql,
                        admin_url,
                        "-qAt",
                        "-c",
                        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                with contextlib.suppress(ValueError, IndexError, psutil.Error):
                    self.postmaster_pid = psutil.Process(int(q.stdout.split()[0])).ppid()
                return self
            errors.append(f"psql: {r.stderr.strip()}")
        raise RuntimeError("cannot create scratch database: " + "; ".join(errors))

    def _asyncpg(self, sql: str, want_ppid: bool = False) -> int | None:
        import asyncio

        import asyncpg

        async def go() -> int | None:
            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                ppid = None
                if want_ppid:
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    try:
                        ppid = psutil.Process(pid).ppid()  # same host: the postmaster
                    except psutil.Error:
                        ppid = None
                await conn.execute(sql)
                return ppid
            finally:
                await conn.close()

        return asyncio.run(go())

    def drop(self) -> None:
        sqls = [
            f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{self.dbname}"',
        ]
        for sql in sqls:
            try:
                if self.method == "asyncpg":
                    self._asyncpg(sql)
                else:
                    r = subprocess.run(
                        [
                            shutil.which("psql") or "psql",
                            self.admin_url,
                            "-v",
                            "ON_ERROR_STOP=1",
                            "-qAt",
                            "-c",
                            sql,
                        ],
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    if r.returncode != 0:
                        raise RuntimeError(r.stderr.strip())
                return
            except Exception as e:
                err = e
        log(f"warning: could not drop database {self.dbname}: {err}")


# --------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------


def generate_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left > 0:
            block = os.urandom(min(BLOCK, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(BLOCK)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


@dataclass
class PhaseResult:
    name: str
    wall_s: float
    server_cpu_s: float
    pg_cpu_s: float | None
    client_cpu_s: float
    server_peak_rss: int
    pg_peak_rss: int | None
    extra: dict = field(default_factory=dict)


def run_phase(server: Server, name: str, fn: Callable[[], dict]) -> PhaseResult:
    st, pt = server.server_tracker, server.pg_tracker
    assert st is not None
    server.check_alive()
    for t in (st, pt):
        if t is not None:
            t.sample(force_discover=True)
            t.reset_phase_peak()
    s0 = st.cpu_seconds()
    p0 = pt.cpu_seconds() if pt else None
    c0 = client_cpu()
    t0 = time.perf_counter()
    extra = fn()
    wall = time.perf_counter() - t0
    c1 = client_cpu()
    for t in (st, pt):
        if t is not None:
            t.sample(force_discover=True)
    res = PhaseResult(
        name=name,
        wall_s=wall,
        server_cpu_s=st.cpu_seconds() - s0,
        pg_cpu_s=(pt.cpu_seconds() - p0) if pt and p0 is not None else None,
        client_cpu_s=c1 - c0,
        server_peak_rss=st.phase_peak_rss,
        pg_peak_rss=pt.phase_peak_rss if pt else None,
        extra=extra or {},
    )
    server.check_alive()
    return res


def transfer_config() -> TransferConfig:
    kw = dict(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=10)
    try:
        return TransferConfig(preferred_transfer_client="classic", **kw)
    except TypeError:  # older boto3
        return TransferConfig(**kw)


def small_put_workload(
    endpoint: str, bucket: str, count: int, size: int, concurrency: int, deadline_s: float
) -> Callable[[], dict]:
    """Build clients (not timed), return the timed part."""
    clients = [s3_client(endpoint, pool=2) for _ in range(concurrency)]
    for c in clients:  # warm up connection + credential resolution
        c.head_bucket(Bucket=bucket)
    # Distinct random payloads so content-addressed servers cannot dedup them.
    payload_pool = [os.urandom(size) for _ in range(min(count, max(1, 256 * MIB // size)))]
    next_i = iter(range(count))
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    retries = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def worker(w: int) -> None:
        c = clients[w]
        start.wait()
        while True:
            with lock:
                i = next(next_i, None)
            if i is None:
                return
            body = payload_pool[i % len(payload_pool)]
            if i >= len(payload_pool):
                body = os.urandom(size)
            key = f"small/w{w:02d}/{i:07d}"
            t = time.perf_counter()
            try:
                r = c.put_object(Bucket=bucket, Key=key, Body=body)
                retries[w] += r.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                latencies[w].append(time.perf_counter() - t)
            except Exception as e:
                if isinstance(e, ClientError):
                    meta = e.response.get("ResponseMetadata", {})
                    retries[w] += meta.get("RetryAttempts", 0)
                with lock:
                    errors.append(f"{key}: {e}")

    threads = [
        threading.Thread(target=worker, args=(w,), daemon=True, name=f"small-{w}")
        for w in range(concurrency)
    ]
    for th in threads:
        th.start()

    def timed() -> dict:
        start.wait()
        end = time.monotonic() + deadline_s
        for th in threads:
            th.join(max(0.0, end - time.monotonic()))
        if any(th.is_alive() for th in threads):
            raise RuntimeError(f"small PUT phase did not finish within {deadline_s:.0f}s")
        lat = sorted(x for lst in latencies for x in lst)
        return {
            "ok": len(lat),
            "errors": len(errors),
            "error_samples": errors[:5],
            "retries": sum(retries),
            "lat_p50_ms": 1000 * statistics.median(lat) if lat else None,
            "lat_p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "lat_max_ms": 1000 * lat[-1] if lat else None,
        }

    return timed


def bench_server(
    server: Server,
    bucket: str,
    src: Path,
    src_hash: str,
    size: int,
    args: argparse.Namespace,
    workdir: Path,
) -> dict:
    out: dict = {
        "endpoint": server.endpoint,
        "bucket": bucket,
        "startup_s": server.startup_s,
        "pg_note": server.pg_note,
        "phases": {},
        "errors": [],
    }
    s3 = s3_client(server.endpoint)
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in (
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        ):
            raise
    s3.head_bucket(Bucket=bucket)
    cfg = transfer_config()

    if not src.exists():
        raise RuntimeError(f"source file {src} disappeared (was the workdir cleaned up?)")

    # ---- large PUT --------------------------------------------------------
    log(f"{server.name}: PUT {size / MIB:.0f} MiB (upload_file)")

    def put_large() -> dict:
        s3.upload_file(str(src), bucket, "large.bin", Config=cfg)
        return {}

    r = run_phase(server, "large_put", put_large)
    head = s3.head_object(Bucket=bucket, Key="large.bin")
    if head["ContentLength"] != size:
        raise RuntimeError(f"{server.name}: stored size {head['ContentLength']} != {size}")
    r.extra["etag"] = head.get("ETag")
    out["phases"]["large_put"] = r.__dict__
    log(f"{server.name}: PUT done in {r.wall_s:.2f}s ({size / MIB / r.wall_s:.1f} MiB/s)")

    # ---- large GET --------------------------------------------------------
    dst = workdir / f"download-{server.name}.bin"
    log(f"{server.name}: GET {size / MIB:.0f} MiB (download_file)")

    def get_large() -> dict:
        s3.download_file(bucket, "large.bin", str(dst), Config=cfg)
        return {}

    r = run_phase(server, "large_get", get_large)
    got_hash, got_size = sha256_file(dst)
    dst.unlink()
    r.extra.update(verified=(got_hash == src_hash and got_size == size), sha256=got_hash)
    out["phases"]["large_get"] = r.__dict__
    log(
        f"{server.name}: GET done in {r.wall_s:.2f}s ({size / MIB / r.wall_s:.1f} MiB/s), "
        f"verified={r.extra['verified']}"
    )
    if not r.extra["verified"]:
        out["errors"].append(f"download mismatch: {got_size} bytes sha256 {got_hash} != {src_hash}")

    # ---- small PUTs -------------------------------------------------------
    log(
        f"{server.name}: PUT {args.small_count} x {args.small_kib} KiB "
        f"from {args.concurrency} threads"
    )
    timed = small_put_workload(
        server.endpoint,
        bucket,
        args.small_count,
        args.small_kib * 1024,
        args.concurrency,
        args.phase_timeout,
    )
    r = run_phase(server, "small_put", timed)
    out["phases"]["small_put"] = r.__dict__
    ok = r.extra["ok"]
    log(
        f"{server.name}: small PUT done in {r.wall_s:.2f}s ({ok / r.wall_s:.0f} ops/s, "
        f"{r.extra['errors']} errors, {r.extra['retries']} retries)"
    )
    if r.extra["errors"]:
        out["server_stderr_tail"] = tail(server.err_path, 60)
        log(
            f"{server.name}: {r.extra['errors']} small PUTs failed; server stderr (tail):\n"
            + tail(server.err_path, 20)
        )
        out["errors"].append(
            f"small PUT: {r.extra['errors']} failed, e.g. {r.extra['error_samples'][:2]}"
        )

    st, pt = server.server_tracker, server.pg_tracker
    out["peak_rss_bytes"] = st.peak_rss if st else None
    out["pg_peak_rss_bytes"] = pt.peak_rss if pt and pt.seen_any else None
    return out


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def derive(res: dict, size: int) -> dict[str, float | None]:
    """Flatten one server's results into the numbers shown in the table."""
    ph = res.get("phases", {})
    gib = size / GIB
    d: dict[str, float | None] = {}

    def g(phase, key):
        return ph.get(phase, {}).get(key)

    for phase, label in (("large_put", "put"), ("large_get", "get")):
        if phase in ph:
            d[f"{label}_mibs"] = size / MIB / g(phase, "wall_s")
            d[f"{label}_srv_cpu_per_gib"] = g(phase, "server_cpu_s") / gib
            pg = g(phase, "pg_cpu_s")
            d[f"{label}_pg_cpu_per_gib"] = pg / gib if pg is not None else None
            d[f"{label}_cli_cpu_per_gib"] = g(phase, "client_cpu_s") / gib
    if "small_put" in ph:
        ok = ph["small_put"]["extra"]["ok"]
        wall = g("small_put", "wall_s")
        k = ok / 1000 if ok else None
        d["small_ops"] = ok / wall if wall else None
        d["small_p50_ms"] = ph["small_put"]["extra"]["lat_p50_ms"]
        d["small_p99_ms"] = ph["small_put"]["extra"]["lat_p99_ms"]
        d["small_srv_cpu_per_kop"] = g("small_put", "server_cpu_s") / k if k else None
        pg = g("small_put", "pg_cpu_s")
        d["small_pg_cpu_per_kop"] = pg / k if (pg is not None and k) else None
        d["small_cli_cpu_per_kop"] = g("small_put", "client_cpu_s") / k if k else None
    d["peak_rss_mib"] = res["peak_rss_bytes"] / MIB if res.get("peak_rss_bytes") else None
    d["pg_peak_rss_mib"] = res["pg_peak_rss_bytes"] / MIB if res.get("pg_peak_rss_bytes") else None
    d["startup_s"] = res.get("startup_s")
    return d


def render_table(results: dict, args: argparse.Namespace, size: int) -> str:
    names = ["loxo", "moto"]
    der = {
        n: derive(results[n], size) if n in results and "phases" in results[n] else {}
        for n in names
    }
    sz = f"{size / MIB:g} MiB"
    sk = f"{args.small_count}x{args.small_kib} KiB, {args.concurrency} thr"
    H, L = "higher", "lower"
    rows = [
        (f"PUT {sz} upload_file  [MiB/s]", "put_mibs", H, 1),
        (f"GET {sz} download_file [MiB/s]", "get_mibs", H, 1),
        (f"PUT {sk}  [ops/s]", "small_ops", H, 0),
        ("  small PUT latency p50 [ms]", "small_p50_ms", L, 1),
        ("  small PUT latency p99 [ms]", "small_p99_ms", L, 1),
        ("server CPU, large PUT [s/GiB]", "put_srv_cpu_per_gib", L, 2),
        ("server CPU, large GET [s/GiB]", "get_srv_cpu_per_gib", L, 2),
        ("server CPU, small PUT [s/1k ops]", "small_srv_cpu_per_kop", L, 2),
        ("postgres CPU, large PUT [s/GiB]", "put_pg_cpu_per_gib", L, 2),
        ("postgres CPU, large GET [s/GiB]", "get_pg_cpu_per_gib", L, 2),
        ("postgres CPU, small PUT [s/1k ops]", "small_pg_cpu_per_kop", L, 2),
        ("client CPU, large PUT [s/GiB]", "put_cli_cpu_per_gib", L, 2),
        ("client CPU, large GET [s/GiB]", "get_cli_cpu_per_gib", L, 2),
        ("client CPU, small PUT [s/1k ops]", "small_cli_cpu_per_kop", L, 2),
        ("peak RSS, server process tree [MiB]", "peak_rss_mib", L, 0),
        ("peak PSS, postgres processes [MiB]", "pg_peak_rss_mib", L, 0),
        ("startup until ready [s]", "startup_s", L, 1),
    ]

    def cell(n, key, prec):
        if n not in results:
            return "-"
        if "error" in results[n] and not der[n]:
            return "ERR"
        v = der[n].get(key)
        return "-" if v is None else f"{v:,.{prec}f}"

    table = [("workload", "loxo", "moto", "loxo/moto", "better")]
    for label, key, better, prec in rows:
        a, b = der["loxo"].get(key), der["moto"].get(key)
        if a is None and b is None and not any("error" in r for r in results.values()):
            continue  # e.g. postgres rows in a moto-only run
        ratio = f"{a / b:.2f}x" if (a is not None and b) else "-"
        table.append((label, cell("loxo", key, prec), cell("moto", key, prec), ratio, better))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = []
    for j, r in enumerate(table):
        lines.append(
            "  ".join(
                r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(r))
            ).rstrip()
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = []
    for n in names:
        res = results.get(n)
        if not res:
            continue
        if res.get("pg_note"):
            notes.append(f"{n}: {res['pg_note']}")
        for e in res.get("errors", []):
            notes.append(f"{n}: ERROR {e}")
        if "error" in res:
            notes.append(f"{n}: FAILED: {res['error'].splitlines()[0]}")
        ph = res.get("phases", {})
        if "large_get" in ph:
            notes.append(
                f"{n}: download verified byte-identical: {ph['large_get']['extra']['verified']}"
            )
        if "small_put" in ph and ph["small_put"]["extra"]["retries"]:
            notes.append(f"{n}: small PUT needed {ph['small_put']['extra']['retries']} retries")
    notes.append("ratio = loxo/moto; 'better' says whether a higher or lower ratio favours loxo.")
    notes.append(
        "server memory = sum of RSS over the server's processes; postgres memory = sum of "
        "PSS (shared_buffers split between backends)."
    )
    return "\n".join(lines) + "\n\n" + "\n".join("  * " + n for n in notes)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def default_workdir_parent() -> Path:
    """A temp dir on the same filesystem as the repo (never tmpfs/dev/shm)."""
    repo_dev = os.stat(REPO_ROOT).st_dev
    tmp = Path(tempfile.gettempdir())
    try:
        if os.stat(tmp).st_dev == repo_dev and not str(tmp).startswith("/dev/shm"):
            return tmp
    except OSError:
        pass
    for cand in (REPO_ROOT.parent, REPO_ROOT):
        if os.access(cand, os.W_OK):
            return cand
    return tmp


def find_exe(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    if local.exists() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def loxo_command(args: argparse.Namespace) -> list[str]:
    if args.loxo_cmd:
        return shlex.split(args.loxo_cmd)
    exe = find_exe("loxo")
    if exe:
        return [exe]
    return [sys.executable, "-m", "gateway.cli"]


def moto_command(args: argparse.Namespace, port: int) -> list[str]:
    exe = find_exe("moto_server")
    base = [exe] if exe else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--size-mib", type=int, default=1024, help="size of the large object")
    p.add_argument("--small-count", type=int, default=4000, help="number of small objects")
    p.add_argument("--small-kib", type=int, default=4, help="size of each small object")
    p.add_argument("--concurrency", type=int, default=16, help="client threads for small PUTs")
    p.add_argument("--only", choices=["loxo", "moto"], help="benchmark only one server")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent for the scratch dir (default: a temp dir on the repo's disk)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="do not delete the scratch dir")
    p.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    p.add_argument(
        "--loxo-cmd",
        help="command that runs loxo (default: loxo on PATH, "
        "else python -m gateway.cli from the repo)",
    )
    p.add_argument("--loxo-bucket", default="bench", help="bucket (repo[.branch]) for loxo")
    p.add_argument("--loxo-store", help="value for loxo --store (default: loxo's default)")
    p.add_argument(
        "--loxo-arg",
        action="append",
        default=[],
        help="extra argument passed to 'loxo serve' (repeatable)",
    )
    p.add_argument("--database-url", help="use this (existing, empty) database for loxo")
    p.add_argument(
        "--pg-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL used to create a scratch database when PostgreSQL answers",
    )
    p.add_argument(
        "--embedded-pg",
        action="store_true",
        help="never use an external PostgreSQL; let loxo start its embedded one",
    )
    p.add_argument("--startup-timeout", type=float, default=180, help="seconds")
    p.add_argument("--phase-timeout", type=float, default=3600, help="seconds per small phase")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size_mib * MIB
    which = [args.only] if args.only else ["loxo", "moto"]

    # SIGTERM -> SystemExit so the finally blocks below stop the servers.
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))

    parent = args.workdir or default_workdir_parent()
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="loxo-bench-", dir=parent))
    log(f"workdir {workdir}")
    servers: dict[str, Server] = {}
    scratch: PgScratch | None = None
    sampler = Sampler()
    results: dict[str, dict] = {}
    cleaned = False

    def cleanup() -> None:
        nonlocal cleaned
        if cleaned:
            return
        cleaned = True
        sampler.stop()
        for s in servers.values():
            try:
                s.stop()
            except Exception as e:
                log(f"warning: stopping {s.name}: {e}")
        if scratch is not None:
            scratch.drop()
        if args.keep_workdir:
            log(f"kept workdir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    try:
        env = dict(os.environ)
        env.update(
            LOXO_ACCESS_KEY=ACCESS_KEY,
            LOXO_SECRET_KEY=SECRET_KEY,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            PYTHONUNBUFFERED="1",
        )

        if "loxo" in which:
            data_dir = workdir / "loxo-data"
            data_dir.mkdir()
            port = free_port()
            cmd = [
                *loxo_command(args),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir),
            ]
            db_url = args.database_url
            if not db_url and not args.embedded_pg:
                u = urllib.parse.urlsplit(args.pg_admin_url)
                if port_open(u.hostname or "127.0.0.1", u.port or 5432):
                    try:
                        scratch = PgScratch.create(args.pg_admin_url)
                        db_url = scratch.url
                        log(
                            f"using external PostgreSQL, scratch database {scratch.dbname} "
                            f"(via {scratch.method})"
                        )
                    except Exception as e:
                        log(f"warning: {e}; falling back to loxo's embedded PostgreSQL")
                else:
                    log(
                        "no PostgreSQL on "
                        f"{u.hostname}:{u.port or 5432}; loxo will start its embedded one"
                    )
            if db_url:
                cmd += ["--database-url", db_url]
            if args.loxo_store:
                cmd += ["--store", args.loxo_store]
            cmd += args.loxo_arg
            env_loxo = dict(env)
            env_loxo["PYTHONPATH"] = os.pathsep.join(
                [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
            )
            servers["loxo"] = Server(
                "loxo",
                cmd,
                port,
                workdir,
                env_loxo,
                cwd=REPO_ROOT,
                data_dir=data_dir,
                ready_line="listening on http://",
            )
        if "moto" in which:
            port = free_port()
            servers["moto"] = Server("moto", moto_command(args, port), port, workdir, env)

        # Generate the file first, then start the servers one at a time, so
        # neither the generation nor the other server's boot skews the startup
        # time; both then stay up side by side for the whole run.
        log(f"generating {size / MIB:.0f} MiB random file")
        src = workdir / "large.bin"
        t = time.perf_counter()
        src_hash = generate_file(src, size)
        log(f"generated in {time.perf_counter() - t:.1f}s, sha256 {src_hash[:16]}...")

        for s in servers.values():
            try:
                s.start()
                s.wait_ready(args.startup_timeout)
            except Exception as e:
                log(str(e))
                results[s.name] = {"error": str(e)}
                continue
            assert s.server_tracker is not None
            s.server_tracker.sample(force_discover=True)
            sampler.add(s.server_tracker)
            if s.name == "loxo":
                s.setup_pg_tracking(sampler, scratch)
        sampler.start()

        for name, s in servers.items():
            if name in results:  # failed to start
                continue
            bucket = args.loxo_bucket if name == "loxo" else "bench"
            try:
                results[name] = bench_server(s, bucket, src, src_hash, size, args, workdir)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                msg = f"{type(e).__name__}: {e}"
                if s.proc is not None and s.proc.poll() is not None:
                    msg += f"\n--- {name} stderr (tail) ---\n{tail(s.err_path)}"
                log(f"{name} benchmark failed: {msg}")
                results[name] = {"error": msg}
        src.unlink(missing_ok=True)

        table = render_table(results, args, size)
        print()
        print(
            f"loxo vs moto S3 benchmark  ({platform.node()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, boto3 {boto3.__version__})"
        )
        print(table)

        if args.json:
            doc = {
                "config": {
                    "size_mib": args.size_mib,
                    "small_count": args.small_count,
                    "small_kib": args.small_kib,
                    "concurrency": args.concurrency,
                    "only": args.only,
                    "transfer": {
                        "multipart_threshold": 8 * MIB,
                        "multipart_chunksize": 8 * MIB,
                        "max_concurrency": 10,
                    },
                    "sample_interval_s": SAMPLE_INTERVAL,
                },
                "environment": {
                    "host": platform.node(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "boto3": boto3.__version__,
                    "botocore": botocore.__version__,
                    "psutil": psutil.__version__,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                "commands": {n: s.cmd for n, s in servers.items()},
                "results": results,
                "derived": {n: derive(r, size) for n, r in results.items() if "phases" in r},
            }
            # Do not leak scratch-db URLs with passwords into the JSON.
            for n, c in doc["commands"].items():
                doc["commands"][n] = [_redact(x) for x in c]
            args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
            log(f"wrote {args.json}")

        failed = [
            n for n in which if "error" in results.get(n, {"error": 1}) or results[n].get("errors")
        ]
        return 1 if failed else 0
    except KeyboardInterrupt:
        log("interrupted; stopping servers")
        return 130
    finally:
        cleanup()


def _redact(s: str) -> str:
    if s.startswith(("postgresql://", "postgres://")):
        u = urllib.parse.urlsplit(s)
        if u.password:
            netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
            return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))
    return s


if __name__ == "__main__":
    sys.exit(main())
