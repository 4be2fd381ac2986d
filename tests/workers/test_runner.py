"""workers.runner against a real loxo server: inputs read from snapshot
buckets, outputs written to the bucket of an open commit, commands run for
real. Leases are built by hand (the server's scheduler is not involved)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from workers.lease import InputFile, Lease, LeaseError, LeaseInput, Transform
from workers.runner import Attempt, Result
from workers.transfer import InlineOutput, S3Settings, split_outputs

PY = sys.executable


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[Client]:
    with Client(server.endpoint, server.access_key, server.secret_key) as client:
        yield client


@pytest.fixture(scope="module")
def settings(server: Any) -> S3Settings:
    return S3Settings(server.endpoint, server.access_key, server.secret_key)


@pytest.fixture
def input_repo(
    s3: Any, api: Client, new_bucket: Callable[..., str]
) -> Callable[[dict[str, bytes]], LeaseInput]:
    """A repo holding `files`, as the lease input `images` reading its commit."""

    def make(files: dict[str, bytes]) -> LeaseInput:
        repo = new_bucket("in")
        for key, body in files.items():
            s3.put_object(Bucket=repo, Key=key, Body=body)
        commit = api.inspect(repo)
        assert commit.bucket is not None
        listed = tuple(InputFile(k, len(v)) for k, v in sorted(files.items()))
        return LeaseInput("images", repo, "main", commit.id, "/*", False, commit.bucket, listed)

    return make


@pytest.fixture
def output_bucket(api: Client, new_bucket: Callable[..., str]) -> Callable[[], str]:
    """The bucket of a fresh open commit on an empty output repo."""

    def make() -> str:
        repo = new_bucket("out")
        return api.start_commit(repo, "main").bucket

    return make


def lease(
    cmd: list[str],
    inputs: tuple[LeaseInput, ...] = (),
    output: str | None = None,
    **options: Any,
) -> Lease:
    transform = Transform(
        cmd=tuple(cmd),
        stdin=tuple(options.pop("stdin", ())),
        env=options.pop("env", {}),
        err_cmd=tuple(options.pop("err_cmd", ())),
        err_stdin=tuple(options.pop("err_stdin", ())),
        accept_return_code=tuple(options.pop("accept_return_code", ())),
    )
    return Lease(
        attempt=uuid.uuid4().hex,
        job=uuid.uuid4().hex,
        datum=uuid.uuid4().hex,
        pipeline="edges",
        transform=transform,
        inputs=inputs,
        output_bucket=output,
        **options,
    )


def run(
    the_lease: Lease, settings: S3Settings, scratch: Path, keep: bool = False
) -> tuple[Result, Path]:
    folder = scratch / (the_lease.attempt or "local")
    return Attempt(the_lease, folder, settings, keep=keep).run(), folder


def outputs(s3: Any, bucket: str) -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


COPY_UPPER = """
    import os, sys
    src, dst = sys.argv[1], sys.argv[2]
    for folder, _, names in os.walk(src):
        for name in names:
            path = os.path.join(folder, name)
            target = os.path.join(dst, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(path, "rb") as f, open(target, "wb") as g:
                g.write(f.read().upper())
"""
COPY_ARGS = [*python(COPY_UPPER), "/pfs/images", "/pfs/out"]


def test_files_mode_round_trip_with_nested_keys(
    input_repo: Any, output_bucket: Any, settings: S3Settings, s3: Any, tmp_path: Path
) -> None:
    big = b"z" * (9 * 1024 * 1024)  # above the multipart threshold
    files = {"a/b/c.txt": b"deep", "a/d.txt": b"mid", "top.txt": b"top", "big.bin": big}
    bucket = output_bucket()
    the_lease = lease(COPY_ARGS, (input_repo(files),), bucket)

    result, folder = run(the_lease, settings, tmp_path)

    assert (result.outcome, result.exit_code, result.error) == ("success", 0, ""), result
    assert outputs(s3, bucket) == {k: v.upper() for k, v in files.items()}
    assert result.timings.download > 0 and result.timings.process > 0
    assert result.timings.upload > 0
    assert not folder.exists()  # the scratch folder goes with the attempt
    body = result.to_json()
    assert body["attempt"] == the_lease.attempt and body["outcome"] == "success"
    assert set(body["timings"]) == {"download", "process", "upload"}


def test_stdin_lines_run_with_pfs_rewritten(
    input_repo: Any, output_bucket: Any, settings: S3Settings, s3: Any, tmp_path: Path
) -> None:
    bucket = output_bucket()
    stdin = [
        "cp -r /pfs/images/a /pfs/out/copied",
        "printf '%s' \"$LOXO_DATUM\" > /pfs/out/datum",
    ]
    the_lease = lease(["bash"], (input_repo({"a/x.txt": b"x"}),), bucket, stdin=stdin)

    result, _ = run(the_lease, settings, tmp_path)

    assert result.outcome == "success", result
    assert outputs(s3, bucket) == {"copied/x.txt": b"x", "datum": the_lease.datum.encode()}


def test_environment_of_files_mode(
    input_repo: Any,
    output_bucket: Any,
    settings: S3Settings,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOXO_SECRET_KEY", "the-workers-own-secret")
    monkeypatch.setenv("FROM_WORKER", "inherited")
    bucket = output_bucket()
    source = input_repo({"f.txt": b"1"})
    dump = """
        import json, os
        names = ["PACH_JOB_ID", "PACH_DATUM_ID", "LOXO_JOB", "LOXO_DATUM", "LOXO_PIPELINE",
                 "LOXO_OUTPUT_BUCKET", "images", "images_COMMIT", "images_BUCKET",
                 "AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY", "LOXO_SECRET_KEY",
                 "FROM_WORKER", "FROM_SPEC", "HADOOP_CONF_DIR"]
        env = {n: os.environ.get(n) for n in names}
        env["cwd"] = os.getcwd()
        env["images_exists"] = os.path.isfile(os.path.join(os.environ["images"], "f.txt"))
        json.dump(env, open("pfs/out/env.json", "w"))
    """
    the_lease = lease(python(dump), (source,), bucket, env={"FROM_SPEC": "spec", "LOXO_JOB": "x"})

    result, folder = run(the_lease, settings, tmp_path)

    assert result.outcome == "success", result
    env = json.loads(outputs(s3, bucket)["env.json"])
    assert env == {
        "PACH_JOB_ID": the_lease.job,
        "PACH_DATUM_ID": the_lease.datum,
        "LOXO_JOB": the_lease.job,  # loxo's variables win over the spec's
        "LOXO_DATUM": the_lease.datum,
        "LOXO_PIPELINE": "edges",
        "LOXO_OUTPUT_BUCKET": bucket,
        "images": str(folder / "pfs" / "images"),
        "images_COMMIT": source.commit,
        "images_BUCKET": None,  # S3 mode only
        "AWS_ENDPOINT_URL": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "LOXO_SECRET_KEY": None,  # the worker's keys are not handed to user code
        "FROM_WORKER": "inherited",
        "FROM_SPEC": "spec",
        "HADOOP_CONF_DIR": None,
        "cwd": str(folder),
        "images_exists": True,
    }


def test_non_zero_exit_fails_with_output_captured_and_nothing_uploaded(
    output_bucket: Any, settings: S3Settings, s3: Any, tmp_path: Path
) -> None:
    bucket = output_bucket()
    code = """
        import sys
        open("pfs/out/partial.txt", "w").write("half")
        print("some output")
        sys.stderr.write("boom: it broke")
        sys.exit(3)
    """
    result, _ = run(lease(python(code), (), bucket), settings, tmp_path)

    assert (result.outcome, result.exit_code) == ("failed", 3)
    assert result.stdout == "some output\n"
    assert result.stderr == "boom: it broke"
    assert "exited with 3" in result.error
    assert outputs(s3, bucket) == {}


def test_accept_return_code_counts_as_success(
    output_bucket: Any, settings: S3Settings, s3: Any, tmp_path: Path
) -> None:
    bucket = output_bucket()
    code = "import sys; open('pfs/out/ok', 'w').write('y'); sys.exit(3)"
    accepted = lease([PY, "-c", code], (), bucket, accept_return_code=[1, 3])
    result, _ = run(accepted, settings, tmp_path)
    assert (result.outcome, result.exit_code, result.error) == ("success", 3, "")
    assert outputs(s3, bucket) == {"ok": b"y"}

    refused = lease([PY, "-c", code], (), output_bucket(), accept_return_code=[4])
    assert run(refused, settings, tmp_path)[0].outcome == "failed"


def test_err_cmd_recovers_a_failed_datum(settings: S3Settings, tmp_path: Path) -> None:
    failing = [PY, "-c", "import sys; sys.exit(2)"]
    recovered = lease(
        failing, err_cmd=["bash"], err_stdin=["echo recovering $LOXO_PIPELINE", "exit 0"]
    )
    result, _ = run(recovered, settings, tmp_path)
    assert (result.outcome, result.exit_code) == ("recovered", 2)
    assert result.stdout == "recovering edges\n"

    still_failing = lease(failing, err_cmd=[PY, "-c", "import sys; sys.exit(1)"])
    result, _ = run(still_failing, settings, tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", 2)
    assert "err_cmd exited with 1" in result.error

    # err_cmd runs only when the command failed
    fine = lease([PY, "-c", "pass"], err_cmd=[PY, "-c", "print('never')"])
    result, _ = run(fine, settings, tmp_path)
    assert (result.outcome, result.stdout) == ("success", "")


def test_datum_timeout_kills_the_process_group(settings: S3Settings, tmp_path: Path) -> None:
    # The command starts a background child: the whole group must die.
    script = ["sleep 60 & echo $! > child.pid", "sleep 60"]
    slow = lease(["bash"], stdin=script, datum_timeout=1)

    started = time.monotonic()
    result, folder = run(slow, settings, tmp_path, keep=True)

    assert time.monotonic() - started < 15
    assert result.outcome == "failed"
    assert result.error == "timed out after 1 s"
    child = int((folder / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the background child outlived the datum"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (it only waits to be reaped by its parent).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_cancel_kills_a_running_command(settings: S3Settings, tmp_path: Path) -> None:
    attempt = Attempt(lease(["sleep", "60"]), tmp_path / "a", settings)
    results: list[Result] = []
    thread = threading.Thread(target=lambda: results.append(attempt.run()))
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    attempt.cancel()
    thread.join(10)

    assert not thread.is_alive() and time.monotonic() - started < 10
    assert results[0].cancelled and results[0].outcome == "failed"
    assert not (tmp_path / "a").exists()


def test_outputs_in_subfolders_symlinks_followed_empty_folders_ignored(
    output_bucket: Any, settings: S3Settings, s3: Any, tmp_path: Path
) -> None:
    bucket = output_bucket()
    script = [
        "mkdir -p /pfs/out/x/y/z /pfs/out/empty/inner",
        "echo deep > /pfs/out/x/y/z/deep.txt",
        "echo first > /pfs/out/x/first.txt",
        "printf real > real.txt",
        'ln -s "$PWD/real.txt" /pfs/out/link.txt',
    ]
    result, _ = run(lease(["bash"], (), bucket, stdin=script), settings, tmp_path)
    assert result.outcome == "success", result
    assert outputs(s3, bucket) == {
        "x/y/z/deep.txt": b"deep\n",
        "x/first.txt": b"first\n",
        "link.txt": b"real",
    }


def test_stdout_keeps_only_the_last_64_kib(settings: S3Settings, tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('a' * 300_000 + 'THE END'); sys.exit(1)"
    result, _ = run(lease([PY, "-c", code]), settings, tmp_path)
    assert len(result.stdout.encode()) == 64 * 1024
    assert result.stdout.endswith("aaaTHE END")


def test_missing_input_fails_the_attempt_before_the_command(
    input_repo: Any, settings: S3Settings, tmp_path: Path
) -> None:
    real = input_repo({"here.txt": b"1"})
    missing = LeaseInput(
        real.name, real.repo, real.branch, real.commit, "/*", False, real.bucket,
        (InputFile("not-there.txt", 1),),
    )  # fmt: skip
    result, _ = run(lease(["touch", "ran"], (missing,)), settings, tmp_path, keep=True)
    assert result.outcome == "failed"
    assert result.error.startswith("download: ") and "NoSuchKey" in result.error
    assert result.exit_code is None
    assert not (tmp_path / result.attempt / "ran").exists()


def test_a_command_that_cannot_start_fails(settings: S3Settings, tmp_path: Path) -> None:
    result, _ = run(lease(["/no/such/program"]), settings, tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", None)
    assert result.error.startswith("cannot run /no/such/program")


S3_MODE = """
    import json, os
    import boto3
    s3 = boto3.client("s3")  # endpoint, keys, region and addressing from the environment
    source = os.environ["images_BUCKET"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=source)["Contents"])
    for key in keys:
        body = s3.get_object(Bucket=source, Key=key)["Body"].read()
        s3.put_object(Bucket=os.environ["LOXO_OUTPUT_BUCKET"], Key="s3/" + key, Body=body[::-1])
    names = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION",
             "HADOOP_CONF_DIR", "SPARK_CONF_DIR"]
    with open("env.json", "w") as f:
        json.dump({n: os.environ.get(n) for n in names}, f)
    open("pfs/out/not-uploaded.txt", "w").write("s3_out writes through S3 only")
"""


def test_s3_mode_user_code_reads_and_writes_through_s3(
    input_repo: Any,
    output_bucket: Any,
    settings: S3Settings,
    server: Any,
    s3: Any,
    tmp_path: Path,
) -> None:
    files = input_repo({"a/one.txt": b"abc", "two.txt": b"xyz"})
    s3_input = LeaseInput(
        files.name, files.repo, files.branch, files.commit, "/*", True, files.bucket, files.files
    )
    bucket = output_bucket()
    the_lease = lease(python(S3_MODE), (s3_input,), bucket, s3_out=True)

    result, folder = run(the_lease, settings, tmp_path, keep=True)

    assert result.outcome == "success", result
    assert outputs(s3, bucket) == {"s3/a/one.txt": b"cba", "s3/two.txt": b"zyx"}
    assert list((folder / "pfs" / "images").iterdir()) == []  # S3 inputs are not downloaded
    conf = folder / "conf"
    assert json.loads((folder / "env.json").read_text()) == {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "HADOOP_CONF_DIR": str(conf),
        "SPARK_CONF_DIR": str(conf),
    }
    expected = {
        "fs.s3a.endpoint": server.endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.access.key": server.access_key,
        "fs.s3a.secret.key": server.secret_key,
        "fs.s3a.connection.ssl.enabled": "false",  # the test server speaks http
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    }
    root = ET.parse(conf / "core-site.xml").getroot()
    props = {p.findtext("name"): p.findtext("value") for p in root.iter("property")}
    assert expected.items() <= props.items()
    spark = dict(
        line.split(" ", 1) for line in (conf / "spark-defaults.conf").read_text().splitlines()
    )
    assert {f"spark.hadoop.{k}": v for k, v in expected.items()}.items() <= spark.items()


def test_a_local_replay_keeps_outputs_in_the_folder(
    input_repo: Any, settings: S3Settings, tmp_path: Path
) -> None:
    the_lease = lease(COPY_ARGS, (input_repo({"k/v.txt": b"v"}),))
    result, folder = run(the_lease, settings, tmp_path, keep=True)
    assert result.outcome == "success" and result.folder == folder
    assert (folder / "pfs" / "out" / "k" / "v.txt").read_bytes() == b"V"
    assert (folder / "pfs" / "images" / "k" / "v.txt").read_bytes() == b"v"


# -- the lease document ---------------------------------------------------------------

DOC: dict[str, Any] = {
    "attempt": "a1",
    "job": "j" * 32,
    "datum": "d" * 32,
    "pipeline": "edges",
    "version": 2,
    "try": 1,
    "datum_tries": 3,
    "transform": {
        "cmd": ["python3", "x.py"],
        "stdin": [],
        "env": {"A": "1"},
        "err_cmd": [],
        "err_stdin": [],
        "accept_return_code": [4],
    },
    "datum_timeout": 0,
    "inputs": [
        {
            "name": "images",
            "repo": "images",
            "branch": "main",
            "commit": "c" * 32,
            "path": "/a",
            "s3": False,
            "bucket": "images." + "c" * 32,
            "files": [{"key": "a/x.png", "size": 12}],
        }
    ],
    "output_bucket": "edges.0123",
    "s3_out": False,
}


def test_lease_parses_the_contracts_example_and_round_trips() -> None:
    inline = Lease.from_json(
        DOC
        | {"inline_outputs": {"file": 10, "total": 20}}
        | {"inputs": [{**DOC["inputs"][0], "files": [{"key": "k", "size": 1, "body": "eA=="}]}]}
    )
    assert inline.inline_outputs == (10, 20)
    assert inline.inputs[0].files == (InputFile("k", 1, b"x"),)
    assert Lease.from_json(inline.to_json()) == inline
    parsed = Lease.from_json(DOC)
    assert parsed.transform.accept_return_code == (4,)
    assert parsed.inputs[0].files == (InputFile("a/x.png", 12),)
    assert (parsed.try_, parsed.datum_tries, parsed.s3_mode) == (1, 3, False)
    assert Lease.from_json(parsed.to_json()) == parsed
    replay = {k: v for k, v in DOC.items() if k != "attempt"} | {"output_bucket": None}
    assert Lease.from_json(replay).output_bucket is None
    # An input branch with no commit yet: no commit, no bucket, no files.
    empty = {**DOC["inputs"][0], "commit": None, "bucket": None, "files": []}
    assert Lease.from_json(DOC | {"inputs": [empty]}).inputs[0].bucket == ""


def test_small_outputs_go_inline_within_both_limits(tmp_path: Path) -> None:
    sizes = {"a": 5, "b/c": 10, "d": 11, "e": 4, "f": 0}
    for key, size in sizes.items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x" * size)
    inline, rest = split_outputs(tmp_path, 10, 16)
    # In walk order (a folder's files, then its subfolders): d is over the
    # file limit, and b/c would pass the total (5 + 4 + 0 + 10 > 16).
    assert [(o.key, o.body) for o in inline] == [("a", b"x" * 5), ("e", b"x" * 4), ("f", b"")]
    assert [key for _, key in rest] == ["d", "b/c"]
    assert split_outputs(tmp_path, 0, 0)[0] == [InlineOutput("f", b"")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"job": None}, "job: missing"),
        ({"transform": {"cmd": []}}, "transform.cmd: empty"),
        ({"transform": {"cmd": "echo"}}, "transform.cmd: expected list"),
        ({"datum_timeout": -1}, "datum_timeout: negative"),
        ({"inputs": [{**DOC["inputs"][0], "files": [{"key": "../x"}]}]}, "files[0].key"),
        ({"inputs": [{**DOC["inputs"][0], "name": "out"}]}, "inputs[0].name"),
        ({"inputs": [DOC["inputs"][0], DOC["inputs"][0]]}, "two inputs share a name"),
        ({"version": True}, "version: expected a number"),
        ({"inputs": [{**DOC["inputs"][0], "bucket": None}]}, "inputs[0].bucket: missing"),
        (
            {"inputs": [{**DOC["inputs"][0], "files": [{"key": "a", "size": 1, "body": "%"}]}]},
            "files[0].body: not base64",
        ),
        (
            {"inputs": [{**DOC["inputs"][0], "files": [{"key": "a", "size": 2, "body": "eA=="}]}]},
            "files[0].body: 1 bytes, the file has 2",
        ),
        ({"inline_outputs": {"file": -1}}, "inline_outputs: expected"),
    ],
)
def test_malformed_leases_name_the_field(change: dict[str, Any], message: str) -> None:
    doc = {k: v for k, v in (DOC | change).items() if v is not None}
    with pytest.raises(LeaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Lease.from_json(doc)
