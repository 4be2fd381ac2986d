"""`POST /pipelines/plan`, `Client.plan_pipeline` and `loxo pipeline plan`
end to end, against the session's live server: files put over S3, specs
planned over the inputs' branch heads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client, LoxoError
from tests.conftest import LoxoServer
from tests.conftest import loxo_cli as loxo


def unique(prefix: str = "plan") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def api(server: LoxoServer) -> Iterator[Client]:
    with Client(server.endpoint, server.access_key or "", server.secret_key or "") as client:
        yield client


def make_repo(api: Client, s3: Any, files: dict[str, bytes]) -> str:
    name = unique()
    api.create_repo(name)
    for key, data in files.items():
        s3.put_object(Bucket=name, Key=key, Body=data)
    return name


def spec(input_: dict[str, Any], name: str = "planned") -> dict[str, Any]:
    return {"pipeline": {"name": name}, "input": input_, "transform": {"cmd": ["true"]}}


def pfs(repo: str, glob: str, **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


IMAGES = {"images/a.png": b"aaaa", "images/b.png": b"bb", "other/c.txt": b"c"}


@pytest.fixture(scope="module")
def images(api: Client, s3: Any) -> str:
    return make_repo(api, s3, IMAGES)


def test_glob_under_a_folder(api: Client, images: str) -> None:
    plan = api.plan_pipeline(spec(pfs(images, "/images/*")))
    assert [(d.decision, d.reason) for d in plan.datums] == [("run", "new")] * 2
    assert [[(i.path, i.files, i.bytes) for i in d.inputs] for d in plan.datums] == [
        [("/images/a.png", 1, 4)],
        [("/images/b.png", 1, 2)],
    ]
    head = api.get_branch(images, "main").head
    assert {i.commit for d in plan.datums for i in d.inputs} == {head}
    assert plan.totals == {"datums": 2, "run": 2, "skip": 0, "remove": 0}
    assert plan.pipeline == "planned"


def test_root_glob_is_one_datum(api: Client, images: str) -> None:
    plan = api.plan_pipeline(spec(pfs(images, "/")))
    assert [[(i.path, i.files, i.bytes) for i in d.inputs] for d in plan.datums] == [[("/", 3, 7)]]


def test_cross_is_the_product(api: Client, s3: Any, images: str) -> None:
    models = make_repo(api, s3, {"m1": b"1", "m2": b"2", "m3": b"3"})
    plan = api.plan_pipeline(spec({"cross": [pfs(images, "/images/*"), pfs(models, "/*")]}))
    assert len(plan.datums) == 6
    assert {tuple(i.path for i in d.inputs) for d in plan.datums} == {
        (a, m) for a in ("/images/a.png", "/images/b.png") for m in ("/m1", "/m2", "/m3")
    }
    assert len({d.id for d in plan.datums}) == 6


def test_join_matches_pairs(api: Client, s3: Any) -> None:
    left = make_repo(api, s3, {"a.csv": b"1", "b.csv": b"2", "c.csv": b"3"})
    right = make_repo(api, s3, {"a.json": b"1", "c.json": b"2", "d.json": b"3"})
    joined = {
        "join": [
            pfs(left, "/(*).csv", join_on="$1"),
            pfs(right, "/(*).json", join_on="$1"),
        ]
    }
    plan = api.plan_pipeline(spec(joined))
    assert [tuple(i.path for i in d.inputs) for d in plan.datums] == [
        ("/a.csv", "/a.json"),
        ("/c.csv", "/c.json"),
    ]


def test_missing_repo_names_the_field(api: Client, images: str) -> None:
    missing = unique("missing")
    with pytest.raises(LoxoError) as caught:
        api.plan_pipeline(spec({"cross": [pfs(images, "/*"), pfs(missing, "/*")]}))
    assert (caught.value.status, caught.value.code) == (404, "repo_not_found")
    assert caught.value.message == f"input.cross[1].pfs.repo: repo {missing!r} does not exist"
    with pytest.raises(LoxoError) as branch:
        api.plan_pipeline(spec(pfs(images, "/*", branch="dev")))
    assert (branch.value.status, branch.value.code) == (404, "branch_not_found")
    assert "input.pfs.branch" in branch.value.message


def test_bad_spec_is_invalid_spec_with_its_field(api: Client, images: str) -> None:
    with pytest.raises(LoxoError) as caught:
        api.plan_pipeline(spec(pfs(images, "images/*")))
    assert (caught.value.status, caught.value.code) == (400, "invalid_spec")
    assert caught.value.details["field"] == "input.pfs.glob"
    tick = {"cron": {"name": "tick", "spec": "@every 1m"}}
    with pytest.raises(LoxoError) as cron:
        api.plan_pipeline(spec({"cross": [pfs(images, "/*"), tick]}))
    assert (cron.value.code, cron.value.details["field"]) == ("invalid_spec", "input.cross[1].cron")
    with pytest.raises(LoxoError) as no_spec:
        api.request("POST", "/_loxo/api/v1/pipelines/plan", body={"spec": "not an object"})
    assert (no_spec.value.status, no_spec.value.code) == (400, "invalid_request")


# --------------------------------------------------------------------------- the CLI


def cli_env(server: LoxoServer, tmp_path: Path) -> dict[str, str]:
    return {
        "LOXO_CONFIG": str(tmp_path / "cfg.json"),
        "LOXO_ENDPOINT": server.endpoint,
        "LOXO_ACCESS_KEY": server.access_key or "",
        "LOXO_SECRET_KEY": server.secret_key or "",
    }


def test_cli_plan(server: LoxoServer, images: str, tmp_path: Path) -> None:
    env = cli_env(server, tmp_path)
    path = tmp_path / "edges.yaml"
    path.write_text(
        f"pipeline:\n  name: edges\ninput:\n  pfs: {{repo: {images}, glob: /images/*}}\n"
        "transform:\n  cmd: [python3, /edges.py]\n"
    )
    proc = loxo("pipeline", "plan", "-f", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    assert lines[0] == ["DECISION", "DATUM", "INPUTS", "REASON"]
    assert [(row[0], row[-1]) for row in lines[1:3]] == [("run", "new"), ("run", "new")]
    assert f"{images}:/images/a.png" in lines[1]
    assert proc.stdout.strip().endswith("2 datums: 2 to run, 0 skipped, 0 outputs to remove")

    proc = loxo("pipeline", "plan", "-f", str(path), "-o", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["totals"] == {"datums": 2, "run": 2, "skip": 0, "remove": 0}
    assert [d["inputs"][0]["path"] for d in doc["datums"]] == ["/images/a.png", "/images/b.png"]


def test_cli_refusals(server: LoxoServer, images: str, tmp_path: Path) -> None:
    env = cli_env(server, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"pipeline:\n  name: edges\ninput:\n  pfs: {{repo: {images}, glob: nope}}\n"
        "transform:\n  cmd: [sh]\n"
    )
    proc = loxo("pipeline", "plan", "-f", str(bad), env=env)
    assert proc.returncode == 2
    assert f"{bad}: input.pfs.glob:" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = loxo("pipeline", "plan", "-f", str(tmp_path / "absent.yaml"), env=env)
    assert proc.returncode == 2 and "cannot read" in proc.stderr

    missing = tmp_path / "missing.yaml"
    missing.write_text(
        "pipeline:\n  name: edges\ninput:\n  pfs: {repo: no-such-repo-x, glob: /*}\n"
        "transform:\n  cmd: [sh]\n"
    )
    proc = loxo("pipeline", "plan", "-f", str(missing), env=env)
    assert proc.returncode == 3, proc.stderr
    assert "input.pfs.repo: repo 'no-such-repo-x' does not exist" in proc.stderr

    cron = tmp_path / "cron.yaml"
    cron.write_text(
        "pipeline:\n  name: ticks\ninput:\n  cron: {name: tick, spec: '@every 1m'}\n"
        "transform:\n  cmd: [sh]\n"
    )
    proc = loxo("pipeline", "plan", "-f", str(cron), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "input.cron: cron inputs cannot be planned yet" in proc.stderr
