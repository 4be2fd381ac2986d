#!/usr/bin/env python3
"""Several gateways on one database: aggregate small-PUT throughput of 1 vs N
`loxo serve` processes sharing one PostgreSQL and one data dir
(docs/design/multi-gateway.md).

For each gateway count, a fresh scratch database and data dir are made, the
gateways are started on free loopback ports, and client processes (each with
a few threads, one boto3 client per thread) PUT --kib objects, the clients
spread round-robin over the gateways. Two workloads:

  one branch   every client writes to the same bucket: every commit races for
               one branch head (compare-and-set in PostgreSQL; a gateway that
               loses rebases and retries);
  own bucket   each client thread writes to a bucket (repo) of its own: no
               branch head is shared, only the database and the disk are.

After each run the commits are counted in the database: exactly one per
acknowledged PUT. Prints one table, with the N/1 ratio of each workload:

    python benchmarks/bench_gateways.py                      # 1 vs 3, 4000 x 4 KiB
    python benchmarks/bench_gateways.py --gateways 1,2,3 --count 2000 --procs 3 --threads 8
    python benchmarks/bench_gateways.py --repeat 3           # median of 3 runs each

With --repeat, the runs alternate between the gateway counts (1, 3, 1, 3,
...), so a machine whose load drifts (other work on it) favours neither, and
each row is the run with the median rate.

Client processes, gateways and PostgreSQL share the machine's cores: on a
small machine the clients take a good part of the CPU, and more gateways
cannot add cores. The table says how many there were.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_s3 as b  # noqa: E402  (server start/stop, scratch database, clients)

log = b.log


@dataclass
class Outcome:
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    commits: int


def client_process(
    endpoints: list[str],
    buckets: list[str],
    first_client: int,
    threads: int,
    puts: int,
    size: int,
    start_at: float,
    out: Any,
) -> None:
    """One client process: `threads` threads, client number c writing `puts`
    objects to buckets[c % len(buckets)] through endpoints[c % len(endpoints)]."""
    # Die with the bench, whatever it was told (the parent cleans up).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    clients = []
    for t in range(threads):
        c = first_client + t
        client = b.s3_client(endpoints[c % len(endpoints)], pool=2)
        client.head_bucket(Bucket=buckets[c % len(buckets)])  # warm the connection
        clients.append((c, client))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(c: int, client: Any) -> None:
        bucket = buckets[c % len(buckets)]
        mine: list[float] = []
        wrong: list[str] = []
        for i in range(puts):
            body = os.urandom(size)  # distinct bodies: nothing deduplicates
            t = time.perf_counter()
            try:
                client.put_object(Bucket=bucket, Key=f"c{c:03d}/{i:06d}", Body=body)
                mine.append(time.perf_counter() - t)
            except Exception as exc:  # counted and reported, not fatal
                wrong.append(f"{type(exc).__name__}: {exc}")
        with lock:
            latencies.extend(mine)
            errors.extend(wrong)

    pool = [threading.Thread(target=worker, args=pair) for pair in clients]
    time.sleep(max(0.0, start_at - time.time()))
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    out.put((latencies, errors[:5], len(errors), time.time()))


def count_commits(url: str, repos: list[str]) -> int:
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM commits WHERE repo = ANY($1::text[])", repos
                )
            )
        finally:
            await conn.close()

    return asyncio.run(go())


def run_once(args: argparse.Namespace, gateways: int, workload: str, work: Path) -> Outcome:
    scratch = b.PgScratch.create(args.pg_admin_url)
    data = work / f"data-{gateways}-{workload}"
    servers: list[b.Server] = []
    code = args.code or b.REPO_ROOT
    env = dict(
        os.environ,
        PYTHONPATH=str(code),
        LOXO_ACCESS_KEY=b.ACCESS_KEY,
        LOXO_SECRET_KEY=b.SECRET_KEY,
    )
    try:
        for n in range(gateways):
            port = b.free_port()
            cmd = [sys.executable, "-m", "gateway.cli", "serve", "--listen", f"127.0.0.1:{port}"]
            cmd += ["--data-dir", str(data), "--database-url", scratch.url, "--workers", "0"]
            cmd += list(args.loxo_arg)
            server = b.Server(
                f"loxo-{gateways}gw-{workload}-{n}",
                cmd,
                port,
                work,
                env,
                cwd=code,
                data_dir=data,
                ready_line="listening on http://",
            )
            server.start()
            servers.append(server)
        for server in servers:
            server.wait_ready(120)
        endpoints = [s.endpoint for s in servers]
        clients = args.procs * args.threads
        tag = uuid.uuid4().hex[:6]
        if workload == "one branch":
            buckets = [f"bench-{tag}"]
        else:
            buckets = [f"bench-{tag}-{c:03d}" for c in range(clients)]
        setup = b.s3_client(endpoints[0])
        for bucket in buckets:
            setup.create_bucket(Bucket=bucket)
        per_client = max(1, args.count // clients)
        queue: Any = multiprocessing.get_context("fork").Queue()
        start_at = time.time() + 3.0 + 0.3 * clients  # every client warmed up by then
        procs = [
            multiprocessing.get_context("fork").Process(
                target=client_process,
                args=(
                    endpoints,
                    buckets,
                    p * args.threads,
                    args.threads,
                    per_client,
                    args.kib * 1024,
                    start_at,
                    queue,
                ),
                daemon=True,
            )
            for p in range(args.procs)
        ]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=args.timeout) for _ in procs]
        for proc in procs:
            proc.join(30)
        for server in servers:
            server.check_alive()
        latencies = sorted(x for r in results for x in r[0])
        failed = sum(r[2] for r in results)
        for r in results:
            for sample in r[1]:
                log(f"error sample: {sample}")
        seconds = max(r[3] for r in results) - start_at
        commits = count_commits(scratch.url, buckets)
        return Outcome(
            ok=len(latencies),
            errors=failed,
            seconds=seconds,
            p50_ms=1000 * statistics.median(latencies) if latencies else 0.0,
            p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            if latencies
            else 0.0,
            commits=commits,
        )
    finally:
        for server in servers:
            server.stop()
        scratch.drop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateways", default="1,3", help="gateway counts to compare (first: base)")
    p.add_argument("--count", type=int, default=4000, help="PUTs per run (split over clients)")
    p.add_argument("--kib", type=int, default=4, help="object size (KiB)")
    p.add_argument("--procs", type=int, default=3, help="client processes")
    p.add_argument("--threads", type=int, default=8, help="threads (boto3 clients) per process")
    p.add_argument(
        "--workloads", default="one branch,own bucket", help="comma-separated, of the two"
    )
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=900, help="seconds per run, at most")
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration")
    p.add_argument(
        "--code", type=Path, default=None, help="run loxo from this checkout (default: this one)"
    )
    p.add_argument("--loxo-arg", action="append", default=[], help="more `loxo serve` options")
    args = p.parse_args()
    # SIGTERM -> SystemExit, so the finally blocks stop the servers and drop
    # the scratch databases.
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    counts = [int(x) for x in args.gateways.split(",")]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    work = Path(tempfile.mkdtemp(prefix="loxo-bench-gateways-", dir=args.workdir))
    runs: dict[tuple[str, int], list[Outcome]] = {}
    try:
        for workload in workloads:
            for n in range(args.repeat):
                for gateways in counts:
                    log(f"{workload}: {gateways} gateway(s), run {n + 1} of {args.repeat}")
                    outcome = run_once(args, gateways, workload, work)
                    log(f"  {outcome.ok / outcome.seconds:.0f} PUT/s")
                    runs.setdefault((workload, gateways), []).append(outcome)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Each configuration's run with the median rate.
    results = {
        key: sorted(found, key=lambda r: r.ok / r.seconds)[len(found) // 2]
        for key, found in runs.items()
    }

    clients = args.procs * args.threads
    puts = clients * max(1, args.count // clients)
    print()
    print(
        f"{puts} PUTs of {args.kib} KiB per run, {clients} clients "
        f"({args.procs} processes x {args.threads} threads) spread round-robin over the "
        f"gateways; one PostgreSQL; {os.cpu_count()} CPUs for everything; "
        f"median of {args.repeat} run(s)"
    )
    print()
    print("| workload | gateways | PUT/s | p50 ms | p99 ms | errors | commits | vs 1 gateway |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for workload in workloads:
        base = results[(workload, counts[0])]
        for gateways in counts:
            r = results[(workload, gateways)]
            rate = r.ok / r.seconds if r.seconds > 0 else 0.0
            base_rate = base.ok / base.seconds if base.seconds > 0 else 0.0
            ratio = rate / base_rate if base_rate else 0.0
            print(
                f"| {workload} | {gateways} | {rate:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
                f"| {r.errors} | {r.commits} | {ratio:.2f}x |"
            )
            failed |= r.errors > 0 or r.commits != r.ok
    if failed:
        print("\nFAILED: some PUTs failed, or the commits do not match the acknowledged PUTs")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
