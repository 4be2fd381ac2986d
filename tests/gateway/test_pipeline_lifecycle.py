"""Pipelines' lifecycle end to end, against the session's live server: the
Python client (control API) and `loxo pipeline` subprocesses. Jobs do not
run yet: these cover create (the output repo, an S3 bucket too), refused
specs and DAGs, versions and the salt, stop/start, and delete (the output
repo to the trash, or kept)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.client import Client, LoxoError
from tests.conftest import LoxoServer
from tests.gateway.test_client_cli import Cli, env_cli


def unique(prefix: str = "pl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec(name: str, *repos: str, glob: str = "/*", **extra: Any) -> dict[str, Any]:
    """A spec reading `repos` (crossed when more than one)."""
    inputs = [{"pfs": {"repo": r, "glob": glob}} for r in repos]
    return {
        "pipeline": {"name": name},
        "input": inputs[0] if len(inputs) == 1 else {"cross": inputs},
        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/* /pfs/out/"]},
        **extra,
    }


def refused(status: int, code: str, fn: Any, *args: Any, **kwargs: Any) -> LoxoError:
    with pytest.raises(LoxoError) as info:
        fn(*args, **kwargs)
    assert (info.value.status, info.value.code) == (status, code), info.value.message
    return info.value


@pytest.fixture(scope="module")
def loxo(server: LoxoServer) -> Iterator[Client]:
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as client:
        yield client


@pytest.fixture
def images(loxo: Client) -> str:
    name = unique("images")
    loxo.create_repo(name)
    return name


@pytest.fixture
def cli(server: LoxoServer, tmp_path: Path) -> Cli:
    return env_cli(server, tmp_path)


# --------------------------------------------------------------------------- the client


def test_create_makes_the_output_repo_and_inspect_tells_all(
    loxo: Client, s3: Any, images: str
) -> None:
    name = unique("edges")
    made = loxo.create_pipeline(spec(name, images))
    assert (made.name, made.state, made.version, made.reprocess) == (name, "running", 1, False)
    assert made.output_repo == name and made.input_repos == (images,)
    assert len(made.salt) == 32
    assert made.created is not None and made.updated == made.created
    # The canonical spec: defaults written out.
    assert made.spec["datum_tries"] == 3 and made.spec["input"]["pfs"]["name"] == images
    assert loxo.describe_repo(name).default_branch == "main"
    s3.put_object(Bucket=name, Key="k", Body=b"v")  # an S3 bucket like any repo
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    assert loxo.inspect_pipeline(name) == made
    assert name in [p.name for p in loxo.list_pipelines()]
    refused(409, "pipeline_exists", loxo.create_pipeline, spec(name, images))
    refused(404, "pipeline_not_found", loxo.inspect_pipeline, unique())


def test_refused_specs_name_the_field(loxo: Client, images: str) -> None:
    name = unique("bad")
    bad = spec(name, images, glob="no-slash")
    error = refused(400, "invalid_spec", loxo.create_pipeline, bad)
    assert error.details["field"] == "input.pfs.glob"
    error = refused(400, "invalid_spec", loxo.create_pipeline, {**spec(name, images), "x": 1})
    assert error.details["field"] == "x"
    missing = unique("nothing")
    error = refused(400, "invalid_spec", loxo.create_pipeline, spec(name, images, missing))
    assert error.details["field"] == "input.cross[1].pfs.repo"
    assert missing in error.message
    # A repo of that name exists: the output repo would collide.
    refused(409, "repo_exists", loxo.create_pipeline, spec(images, images))
    # Nothing was left behind by the refusals.
    refused(404, "pipeline_not_found", loxo.inspect_pipeline, name)
    refused(404, "repo_not_found", loxo.describe_repo, name)


def test_a_cycle_is_refused(loxo: Client, images: str) -> None:
    a, b = unique("a"), unique("b")
    loxo.create_pipeline(spec(a, images))
    loxo.create_pipeline(spec(b, a))  # b reads a's output
    error = refused(400, "invalid_spec", loxo.update_pipeline, a, spec(a, images, b))
    assert "cycle" in error.message and error.details["field"].startswith("input.")
    assert loxo.inspect_pipeline(a).version == 1
    # The spec's name must be the pipeline's.
    error = refused(400, "invalid_spec", loxo.update_pipeline, a, spec(b, images))
    assert error.details["field"] == "pipeline.name"
    z = unique("z")
    refused(404, "pipeline_not_found", loxo.update_pipeline, z, spec(z, images))


def test_update_keeps_the_salt_unless_reprocess(loxo: Client, images: str) -> None:
    name = unique("up")
    first = loxo.create_pipeline(spec(name, images))
    second = loxo.update_pipeline(name, spec(name, images, datum_tries=5))
    assert (second.version, second.salt, second.reprocess) == (2, first.salt, False)
    assert second.spec["datum_tries"] == 5 and second.created == first.created
    third = loxo.update_pipeline(name, spec(name, images), reprocess=True)
    assert (third.version, third.reprocess) == (3, True)
    assert third.salt != first.salt and len(third.salt) == 32
    assert loxo.inspect_pipeline(name) == third


def test_stop_and_start(loxo: Client, images: str) -> None:
    name = unique("ss")
    loxo.create_pipeline(spec(name, images))
    assert loxo.stop_pipeline(name).state == "stopped"
    assert loxo.inspect_pipeline(name).state == "stopped"
    # An update keeps the state.
    assert loxo.update_pipeline(name, spec(name, images)).state == "stopped"
    assert loxo.start_pipeline(name).state == "running"
    refused(404, "pipeline_not_found", loxo.stop_pipeline, unique())


def test_delete_trashes_the_output_repo_or_keeps_it(loxo: Client, s3: Any, images: str) -> None:
    trashed, kept = unique("gone"), unique("kept")
    for name in (trashed, kept):
        loxo.create_pipeline(spec(name, images))
        s3.put_object(Bucket=name, Key="out", Body=name.encode())
    refused(400, "confirmation_required", loxo.delete_pipeline, trashed)
    loxo.delete_pipeline(trashed, confirm=True)
    refused(404, "pipeline_not_found", loxo.inspect_pipeline, trashed)
    refused(404, "repo_not_found", loxo.describe_repo, trashed)
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=trashed)
    assert [e.name for e in loxo.list_trash(repo=trashed, kind="repo")] == [trashed]
    loxo.restore_repo(trashed)
    assert s3.get_object(Bucket=trashed, Key="out")["Body"].read() == trashed.encode()
    loxo.delete_pipeline(kept, keep_repo=True, confirm=True)
    refused(404, "pipeline_not_found", loxo.inspect_pipeline, kept)
    assert s3.get_object(Bucket=kept, Key="out")["Body"].read() == kept.encode()
    refused(404, "pipeline_not_found", loxo.delete_pipeline, kept, confirm=True)
    # The name is free for a pipeline again once its repo is gone.
    loxo.delete_repo(kept, confirm=True)
    assert loxo.create_pipeline(spec(kept, images)).version == 1


def test_a_dangling_downstream_pipeline_does_not_block_others(loxo: Client, images: str) -> None:
    up, down, later = unique("up"), unique("down"), unique("later")
    loxo.create_pipeline(spec(up, images))
    loxo.create_pipeline(spec(down, up))
    loxo.delete_pipeline(up, confirm=True)  # down now reads a repo in the trash
    assert loxo.create_pipeline(spec(later, images)).version == 1
    assert loxo.update_pipeline(later, spec(later, images)).version == 2
    # ...but a spec that reads the missing repo itself is refused.
    error = refused(400, "invalid_spec", loxo.update_pipeline, down, spec(down, up))
    assert error.details["field"] == "input.pfs.repo"


# --------------------------------------------------------------------------- the CLI


def test_cli_lifecycle(cli: Cli, tmp_path: Path, images: str, loxo: Client) -> None:
    name = unique("cli")
    path = tmp_path / "p.yaml"
    path.write_text(
        f"pipeline:\n  name: {name}\ninput:\n  pfs:\n    repo: {images}\n    glob: /*\n"
        "transform:\n  cmd: [sh, -c, 'cp -r /pfs/* /pfs/out/']\n"
    )
    assert (
        f"created pipeline {name} (version 1, running)"
        in cli("pipeline", "create", "-f", str(path)).stdout
    )
    cli("pipeline", "create", "-f", str(path), code=4)
    shown = cli.json("pipeline", "inspect", name)
    assert (shown["name"], shown["version"], shown["input_repos"]) == (name, 1, [images])
    table = cli("pipeline", "inspect", name).stdout
    assert f"salt:         {shown['salt']}" in table and f"output repo:  {name}" in table
    updated = cli.json("pipeline", "update", "-f", str(path))
    assert (updated["version"], updated["salt"]) == (2, shown["salt"])
    again = cli.json("pipeline", "update", "-f", str(path), "--reprocess")
    assert again["version"] == 3 and again["salt"] != shown["salt"]
    assert name in cli("pipeline", "list").stdout
    assert name in [p["name"] for p in cli.json("pipeline", "list")]
    assert cli.json("pipeline", "stop", name)["state"] == "stopped"
    assert "started pipeline" in cli("pipeline", "start", name).stdout
    cli("pipeline", "inspect", unique(), code=3)
    cli("pipeline", "delete", name, code=2)  # no --yes
    cli("pipeline", "delete", name, "--keep-repo", "--yes")
    assert loxo.describe_repo(name).name == name
    cli("pipeline", "delete", name, "--yes", code=3)


def test_cli_refusals_name_the_file_and_field(cli: Cli, tmp_path: Path, images: str) -> None:
    name = unique("clibad")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec(name, images, glob="nope")))
    proc = cli("pipeline", "create", "-f", str(bad), code=2)
    assert f"{bad}: input.pfs.glob:" in proc.stderr
    dangling = tmp_path / "dangling.json"
    missing = unique("missing")
    dangling.write_text(json.dumps(spec(name, missing)))
    proc = cli("pipeline", "create", "-f", str(dangling), code=2)
    assert f"{dangling}: input.pfs.repo:" in proc.stderr and missing in proc.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps(spec(unique("nope"), images)))
    cli("pipeline", "update", "-f", str(other), code=3)
