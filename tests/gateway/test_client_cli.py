"""The `loxo` client commands end to end: real `python -m gateway.cli`
subprocesses against the session's live loxo server (control API and S3),
as a user would run them.

Every test works in repos of its own (the `server` fixture is shared), and
every invocation gets its settings either from a config file written by
`loxo config set` or from LOXO_* variables (see `Cli`). Independent
invocations run a few at a time (`parallel`): each costs ~1-2 s of start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client
from tests.conftest import Database, LoxoServer, free_port
from tests.conftest import loxo_cli as loxo

COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
MASK = "********"


# --------------------------------------------------------------------------- helpers


def unique(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Cli:
    """`loxo ARGS` with a fixed extra environment; checks the exit code."""

    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        proc = loxo(*args, env=self.env)
        assert proc.returncode == code, (
            f"`loxo {' '.join(args)}` exited with {proc.returncode}, expected {code}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
        if code != 0:
            # A failure is one clear message, never a stack trace.
            assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
            assert proc.stderr.strip(), f"`loxo {' '.join(args)}` failed without a message"
        return proc

    def json(self, *args: str) -> Any:
        proc = self(*args, "-o", "json")
        try:
            return json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"`loxo {' '.join(args)} -o json` printed no JSON: {exc}\n{proc.stdout}"
            ) from None

    def with_env(self, **extra: str) -> Cli:
        return Cli({**self.env, **extra})


def parallel(*jobs: Callable[[], Any]) -> list[Any]:
    """Run independent CLI invocations concurrently; their results, in order."""
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def env_cli(server: LoxoServer, tmp_path: Path, **overrides: str) -> Cli:
    """Settings from LOXO_* variables (and a config file path that holds nothing)."""
    env = {
        "LOXO_CONFIG": str(tmp_path / "cfg.json"),
        "LOXO_ENDPOINT": server.endpoint,
        "LOXO_ACCESS_KEY": server.access_key or "",
        "LOXO_SECRET_KEY": server.secret_key or "",
    }
    env.update(overrides)
    return Cli(env)


@pytest.fixture
def cli(server: LoxoServer, tmp_path: Path) -> Cli:
    return env_cli(server, tmp_path)


def committed(stdout: str) -> str:
    """The commit id in `put`'s "... (commit <id>)" line."""
    found = re.search(r"\(commit ([0-9a-f]{32})\)", stdout)
    assert found, f"no commit id in {stdout!r}"
    return found.group(1)


def keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def missing(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"]) == 404
    return False


def table_rows(stdout: str) -> list[list[str]]:
    """A table's rows below the header, split on whitespace."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no table printed"
    return [line.split() for line in lines[1:]]


def fields(stdout: str) -> dict[str, str]:
    """`NAME   value` lines (config show, inspect) as a dict."""
    result = {}
    for line in stdout.splitlines():
        if line.strip():
            name, _, value = line.strip().partition(" ")
            result[name] = value.strip()
    return result


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --------------------------------------------------------------------------- 1. a session


def test_new_user_session(server: LoxoServer, tmp_path: Path) -> None:
    """A new user configures the CLI once, then versions a dataset with it:
    every step's output is checked, and the data with boto3."""
    s3 = server.client()
    cfg = tmp_path / "cfg.json"
    cli = Cli({"LOXO_CONFIG": str(cfg)})  # only the config file: no LOXO_* settings
    name = unique("session")

    # -- configure ----------------------------------------------------------------------
    saved = cli(
        "config",
        "set",
        "--endpoint",
        server.endpoint,
        "--access-key",
        server.access_key or "",
        "--secret-key",
        server.secret_key or "",
    )
    assert str(cfg) in saved.stdout
    assert json.loads(cfg.read_text()) == {
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "region": "us-east-1",
    }
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600, "the file holds a secret"
    shown = cli("config", "show")
    assert server.secret_key and server.secret_key not in shown.stdout
    assert fields(shown.stdout) == {
        "file": str(cfg),
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": MASK,
        "region": "us-east-1",
    }

    # -- a repo and a dataset, as ONE commit ----------------------------------------------
    created = cli("repo", "create", name)
    assert created.stdout.strip() == f"created repo {name} (bucket {name}, branch main)"

    dataset = tmp_path / "dataset"
    files = {
        "a.csv": b"id,label\n1,cat\n2,dog\n",
        "sub/b.txt": b"hello from sub\n",
        "sub/with space.txt": b"spaces are fine\n",
        "sub/deep/c.bin": os.urandom(40 * 1024),  # beyond the inline limit: chunks
    }
    write_tree(dataset, files)
    put = cli("put", str(dataset), f"{name}@main:data", "-m", "initial dataset")
    first = committed(put.stdout)
    assert put.stdout.startswith(f"4 files -> {name}@main:data "), put.stdout
    log = cli.json("log", f"{name}@main")
    assert [c["id"] for c in log] == [first], "a directory put is exactly ONE commit"
    assert log[0]["message"] == "initial dataset"
    assert log[0]["parents"] == []
    assert keys(s3, f"{name}.main") == {f"data/{rel}" for rel in files}, (
        "a directory's contents land under PATH (data/a.csv), not PATH/dataset/a.csv"
    )

    # -- a branch: one file changed, one added ---------------------------------------------
    branched = cli("branch", "create", f"{name}@dev", "--from", f"{name}@main")
    assert branched.stdout.strip() == (
        f"created branch {name}@dev at {first[:12]} (bucket {name}.dev)"
    )
    new_x = b"x,y\n3,4\n"
    new_a = b"id,label\n1,cat\n2,dog\n3,bird\n"
    (tmp_path / "x.csv").write_bytes(new_x)
    (tmp_path / "a2.csv").write_bytes(new_a)
    added = committed(cli("put", str(tmp_path / "x.csv"), f"{name}@dev:data/x.csv").stdout)
    changed = committed(cli("put", str(tmp_path / "a2.csv"), f"{name}@dev:data/a.csv").stdout)
    assert len({first, added, changed}) == 3

    diff = cli("diff", f"{name}@main", f"{name}@dev")
    assert diff.stdout.splitlines() == [
        f"~ data/a.csv  ({len(files['a.csv'])} B -> {len(new_a)} B)",
        f"+ data/x.csv  ({len(new_x)} B)",
    ]

    merged = cli("merge", f"{name}@dev", "--into", "main")
    assert merged.stdout.strip() == f"fast-forward: {name}@main is at {changed}"
    assert body(s3, f"{name}.main", "data/a.csv") == new_a

    # -- reading it back (independent reads, run side by side) --------------------------------
    out = tmp_path / "out"
    log_t, inspect_t, get_t, ls_t, old_a, history_t = parallel(
        lambda: cli("log", f"{name}@main"),
        lambda: cli("inspect", f"{name}@main"),
        lambda: cli("get", f"{name}@main:data", str(out)),
        lambda: cli("ls", f"{name}@main:data/"),
        lambda: cli("cat", f"{name}@main~1:data/a.csv"),
        lambda: cli("history", f"{name}@main:data/a.csv"),
    )
    rows = table_rows(log_t.stdout)
    assert [r[0] for r in rows] == [changed[:12], added[:12], first[:12]]
    assert [" ".join(r[4:]) for r in rows] == [
        "PutObject data/a.csv",
        "PutObject data/x.csv",
        "initial dataset",
    ]

    info = fields(inspect_t.stdout)
    assert info["commit"] == changed
    assert info["parents"] == added
    assert info["message"] == "PutObject data/a.csv"
    assert info["changes"] == "0 added, 1 modified, 0 deleted"
    assert info["objects"].startswith("5 ("), info["objects"]

    expected = {**files, "a.csv": new_a, "x.csv": new_x}
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == expected, "get gives back every file, byte for byte"
    total = sum(len(v) for v in expected.values())
    assert get_t.stdout.strip() == f"5 files ({total / 1024:.1f} KiB) -> {out}"

    listed = {r[-1]: r for r in table_rows(ls_t.stdout)}
    assert set(listed) == {"data/sub/", "data/a.csv", "data/x.csv"}
    assert listed["data/sub/"][0] == "DIR"
    assert listed["data/a.csv"][:2] == [str(len(new_a)), "B"]
    assert listed["data/x.csv"][:2] == [str(len(new_x)), "B"]

    assert old_a.stdout.encode() == files["a.csv"], "main~1 is before the change"

    versions = table_rows(history_t.stdout)
    assert [v[0] for v in versions] == [changed[:12], first[:12]]
    assert [v[3:5] for v in versions] == [[str(len(new_a)), "B"], [str(len(files["a.csv"])), "B"]]

    # -- a tag keeps what a branch moves past; revert brings a file back -----------------------
    tagged = cli("tag", "create", f"{name}@v1", "--from", f"{name}@main")
    assert tagged.stdout.strip() == f"tagged {changed} as {name}@v1"
    s3.delete_object(Bucket=f"{name}.main", Key="data/x.csv")  # a commit on main
    assert missing(s3, f"{name}.main", "data/x.csv")
    assert cli("cat", f"{name}@v1:data/x.csv").stdout.encode() == new_x

    reverted = cli("revert", f"{name}@main").stdout.strip()
    found = re.fullmatch(
        rf"reverted ([0-9a-f]{{12}}) on {name}@main: new commit ([0-9a-f]{{32}}) "
        r"\(1 path changed\)",
        reverted,
    )
    assert found, reverted
    assert found.group(2) not in (changed, added, first), "a new commit"
    assert body(s3, f"{name}.main", "data/x.csv") == new_x, "revert undid the delete"

    # -- and away with it ------------------------------------------------------------------
    deleted = cli("repo", "delete", name, "--yes")
    assert deleted.stdout.startswith(f"deleted repo {name} (in the trash until"), deleted.stdout
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=name)


# --------------------------------------------------------------------------- 2. -o json


def test_json_output_of_every_command(server: LoxoServer, db: Database, tmp_path: Path) -> None:
    s3 = server.client()
    cli = env_cli(server, tmp_path)
    name = unique("json")

    repo = cli.json("repo", "create", name)
    assert repo["name"] == name and repo["default_branch"] == "main"
    assert isinstance(repo["created"], str) and repo["created"].endswith("Z")

    tree = tmp_path / "tree"
    write_tree(tree, {"one.txt": b"one\n", "sub/two.txt": b"two two\n"})
    put_dir = cli.json("put", str(tree), f"{name}@main:d")
    assert put_dir["files"] == 2 and COMMIT_ID.match(put_dir["commit"])
    c1 = put_dir["commit"]

    branch = cli.json("branch", "create", f"{name}@dev", "--from", f"{name}@main")
    assert {k: branch[k] for k in ("repo", "name", "head")} == {
        "repo": name,
        "name": "dev",
        "head": c1,
    }

    new = b"brand new\n"
    (tmp_path / "new.txt").write_bytes(new)
    put_file = cli.json("put", str(tmp_path / "new.txt"), f"{name}@dev:d/new.txt")
    assert put_file["files"] == 1
    c2 = put_file["commit"]
    assert COMMIT_ID.match(c2) and c2 != c1
    assert db.branch_head(name, "dev") == c2

    out = tmp_path / "out"
    diff, branches, history, ls, log, inspect, shown, got = parallel(
        lambda: cli.json("diff", f"{name}@main", f"{name}@dev"),
        lambda: cli.json("branch", "list", name),
        lambda: cli.json("history", f"{name}@dev:d/new.txt"),
        lambda: cli.json("ls", f"{name}@dev:d/"),
        lambda: cli.json("log", f"{name}@dev"),
        lambda: cli.json("inspect", f"{name}@dev"),
        lambda: cli.json("config", "show"),
        lambda: cli.json("get", f"{name}@dev:d", str(out)),
    )
    assert diff == [
        {"path": "d/new.txt", "change": "added", "size_before": None, "size_after": len(new)}
    ]
    assert {b["name"]: b["head"] for b in branches} == {"main": c1, "dev": c2}
    assert all(b["repo"] == name for b in branches)
    assert len(history) == 1
    assert history[0]["commit"] == c2 and history[0]["deleted"] is False
    assert history[0]["size"] == len(new)
    assert history[0]["etag"] == hashlib.md5(new).hexdigest()
    assert history[0]["message"] == "PutObject d/new.txt"
    assert sorted((i["path"], i["is_dir"], i["size"]) for i in ls) == [
        ("d/new.txt", False, len(new)),
        ("d/one.txt", False, 4),
        ("d/sub/", True, 0),
    ]
    assert all(isinstance(i["modified"], str) for i in ls if not i["is_dir"])
    assert [c["id"] for c in log] == [c2, c1]
    assert [c["parents"] for c in log] == [[c1], []]
    assert log[0]["origin"]["branch"] == "dev"
    assert inspect["id"] == c2 and inspect["parents"] == [c1]
    assert inspect["changes"] == {"added": 1, "modified": 0, "deleted": 0}
    assert inspect["objects"] == 3 and inspect["size"] == 4 + 8 + len(new)
    assert shown == {
        "file": str(tmp_path / "cfg.json"),
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": MASK,
        "region": "us-east-1",
    }
    assert sorted(got["files"]) == sorted(
        str(out / rel) for rel in ("new.txt", "one.txt", "sub/two.txt")
    )
    assert got["bytes"] == 4 + 8 + len(new)

    merged = cli.json("merge", f"{name}@dev", "--into", "main")
    assert merged == {"outcome": "fast-forward", "commit": c2, "conflicts": []}

    described, repos, tag = parallel(
        lambda: cli.json("repo", "describe", name),
        lambda: cli.json("repo", "list"),
        lambda: cli.json("tag", "create", f"{name}@v1", "--from", f"{name}@main"),
    )
    assert described["name"] == name and described["branches"] == 2
    assert described["last_commit"] == c2
    assert described["objects"] == 3 and described["size"] == 4 + 8 + len(new)
    mine = [r for r in repos if r["name"] == name]
    assert len(mine) == 1 and mine[0]["default_branch"] == "main"
    assert {k: tag[k] for k in ("repo", "name", "commit")} == {
        "repo": name,
        "name": "v1",
        "commit": c2,
    }

    reverted = cli.json("revert", f"{name}@main")
    c3 = reverted["commit"]
    assert COMMIT_ID.match(c3) and c3 not in (c1, c2)
    assert db.branch_head(name) == c3
    assert missing(s3, f"{name}.main", "d/new.txt"), "the revert undid the add"

    reset = cli.json("branch", "reset", f"{name}@main", "--to", f"{name}@main~1")
    assert reset["name"] == "main" and reset["head"] == c2
    assert db.branch_head(name) == c2

    opened = cli.json("commit", "start", f"{name}@main")
    assert COMMIT_ID.match(opened["id"])
    assert opened["repo"] == name and opened["branch"] == "main"
    assert opened["bucket"] == f"{name}.{opened['id']}"
    assert opened["base"] == c2 and opened["finishing"] is False
    s3.put_object(Bucket=opened["bucket"], Key="d/late.txt", Body=b"late\n")
    open_list, tags = parallel(
        lambda: cli.json("commit", "list", name),
        lambda: cli.json("tag", "list", name),
    )
    assert [(o["id"], o["bucket"]) for o in open_list] == [(opened["id"], opened["bucket"])]
    assert [(t["name"], t["commit"]) for t in tags] == [("v1", c2)]
    finished = cli.json("commit", "finish", f"{name}@{opened['id']}", "-m", "late")
    c4 = finished["commit"]
    assert COMMIT_ID.match(c4) and c4 not in (c1, c2, c3)
    assert db.branch_head(name) == c4
    assert body(s3, f"{name}.main", "d/late.txt") == b"late\n"


# --------------------------------------------------------------------------- 3. exit codes


def test_exit_codes(server: LoxoServer, db: Database, tmp_path: Path) -> None:
    s3 = server.client()
    cli = env_cli(server, tmp_path)
    name = unique("codes")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/a.csv", Body=b"base\n")
    cli("branch", "create", f"{name}@dev")
    s3.put_object(Bucket=f"{name}.main", Key="data/a.csv", Body=b"main side\n")
    s3.put_object(Bucket=f"{name}.dev", Key="data/a.csv", Body=b"dev side\n")
    main_head = db.branch_head(name)
    local = tmp_path / "f.txt"
    local.write_bytes(b"f\n")

    wrong_secret = cli.with_env(LOXO_SECRET_KEY="not-the-secret-key")
    home = tmp_path / "home"
    home.mkdir()
    unconfigured = Cli({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    closed = cli.with_env(LOXO_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    conflict, _, _, _, undeleted, nocolon, _, _, no_config, unreachable = parallel(
        lambda: cli("merge", f"{name}@dev", "--into", "main", code=4),
        lambda: cli("inspect", f"{unique('nosuchrepo')}@main", code=3),
        lambda: cli("cat", f"{name}@main:data/missing.csv", code=3),
        lambda: cli("repo", "create", name, code=4),
        lambda: cli("repo", "delete", name, code=2),
        lambda: cli("put", str(local), "nocolon", code=2),
        lambda: wrong_secret("repo", "list", code=5),
        lambda: wrong_secret("cat", f"{name}@main:data/a.csv", code=5),
        lambda: unconfigured("repo", "list", code=5),
        lambda: closed("repo", "list", code=6),
    )
    assert "data/a.csv" in conflict.stderr, "a merge conflict names the conflicting path"
    assert conflict.stdout == ""
    assert "--yes" in undeleted.stderr
    assert "nocolon" in nocolon.stderr
    assert "loxo config set" in no_config.stderr
    assert "cannot reach loxo" in unreachable.stderr
    # Nothing above changed anything.
    assert db.branch_head(name) == main_head, "a conflicting merge writes nothing"
    assert body(s3, f"{name}.main", "data/a.csv") == b"main side\n"
    s3.head_bucket(Bucket=name)  # `repo delete` without --yes deleted nothing

    ours = cli("merge", f"{name}@dev", "--into", "main", "--strategy", "ours")
    merge_commit = db.branch_head(name)
    assert merge_commit != main_head
    assert ours.stdout.splitlines() == [
        f"merged: {name}@main is at {merge_commit}",
        "  conflict settled (ours): data/a.csv (both-changed)",
    ]
    assert body(s3, f"{name}.main", "data/a.csv") == b"main side\n"

    # A new conflict on the same path, settled the other way.
    s3.put_object(Bucket=f"{name}.main", Key="data/a.csv", Body=b"main again\n")
    s3.put_object(Bucket=f"{name}.dev", Key="data/a.csv", Body=b"dev again\n")
    theirs = cli.json("merge", f"{name}@dev", "--into", "main", "--strategy", "theirs")
    assert theirs["outcome"] == "merged"
    assert theirs["conflicts"] == [{"path": "data/a.csv", "kind": "both-changed"}]
    assert db.branch_head(name) == theirs["commit"]
    assert body(s3, f"{name}.main", "data/a.csv") == b"dev again\n"


# --------------------------------------------------------------------------- 4. open commits


def test_open_commits(server: LoxoServer, db: Database, cli: Cli) -> None:
    s3 = server.client()
    name = unique("open")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="seed.txt", Body=b"seed\n")
    base = db.branch_head(name)

    keep_bucket, drop_bucket = parallel(
        lambda: cli("commit", "start", f"{name}@main").stdout.strip(),
        lambda: cli("commit", "start", f"{name}@main").stdout.strip(),
    )
    keep_id, drop_id = keep_bucket.partition(".")[2], drop_bucket.partition(".")[2]
    assert keep_bucket == f"{name}.{keep_id}" and COMMIT_ID.match(keep_id), keep_bucket
    assert drop_bucket == f"{name}.{drop_id}" and COMMIT_ID.match(drop_id), drop_bucket

    written = {f"batch/{i:02d}.txt": f"object {i}\n".encode() for i in range(20)}
    for key, data in written.items():
        s3.put_object(Bucket=keep_bucket, Key=key, Body=data)
    s3.put_object(Bucket=drop_bucket, Key="dropped.txt", Body=b"never committed\n")

    assert db.branch_head(name) == base, "nothing is committed before finish"
    assert keys(s3, f"{name}.main") == {"seed.txt"}
    listed = cli("commit", "list", name)
    rows = {r[0]: r for r in table_rows(listed.stdout)}
    assert set(rows) == {keep_id, drop_id}
    assert all(r[1:3] == ["main", f"{name}.{r[0]}"] for r in rows.values())

    finished = cli("commit", "finish", f"{name}@{keep_id}", "-m", "twenty at once")
    commit = db.branch_head(name)
    assert finished.stdout.strip() == (
        f"finished open commit {keep_id} on {name}@main: new commit {commit} (20 paths changed)"
    )
    assert db.branch_head(name) == commit
    aborted = cli("commit", "abort", f"{name}@{drop_id}")
    assert aborted.stdout.strip() == f"aborted {name}@{drop_id}"
    assert db.branch_head(name) == commit, "abort leaves the branch alone"

    log, still_open = parallel(
        lambda: cli.json("log", f"{name}@main"),
        lambda: cli.json("commit", "list", name),
    )
    assert [c["id"] for c in log] == [commit, base], "20 writes, ONE commit"
    assert log[0]["message"] == "twenty at once" and log[0]["parents"] == [base]
    assert still_open == []
    assert keys(s3, f"{name}.main") == {"seed.txt", *written}
    assert all(body(s3, f"{name}.main", k) == v for k, v in list(written.items())[::7])
    assert missing(s3, f"{name}.main", "dropped.txt")


# --------------------------------------------------------------------------- 5. reset --expect


def test_branch_reset_expect(server: LoxoServer, db: Database, cli: Cli) -> None:
    s3 = server.client()
    name = unique("reset")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"1")
    first = db.branch_head(name)
    s3.put_object(Bucket=name, Key="k", Body=b"2")
    second = db.branch_head(name)
    assert first and second and first != second

    wrong = "0" * 32
    refused = cli(
        "branch", "reset", f"{name}@main", "--to", f"{name}@main~1", "--expect", wrong, code=4
    )
    assert second in refused.stderr, "the refusal says where the head is"
    assert db.branch_head(name) == second
    moved = cli("branch", "reset", f"{name}@main", "--to", f"{name}@main~1", "--expect", second)
    assert moved.stdout.strip() == f"{name}@main is now at {first}"
    assert db.branch_head(name) == first
    assert body(s3, name, "k") == b"1"


# --------------------------------------------------------------------------- 6. env vs file


def test_environment_overrides_config_file(server: LoxoServer, tmp_path: Path) -> None:
    name = unique("envover")
    server.client().create_bucket(Bucket=name)
    cfg = tmp_path / "cfg.json"
    only_file = Cli({"LOXO_CONFIG": str(cfg)})
    only_file(
        "config",
        "set",
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "--access-key",
        server.access_key or "",
        "--secret-key",
        "a-wrong-secret-key",
    )
    right_endpoint = only_file.with_env(LOXO_ENDPOINT=server.endpoint)
    both_right = right_endpoint.with_env(LOXO_SECRET_KEY=server.secret_key or "")
    _, _, described, shown = parallel(
        lambda: only_file("repo", "describe", name, code=6),
        lambda: right_endpoint("repo", "describe", name, code=5),
        lambda: both_right.json("repo", "describe", name),
        lambda: both_right.json("config", "show"),
    )
    assert described["name"] == name and described["branches"] == 1
    assert shown["endpoint"] == server.endpoint and shown["secret_key"] == MASK
    # The variables override, they don't rewrite the file.
    assert json.loads(cfg.read_text())["secret_key"] == "a-wrong-secret-key"


# --------------------------------------------------------------------------- 7. help


@pytest.mark.parametrize(
    "command", [(), ("put",), ("merge",), ("commit", "start")], ids=lambda c: " ".join(c) or "loxo"
)
def test_help_shows_an_example(command: tuple[str, ...]) -> None:
    helped = Cli()(*command, "--help")
    assert "Usage:" in helped.stdout
    assert "Example" in helped.stdout, f"`loxo {' '.join(command)} --help` shows no example"


# --------------------------------------------------------------------------- 8. put to a folder


def test_put_file_to_folder(server: LoxoServer, db: Database, cli: Cli, tmp_path: Path) -> None:
    s3 = server.client()
    name = unique("folder")
    s3.create_bucket(Bucket=name)
    local = tmp_path / "cat.png"
    local.write_bytes(b"\x89PNG not really\n")
    put = cli("put", str(local), f"{name}@main:raw/images/")
    head = db.branch_head(name)
    assert put.stdout.strip() == f"1 file -> {name}@main:raw/images/ (commit {head})"
    assert keys(s3, name) == {"raw/images/cat.png"}
    assert body(s3, name, "raw/images/cat.png") == local.read_bytes()


# --------------------------------------------------------------------------- product bugs


def test_put_file_uses_the_message(server: LoxoServer, cli: Cli, tmp_path: Path) -> None:
    """`-m` is "The commit message." for a single file too."""
    name = unique("message")
    server.client().create_bucket(Bucket=name)
    local = tmp_path / "f.txt"
    local.write_bytes(b"f\n")
    cli("put", str(local), f"{name}@main:f.txt", "-m", "my own message")
    log = cli.json("log", name)
    assert [c["message"] for c in log] == ["my own message"]


@pytest.mark.parametrize("size", [1024, 9_000_000], ids=["small", "multipart"])
def test_put_file_failures_are_clean(
    server: LoxoServer, cli: Cli, tmp_path: Path, size: int
) -> None:
    """A single-file put that S3 refuses exits like every other command:
    5 for bad keys, 3 for a missing branch, with a message, not a traceback;
    for a file big enough for a multipart upload (>= 8 MiB) too."""
    name = unique("putfail")
    server.client().create_bucket(Bucket=name)
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(size))
    parallel(
        lambda: cli.with_env(LOXO_SECRET_KEY="wrong")("put", str(local), f"{name}@main:f", code=5),
        lambda: cli("put", str(local), f"{name}@nosuchbranch:f", code=3),
    )
    assert keys(server.client(), name) == set()


def test_error_messages_keep_the_error_code(cli: Cli) -> None:
    """fail() prints "<message> [<code>]"; the code must survive the output."""
    gone = unique("nosuchrepo")
    proc = cli("inspect", f"{gone}@main", code=3)
    assert "[repo_not_found]" in proc.stderr, proc.stderr


def test_reset_to_another_repo_names_the_option(cli: Cli) -> None:
    proc = cli("branch", "reset", "one-repo@main", "--to", "other-repo@main", code=2)
    assert "--to other-repo@main" in proc.stderr, proc.stderr
    assert "--from" not in proc.stderr, "`branch reset` has no --from option"


def test_progress_bars_show_rate_and_eta_on_a_terminal(
    server: LoxoServer, cli: Cli, tmp_path: Path
) -> None:
    """On a terminal (TTY_COMPATIBLE=1 makes rich treat stderr as one) put
    and get draw a bar with bytes, rate and time left; piped, they print none."""
    name = unique("progress")
    server.client().create_bucket(Bucket=name)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    tty = cli.with_env(TTY_COMPATIBLE="1", COLUMNS="120")
    put = tty("put", str(big), f"{name}@main:big.bin")
    assert "put big.bin" in put.stderr
    assert re.search(r"12\.\d/12\.\d MB", put.stderr), put.stderr  # bytes done / total
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", put.stderr), put.stderr  # the rate
    assert re.search(r"\d:\d\d:\d\d", put.stderr), put.stderr  # time left
    got = tty("get", f"{name}@main:big.bin", str(tmp_path / "back.bin"))
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", got.stderr), got.stderr
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    piped = cli("put", str(big), f"{name}@main:again.bin")
    assert "B/s" not in piped.stderr


def test_get_refuses_keys_that_escape_the_target(
    server: LoxoServer, cli: Cli, tmp_path: Path
) -> None:
    name = unique("escape")
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="p/ok.txt", Body=b"ok")
    s3.put_object(Bucket=name, Key="p/../../escaped.txt", Body=b"evil")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    got = cli("get", f"{name}@main:p", str(work / "out"), code=2)
    assert "'..'" in got.stderr and "nothing was written" in got.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
    assert not (work / "out").exists()
    # A folder marker key (as S3 consoles make) is skipped, not an error.
    s3.delete_object(Bucket=name, Key="p/../../escaped.txt")
    s3.put_object(Bucket=name, Key="p/sub/", Body=b"")
    cli("get", f"{name}@main:p", str(work / "out"))
    assert sorted(x.name for x in (work / "out").rglob("*") if x.is_file()) == ["ok.txt"]


def test_writing_to_a_tag_is_a_conflict(server: LoxoServer, cli: Cli, tmp_path: Path) -> None:
    name = unique("tagged")
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a.txt", Body=b"a")
    cli("tag", "create", f"{name}@v1", "--from", f"{name}@main")
    local = tmp_path / "q.txt"
    local.write_bytes(b"q")
    for source in (local, tmp_path):
        put = cli("put", str(source), f"{name}@v1:q", code=4)
        assert "is a tag" in put.stderr and "read-only" in put.stderr
    missing = cli("put", str(local), f"{name}@nosuch:q", code=3)
    assert "not a branch" in missing.stderr


def test_not_found_messages_name_what_is_missing(
    server: LoxoServer, cli: Cli, tmp_path: Path
) -> None:
    """cat, get and ls name the path they did not find (ls exits 3, as get
    does); the control API's not-found messages are sentences."""
    name = unique("notfound")
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/a.csv", Body=b"a\n")
    gone = unique("nosuchrepo")
    cat, get, ls, listed, inspected, branch, tag = parallel(
        lambda: cli("cat", f"{name}@main:data/missing.csv", code=3),
        lambda: cli("get", f"{name}@main:data/missing", str(tmp_path / "out"), code=3),
        lambda: cli("ls", f"{name}@main:nothing/here/", code=3),
        lambda: cli("ls", f"{name}:data/"),
        lambda: cli("inspect", f"{gone}@main", code=3),
        lambda: cli("branch", "delete", f"{name}@nosuch", code=3),
        lambda: cli("tag", "delete", f"{name}@v9", code=3),
    )
    assert f"{name}@main has no file data/missing.csv" in cat.stderr, cat.stderr
    assert f"{name}@main has no file or folder data/missing" in get.stderr, get.stderr
    assert f"{name}@main has no file or folder nothing/here/" in ls.stderr, ls.stderr
    assert [r[-1] for r in table_rows(listed.stdout)] == ["data/a.csv"]
    assert f"repo '{gone}' does not exist [repo_not_found]" in inspected.stderr, inspected.stderr
    assert f"branch 'nosuch' does not exist in repo '{name}' [branch_not_found]" in branch.stderr
    assert f"tag 'v9' does not exist in repo '{name}' [tag_not_found]" in tag.stderr, tag.stderr
    assert not (tmp_path / "out").exists()


def test_commits_are_by_the_signing_access_key(
    server: LoxoServer, cli: Cli, tmp_path: Path
) -> None:
    """The author of a commit is the access key that signed the request that
    made it: S3 writes (SigV4 and SigV2), multipart, copy, delete, tagging, a
    version delete, and the control API's open commits, merges and reverts."""
    name = unique("author")
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a", Body=b"a")
    server.client(signature_version="s3").put_object(Bucket=name, Key="v2", Body=b"v2")
    s3.copy_object(Bucket=name, Key="c", CopySource={"Bucket": name, "Key": "a"})
    s3.put_object_tagging(Bucket=name, Key="c", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    up = s3.create_multipart_upload(Bucket=name, Key="m")["UploadId"]
    etag = s3.upload_part(Bucket=name, Key="m", UploadId=up, PartNumber=1, Body=b"m")["ETag"]
    s3.complete_multipart_upload(
        Bucket=name,
        Key="m",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "v2"}]})
    replaced = s3.put_object(Bucket=name, Key="a", Body=b"a2")["VersionId"]
    s3.delete_object(Bucket=name, Key="a", VersionId=replaced)  # restores the first a
    s3.delete_object(Bucket=name, Key="c")
    write_tree(tmp_path / "d", {"x.txt": b"x", "y.txt": b"y"})
    cli("put", str(tmp_path / "d"), f"{name}@main:d")  # an open commit
    cli("branch", "create", f"{name}@dev")
    s3.put_object(Bucket=f"{name}.dev", Key="dev.txt", Body=b"dev")
    s3.put_object(Bucket=name, Key="main.txt", Body=b"main")
    cli("merge", f"{name}@dev", "--into", "main")  # a merge commit
    cli("revert", f"{name}@main")
    log = cli.json("log", name)
    assert len(log) == 14, [c["message"] for c in log]
    assert {c["author"] for c in log} == {server.access_key}, [
        (c["message"], c["author"]) for c in log
    ]


def test_open_commit_by_its_bucket_with_the_start_message(
    server: LoxoServer, db: Database, cli: Cli
) -> None:
    """`commit finish` (and abort) take the bucket `commit start` printed,
    also as s3://BUCKET/; `commit start -m` gives finish its message; finish
    and revert say what they did, and -o json stays machine-readable."""
    s3 = server.client()
    name = unique("bybucket")
    s3.create_bucket(Bucket=name)
    bucket = cli("commit", "start", f"{name}@main", "-m", "nightly labels").stdout.strip()
    ident = bucket.partition(".")[2]
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b.txt", Body=b"b")
    finished = cli("commit", "finish", bucket)
    head = db.branch_head(name)
    assert finished.stdout.strip() == (
        f"finished open commit {ident} on {name}@main: new commit {head} (2 paths changed)"
    )
    assert cli.json("log", name)[0]["message"] == "nightly labels"

    second = cli("commit", "start", name + "@main").stdout.strip()
    s3.put_object(Bucket=second, Key="c.txt", Body=b"c")
    done = cli.json("commit", "finish", f"s3://{second}/", "-m", "one more")
    assert done == {"commit": db.branch_head(name)} and done["commit"] != head
    third = cli("commit", "start", name + "@main").stdout.strip()
    assert (
        cli("commit", "abort", f"s3://{third}").stdout.strip()
        == f"aborted {name}@{third[len(name) + 1 :]}"
    )
    no_message = cli("commit", "start", name + "@main").stdout.strip()
    refused = cli("commit", "finish", no_message, code=2)
    assert "-m MESSAGE" in refused.stderr

    reverted = cli("revert", f"{name}@main")
    assert reverted.stdout.strip() == (
        f"reverted {done['commit'][:12]} on {name}@main: new commit {db.branch_head(name)} "
        "(1 path changed)"
    )


def test_version_and_short_help(cli: Cli) -> None:
    """`loxo --version`, `loxo -h` (on subcommands too), and help that shows
    flags as flags, not as options taking a <bool>."""
    version, helped, sub, gc_help, put_help = parallel(
        lambda: cli("--version"),
        lambda: cli("-h"),
        lambda: cli("commit", "finish", "-h"),
        lambda: cli("gc", "--help"),
        lambda: cli("put", "--help"),
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version.stdout.strip()), version.stdout
    assert "Usage:" in helped.stdout and "Usage:" in sub.stdout
    for shown in (helped, sub, gc_help, put_help):
        assert "<bool>" not in shown.stdout, shown.stdout
    assert "--no-dry-run" not in gc_help.stdout and "--dry-run" in gc_help.stdout


def test_uploads_list_and_abort(server: LoxoServer, cli: Cli) -> None:
    """`loxo uploads list` shows the multipart uploads a client left behind
    (every branch's, or one's), and `loxo uploads abort` clears them: by id,
    or by branch, key and id (checked to match)."""
    s3 = server.client()
    name = unique("uploads")
    s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket=f"{name}.dev")
    part = os.urandom(5 * 1024 * 1024)
    first = s3.create_multipart_upload(Bucket=name, Key="raw/big.bin")["UploadId"]
    s3.upload_part(Bucket=name, Key="raw/big.bin", UploadId=first, PartNumber=1, Body=part)
    second = s3.create_multipart_upload(Bucket=f"{name}.dev", Key="other.bin")["UploadId"]

    listed, dev_only, table_out = parallel(
        lambda: cli.json("uploads", "list", name),
        lambda: cli.json("uploads", "list", f"{name}@dev"),
        lambda: cli("uploads", "list", name),
    )
    assert [(u["id"], u["branch"], u["key"], u["parts"], u["size"]) for u in listed] == [
        (first, "main", "raw/big.bin", 1, len(part)),
        (second, "dev", "other.bin", 0, 0),
    ]
    assert [u["id"] for u in dev_only] == [second]
    rows = table_rows(table_out.stdout)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (first, "main", "raw/big.bin"),
        (second, "dev", "other.bin"),
    ]

    wrong_key = cli("uploads", "abort", f"{name}@main", "not/it.bin", first, code=3)
    assert f"has no upload {first} of key 'not/it.bin'" in wrong_key.stderr, wrong_key.stderr
    aborted = cli("uploads", "abort", f"{name}@main", "raw/big.bin", first)
    assert aborted.stdout.strip() == f"aborted upload {first} of raw/big.bin in {name}@main"
    cli("uploads", "abort", name, second)
    again = cli("uploads", "abort", name, second, code=3)
    assert "[upload_not_found]" in again.stderr
    assert cli.json("uploads", "list", name) == []
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    cli("uploads", "list", unique("nosuchrepo"), code=3)


def test_ctrl_c_of_put_aborts_the_open_commit(
    server: LoxoServer, db: Database, cli: Cli, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) during `loxo put DIR` aborts the open commit it
    writes into, says so, exits 130, and leaves the branch as it was."""
    name = unique("sigint")
    s3 = server.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="before.txt", Body=b"before")
    head = db.branch_head(name)
    write_tree(tmp_path / "big", {f"f{i:04d}.bin": os.urandom(32 * 1024) for i in range(1500)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env.update(cli.env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "put", str(tmp_path / "big"), f"{name}@main:big"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as api:
        deadline = time.monotonic() + 60
        opened: list[Any] = []
        while not opened and proc.poll() is None and time.monotonic() < deadline:
            opened = list(api.list_open_commits(name))
            time.sleep(0.05)
        assert len(opened) == 1, "the put did not start an open commit in time"
        time.sleep(0.3)  # some files are on their way
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, (proc.returncode, stdout, stderr)
        assert (
            f"interrupted: aborted open commit {opened[0].id} on {name}@main, nothing was committed"
        ) in stderr, stderr
        assert "Traceback" not in stderr, stderr
        assert list(api.list_open_commits(name)) == []
    assert db.branch_head(name) == head, "the branch is untouched"
    assert keys(s3, name) == {"before.txt"}
