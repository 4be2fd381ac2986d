#!/usr/bin/env python3
"""The control plane and the CLI, side by side with the tools users compare
them to, against one loxo server (one tool at a time):

  C1  put a directory of N small files: `loxo put DIR` (ONE commit, through an
      open commit) vs `aws s3 sync DIR` (one commit per file);
  C2  get the folder back: `loxo get` vs `aws s3 sync` down;
  C3  diff two commits of an M-file tree that differ in K paths: the control
      API's diff (all pages, via the Python client) vs `git diff
      --name-status` of the same two trees in a local git repository;
  C4  log of 1,000 commits (all pages) vs `git log --oneline` of as many.

    python benchmarks/bench_control.py                  # N=2000, M=20000, K=1000
    python benchmarks/bench_control.py --files 500 --tree 5000 --changed 200

Ratios are loxo/peer of wall-clock time: below 1 is faster than the peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import bench_s3 as b  # noqa: E402

from gateway.client import Client  # noqa: E402


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {done.stderr[-2000:]}")
    return done.stdout


def make_files(root: Path, count: int, size: int) -> None:
    for i in range(count):
        path = root / f"d{i % 20:02d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=2000, help="C1/C2: files in the directory")
    p.add_argument("--file-kib", type=int, default=4)
    p.add_argument("--tree", type=int, default=20000, help="C3: paths in each tree")
    p.add_argument("--changed", type=int, default=1000, help="C3: paths that differ")
    p.add_argument("--commits", type=int, default=1000, help="C4: commits in the log")
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loxo-bench-control-", dir=args.workdir))
    aws = shutil.which("aws") or "/usr/bin/aws"
    git = shutil.which("git")
    if not os.access(aws, os.X_OK) or git is None:
        raise SystemExit("needs the aws CLI and git")
    scratch = b.PgScratch.create(args.pg_admin_url)
    port = b.free_port()
    env = dict(os.environ, PYTHONPATH=str(b.REPO_ROOT))
    loxo = [sys.executable, "-m", "gateway.cli"]
    git_commit = [git, "-c", "user.name=b", "-c", "user.email=b@b", "commit"]
    cmd = [*loxo, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data")]
    cmd += ["--database-url", scratch.url]
    server = b.Server(
        "loxo",
        cmd,
        port,
        work,
        env,
        cwd=b.REPO_ROOT,
        data_dir=work / "data",
        ready_line="listening on http://",
    )
    client_env = {k: v for k, v in os.environ.items() if not k.startswith(("LOXO_", "AWS_"))}
    client_env.update(
        LOXO_ENDPOINT=server.endpoint,
        LOXO_ACCESS_KEY=b.ACCESS_KEY,
        LOXO_SECRET_KEY=b.SECRET_KEY,
        LOXO_CONFIG=str(work / "cfg.json"),
        AWS_ACCESS_KEY_ID=b.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=b.SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=str(b.REPO_ROOT),
    )
    server.env = dict(env, LOXO_ACCESS_KEY=b.ACCESS_KEY, LOXO_SECRET_KEY=b.SECRET_KEY)
    rows: list[tuple[str, str, float, str, float]] = []
    server.start()
    try:
        server.wait_ready(120)
        api = Client(server.endpoint, b.ACCESS_KEY, b.SECRET_KEY)
        repo = f"bench-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo)
        src = work / "files"
        make_files(src, args.files, args.file_kib * 1024)
        ep = ["--endpoint-url", server.endpoint]

        t_put, _ = timed(
            lambda: run([*loxo, "put", "-q", str(src), f"{repo}@main:put"], client_env)
        )
        t_sync, _ = timed(
            lambda: run(
                [aws, *ep, "s3", "sync", "--no-progress", str(src), f"s3://{repo}/sync"], client_env
            )
        )
        rows.append(
            (
                f"C1 put {args.files} x {args.file_kib} KiB",
                "loxo put (1 commit)",
                t_put,
                f"aws s3 sync ({args.files} commits)",
                t_sync,
            )
        )
        t_get, _ = timed(
            lambda: run([*loxo, "get", "-q", f"{repo}@main:put", str(work / "g1")], client_env)
        )
        t_down, _ = timed(
            lambda: run(
                [aws, *ep, "s3", "sync", "--no-progress", f"s3://{repo}/put", str(work / "g2")],
                client_env,
            )
        )
        rows.append((f"C2 get {args.files} files", "loxo get", t_get, "aws s3 sync down", t_down))

        # C3: two trees differing in K paths, in loxo (via open commits) and git.
        s3 = b.s3_client(server.endpoint, pool=32)
        tree_repo = f"tree-{uuid.uuid4().hex[:6]}"
        api.create_repo(tree_repo)
        gitdir = work / "git"
        gitdir.mkdir()
        run([git, "init", "-q"], client_env, gitdir)

        def write_version(version: int, paths: list[str]) -> str:
            opened = api.start_commit(tree_repo)

            def one(path: str) -> None:
                body = f"{path} v{version}\n".encode()
                s3.put_object(Bucket=opened.bucket, Key=path, Body=body)
                target = gitdir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, paths))
            commit = api.finish_commit(tree_repo, opened.id, f"v{version}")
            run([git, "add", "-A"], client_env, gitdir)
            run([*git_commit, "-qm", f"v{version}"], client_env, gitdir)
            assert commit is not None
            return commit

        paths = [f"p{i % 100:02d}/item-{i:07d}.txt" for i in range(args.tree)]
        first = write_version(1, paths)
        second = write_version(2, paths[:: max(1, args.tree // args.changed)][: args.changed])
        t_diff, n = timed(lambda: sum(1 for _ in api.diff(tree_repo, first, second)))
        t_git, out = timed(
            lambda: run([git, "diff", "--name-status", "HEAD~1", "HEAD"], client_env, gitdir)
        )
        assert n == args.changed == len(out.splitlines()), (n, len(out.splitlines()))
        rows.append(
            (
                f"C3 diff {args.changed} of {args.tree} paths",
                "API diff",
                t_diff,
                "git diff --name-status",
                t_git,
            )
        )

        # C4: a log of many commits.
        log_repo = f"log-{uuid.uuid4().hex[:6]}"
        api.create_repo(log_repo)
        logdir = work / "gitlog"
        logdir.mkdir()
        run([git, "init", "-q"], client_env, logdir)
        for i in range(args.commits):
            s3.put_object(Bucket=log_repo, Key="counter.txt", Body=str(i).encode())
        for i in range(args.commits):
            run([*git_commit, "--allow-empty", "-qm", f"c{i}"], client_env, logdir)
        t_log, count = timed(lambda: sum(1 for _ in api.log(log_repo)))
        t_glog, out = timed(lambda: run([git, "log", "--oneline"], client_env, logdir))
        assert count == args.commits == len(out.splitlines())
        rows.append(
            (f"C4 log of {args.commits} commits", "API log", t_log, "git log --oneline", t_glog)
        )
        t_path, count = timed(lambda: sum(1 for _ in api.log(log_repo, path="counter.txt")))
        t_gpath, _ = timed(lambda: run([git, "log", "--oneline", "--", "x"], client_env, logdir))
        rows.append(
            (
                f"C4p log --path, {args.commits} commits",
                "API log --path",
                t_path,
                "git log -- PATH (empty commits)",
                t_gpath,
            )
        )
        api.close()
    finally:
        server.stop()
        scratch.drop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("| workload | loxo | s | peer | s | loxo/peer |")
    print("|---|---|---|---|---|---|")
    for name, a, ta, peer, tp in rows:
        print(f"| {name} | {a} | {ta:.2f} | {peer} | {tp:.2f} | {ta / tp:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
