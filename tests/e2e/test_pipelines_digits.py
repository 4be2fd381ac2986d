"""The acceptance test of loxo's pipelines: a three-stage DAG over
scikit-learn's bundled digits (no download), run by real worker processes
against a real server and PostgreSQL.

    images --preprocess (glob /*, files mode)--> preprocess
           --train (glob /, s3 input + s3_out, boto3)--> train (model.joblib)
    train x preprocess --evaluate (files mode)--> evaluate (metrics.json)

What it proves, in order on one server (each test starts from the state the
previous one left and checks only what changed):

- the DAG runs to the end (`loxo wait` semantics), the model exists and
  scores > 0.8 on held-out images;
- lineage: provenance of the model names every preprocessed file and, through
  them, every input image (repo@commit:path) with pipeline versions;
  subvenance of one image names its preprocessed file, the model and the
  metrics; every output object's S3 HEAD carries x-amz-meta-loxo-*;
- exact incrementality: one new image runs exactly one preprocess datum;
- a code fix after a failure: the failed job leaves the output branch where it
  was, its stderr is in the logs, tries == datum_tries; the fixed version runs
  only the failed datum and reuses the other one, and `wait` on the input
  commit then reports the fixed job (the newest covering it) and follows it
  downstream;
- a deleted image removes exactly its output; putting the same bytes back
  reuses the older result ("unchanged since an older job");
- refused specs name their field (unknown field, bad glob, a glob with
  Pachyderm's `{a,b}` alternatives, missing repo, cycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import LoxoServer
from pipeline_helpers import (
    commit_files,
    control,
    datums,
    head,
    job_logs,
    job_of,
    jobs_in,
    keys,
    objects,
    poll,
    python_cmd,
    wait_done,
    wait_job,
    walk_provenance,
    walk_subvenance,
    write_script,
)

from gateway.client import Client, LoxoError

pytestmark = pytest.mark.slow

N_IMAGES = 200  # of sklearn's 1797; every 5th is held out for evaluation

PREPROCESS = """
    \"\"\"Normalise each digit image (8x8, values 0..16) to [0, 1]: one output per input.\"\"\"
    import sys
    from pathlib import Path

    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    for image in sorted(source.rglob("*.csv")):
        label, pixels = image.read_text().split()
        values = [PARSE(v) / 16.0 for v in pixels.split(",")]
        assert len(values) == 64 and all(0.0 <= v <= 1.0 for v in values), image.name
        text = ",".join(f"{v:.6f}" for v in values)
        (out / image.name).write_text(f"{label}\\n{text}\\n")
"""

TRAIN = """
    \"\"\"Fit a classifier on every preprocessed image, read through S3 (the datum's
    input bucket); write the model to the output bucket through S3.\"\"\"
    import io
    import json
    import os

    import boto3
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    s3 = boto3.client("s3")  # endpoint, keys, region and path-style all from the env
    bucket, out = os.environ["preprocess_BUCKET"], os.environ["LOXO_OUTPUT_BUCKET"]
    names = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    X, y = [], []
    for key in names:
        if int(key[4:8]) % 5 == 0:  # held out for evaluate
            continue
        label, pixels = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().split()
        X.append([float(v) for v in pixels.split(",")])
        y.append(int(label))
    model = LogisticRegression(max_iter=2000).fit(np.array(X), np.array(y))
    buf = io.BytesIO()
    joblib.dump(model, buf)
    s3.put_object(Bucket=out, Key="model.joblib", Body=buf.getvalue())
    summary = {"listed": len(names), "trained_on": len(y)}
    s3.put_object(Bucket=out, Key="summary.json", Body=json.dumps(summary).encode())
"""

EVALUATE = """
    \"\"\"Score the model on the held-out preprocessed images: metrics.json.\"\"\"
    import json
    import sys
    from pathlib import Path

    import joblib
    import numpy as np

    model_dir, images, out = (Path(a) for a in sys.argv[1:4])
    model = joblib.load(model_dir / "model.joblib")
    X, y = [], []
    for image in sorted(images.glob("img-*.csv")):
        if int(image.name[4:8]) % 5:
            continue
        label, pixels = image.read_text().split()
        X.append([float(v) for v in pixels.split(",")])
        y.append(int(label))
    accuracy = float((model.predict(np.array(X)) == np.array(y)).mean())
    (out / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "n_test": len(y)}))
"""


def image_bytes(label: int, pixels: list[str]) -> bytes:
    return f"{label}\n{','.join(pixels)}\n".encode()


def digits_files(count: int) -> dict[str, bytes]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return {
        f"img-{i:04d}.csv": image_bytes(int(data.target[i]), [str(int(v)) for v in data.data[i]])
        for i in range(count)
    }


@dataclass
class Digits:
    server: LoxoServer
    loxo: Client
    s3: Any
    scripts: Path
    images: dict[str, bytes]  # what images@main holds now
    specs: dict[str, dict[str, Any]]
    first_status: dict[str, Any] = field(default_factory=dict)
    # (images commit, failed job, fixed job) of the code-fix test
    fixed: tuple[str, str, str] | None = None

    def preprocess_spec(self, parse: str, version_tag: str) -> dict[str, Any]:
        script = write_script(
            self.scripts,
            f"preprocess_{version_tag}.py",
            PREPROCESS.replace("PARSE", parse),
        )
        return {
            "pipeline": {"name": "preprocess"},
            "input": {"pfs": {"repo": "images", "glob": "/*"}},
            "transform": {"cmd": python_cmd(script, "/pfs/images", "/pfs/out")},
        }


@pytest.fixture(scope="module")
def digits(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[], str]
) -> Iterator[Digits]:
    """The DAG created over N_IMAGES images, its first run finished."""
    work = tmp_path_factory.mktemp("digits")
    server = LoxoServer(extra_args=["--workers", "2"]).start(work / "data", fresh_database())
    loxo = control(server)
    try:
        s3 = server.client()
        d = Digits(server, loxo, s3, work / "scripts", digits_files(N_IMAGES), {})
        loxo.create_repo("images")
        first = commit_files(loxo, s3, "images", d.images)
        d.specs["preprocess"] = d.preprocess_spec("float", "v1")
        d.specs["train"] = {
            "pipeline": {"name": "train"},
            "input": {"pfs": {"repo": "preprocess", "glob": "/", "s3": True}},
            "transform": {"cmd": python_cmd(write_script(d.scripts, "train.py", TRAIN))},
            "s3_out": True,
        }
        evaluate = write_script(d.scripts, "evaluate.py", EVALUATE)
        d.specs["evaluate"] = {
            "pipeline": {"name": "evaluate"},
            "input": {
                "cross": [
                    {"pfs": {"repo": "train", "glob": "/"}},
                    {"pfs": {"repo": "preprocess", "glob": "/"}},
                ]
            },
            "transform": {"cmd": python_cmd(evaluate, "/pfs/train", "/pfs/preprocess", "/pfs/out")},
        }
        for name in ("preprocess", "train", "evaluate"):
            loxo.create_pipeline(d.specs[name])
        d.first_status = wait_done(loxo, "images", first, timeout=150)
        yield d
    finally:
        loxo.close()
        server.stop()


def check_evaluate(d: Digits, status: dict[str, Any]) -> None:
    """evaluate's jobs all succeeded, and its newest read the newest model
    and preprocessed images; the metrics are good."""
    assert {j["state"] for j in jobs_in(status, "evaluate")} == {"success"}, status
    newest = next(d.loxo.list_jobs("evaluate"))
    assert newest["id"] == jobs_in(status, "evaluate")[-1]["job"]
    read = {i["repo"]: i["commit"] for i in newest["inputs"]}
    assert read == {"train": head(d.loxo, "train"), "preprocess": head(d.loxo, "preprocess")}
    m = metrics(d)
    assert m["n_test"] >= N_IMAGES // 5 and m["accuracy"] > 0.8, m


def metrics(d: Digits) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        d.s3.get_object(Bucket="evaluate", Key="metrics.json")["Body"].read()
    )
    return doc


# --------------------------------------------------------------------------- first run


def test_the_dag_runs_and_the_model_scores(digits: Digits) -> None:
    d = digits
    status = d.first_status
    assert job_of(status, "preprocess")["datums"]["success"] == N_IMAGES, status
    assert job_of(status, "train")["datums"]["success"] == 1, status
    assert {j["state"] for j in status["jobs"]} == {"success"}, status
    check_evaluate(d, status)
    out = keys(d.s3, "preprocess")
    assert out == sorted(d.images), "one output per image, named like it"
    first = d.s3.get_object(Bucket="preprocess", Key="img-0000.csv")["Body"].read().split()
    raw = d.images["img-0000.csv"].split()
    assert first[0] == raw[0], "the label is kept"
    values = [float(v) for v in first[1].split(b",")]
    assert values == [int(v) / 16 for v in raw[1].split(b",")]
    summary_doc = json.loads(d.s3.get_object(Bucket="train", Key="summary.json")["Body"].read())
    assert summary_doc == {"listed": N_IMAGES, "trained_on": N_IMAGES - N_IMAGES // 5}
    model = d.s3.head_object(Bucket="train", Key="model.joblib")
    assert model["ContentLength"] > 1000
    m = metrics(d)
    assert m["n_test"] == N_IMAGES // 5 and m["accuracy"] > 0.8, m
    jobs = {j["name"]: j for j in d.loxo.dag()["pipelines"]}
    assert {n: j["last_job"]["state"] for n, j in jobs.items()} == dict.fromkeys(
        ("preprocess", "train", "evaluate"), "success"
    )


# --------------------------------------------------------------------------- lineage


def test_provenance_of_the_model_reaches_every_image(digits: Digits) -> None:
    d = digits
    images_head = head(d.loxo, "images")
    pre_head = head(d.loxo, "preprocess")
    tree = d.loxo.provenance("train", "model.joblib")
    producer = tree["producer"]
    assert (producer["pipeline"], producer["version"]) == ("train", 1)
    direct = {(i["repo"], i["commit"], i["path"]) for i in tree["inputs"]}
    assert direct == {("preprocess", pre_head, k) for k in d.images}
    sources: set[tuple[str, str, str]] = set()
    pipelines: set[tuple[str, int]] = set()
    for node in walk_provenance(tree):
        pipelines.add((node["producer"]["pipeline"], node["producer"]["version"]))
        for child in node["inputs"]:
            if child["repo"] == "images":
                sources.add((child["repo"], child["commit"], child["path"]))
    assert sources == {("images", images_head, k) for k in d.images}
    assert pipelines == {("train", 1), ("preprocess", 1)}
    # Every preprocessed file has its own producer: its datum read exactly one image.
    for child in tree["inputs"][:5]:
        up = child["provenance"]
        assert up["producer"]["pipeline"] == "preprocess"
        assert [(i["repo"], i["path"]) for i in up["inputs"]] == [("images", child["path"])]


def test_subvenance_of_one_image_reaches_the_model_and_metrics(digits: Digits) -> None:
    d = digits
    answer = d.loxo.subvenance("images", "img-0042.csv")
    derived = {(x["repo"], x["path"], x["pipeline"]) for x in walk_subvenance(answer["derived"])}
    assert ("preprocess", "img-0042.csv", "preprocess") in derived
    assert ("train", "model.joblib", "train") in derived
    assert ("evaluate", "metrics.json", "evaluate") in derived
    # Nothing of another image's preprocessing.
    pre = {p for r, p, _ in derived if r == "preprocess"}
    assert pre == {"img-0042.csv"}, pre


def test_every_output_object_names_its_producer_in_s3_metadata(digits: Digits) -> None:
    d = digits
    images_head = head(d.loxo, "images")
    for bucket, key, pipeline in (
        ("preprocess", "img-0007.csv", "preprocess"),
        ("train", "model.joblib", "train"),
        ("evaluate", "metrics.json", "evaluate"),
    ):
        meta = d.s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        job = d.loxo.inspect_job(meta["loxo-job"])
        assert meta["loxo-pipeline"] == f"{pipeline}@1" and job["pipeline"] == pipeline
        assert job["output_commit"] == head(d.loxo, bucket)
        datum = d.loxo.inspect_datum(meta["loxo-job"], meta["loxo-datum"])
        assert datum["state"] == "success"
        inputs = meta["loxo-inputs"].split(",")
        assert inputs == [f"{i['repo']}@{i['commit']}" for i in datum["inputs"]]
        if pipeline == "preprocess":
            assert inputs == [f"images@{images_head}"]
            assert [i["path"] for i in datum["inputs"]] == ["/img-0007.csv"]


# --------------------------------------------------------------------------- incrementality


def test_one_new_image_runs_exactly_one_preprocess_datum(digits: Digits) -> None:
    d = digits
    before = objects(d.s3, "preprocess")
    name = f"img-{N_IMAGES:04d}.csv"
    new = {name: digits_files(N_IMAGES + 1)[name]}
    commit = commit_files(d.loxo, d.s3, "images", new)
    d.images.update(new)
    status = wait_done(d.loxo, "images", commit)
    pre = job_of(status, "preprocess")
    assert pre["state"] == "success"
    counts = {k: v for k, v in pre["datums"].items() if v}
    assert counts == {"success": 1, "unchanged": N_IMAGES, "total": N_IMAGES + 1}, pre
    ran = datums(d.loxo, pre["job"])
    assert [(x["state"], x["reason"], x["inputs"][0]["path"]) for x in ran] == [
        ("success", "new", f"/{name}")
    ]
    after = objects(d.s3, "preprocess")
    assert set(after) - set(before) == {name}
    assert {k: v for k, v in after.items() if k in before} == before, "the rest unchanged"
    train = job_of(status, "train")
    assert (train["state"], train["datums"]["success"]) == ("success", 1), status
    summary = json.loads(d.s3.get_object(Bucket="train", Key="summary.json")["Body"].read())
    assert summary["listed"] == N_IMAGES + 1, "train saw the new image"
    check_evaluate(d, status)


def test_a_code_fix_after_a_failure_runs_only_the_failed_datum(digits: Digits) -> None:
    d = digits
    # v2 parses pixels as int: fine for the digits, wrong for a float-valued scan.
    d.loxo.update_pipeline("preprocess", d.preprocess_spec("int", "v2"))
    pre_head, train_head = head(d.loxo, "preprocess"), head(d.loxo, "train")
    pre_before = objects(d.s3, "preprocess")
    data = digits_files(N_IMAGES + 3)
    good, odd = f"img-{N_IMAGES + 1:04d}.csv", f"img-{N_IMAGES + 2:04d}.csv"
    ok = {good: data[good]}
    label, pixels = data[odd].decode().split()
    scan = {odd: image_bytes(int(label), [f"{v}.0" for v in pixels.split(",")])}
    commit = commit_files(d.loxo, d.s3, "images", {**ok, **scan})
    d.images.update({**ok, **scan})
    status = wait_done(d.loxo, "images", commit)
    failed_job = job_of(status, "preprocess")
    assert failed_job["state"] == "failure", status
    assert (failed_job["datums"]["success"], failed_job["datums"]["failed"]) == (1, 1)
    assert [j["pipeline"] for j in status["jobs"]] == ["preprocess"], "nothing downstream ran"
    assert head(d.loxo, "preprocess") == pre_head, "a failed job does not move its branch"
    assert head(d.loxo, "train") == train_head
    assert objects(d.s3, "preprocess") == pre_before
    bad = datums(d.loxo, failed_job["job"], "failed")
    assert len(bad) == 1 and bad[0]["inputs"][0]["path"] == f"/{odd}"
    spec_tries = d.loxo.inspect_pipeline("preprocess").spec["datum_tries"]
    assert bad[0]["tries"] == spec_tries == 3
    job = d.loxo.inspect_job(failed_job["job"])
    assert job["state"] == "failure" and bad[0]["id"][:12] in job["reason"]
    stderr = [x for x in job_logs(d.loxo, failed_job["job"]) if x["stream"] == "stderr"]
    assert {x["try"] for x in stderr} == {1, 2, 3}, stderr
    assert all("invalid literal for int()" in x["text"] for x in stderr), stderr[0]["text"]
    assert all(x["datum"] == bad[0]["id"] for x in stderr)

    # The fix: a new version, same salt. Only the failed datum runs; the one
    # that succeeded in the failed job is reused.
    d.loxo.update_pipeline("preprocess", d.preprocess_spec("float", "v3"))
    fixed = d.loxo.inspect_pipeline("preprocess").version

    def fix_job() -> dict[str, Any] | None:
        jobs = list(d.loxo.list_jobs("preprocess"))
        return jobs[0] if jobs[0]["version"] == fixed else None

    fix = wait_job(d.loxo, poll(fix_job, 30, "the fixed version's job")["id"])
    assert fix["state"] == "success", fix
    assert fix["output_commit"] == head(d.loxo, "preprocess") != pre_head
    d.fixed = (commit, failed_job["job"], fix["id"])
    status = wait_done(d.loxo, "preprocess", fix["output_commit"])
    rows = {(x["state"], x["reason"], x["inputs"][0]["path"]) for x in datums(d.loxo, fix["id"])}
    assert rows == {
        ("success", "failed last time", f"/{odd}"),
        ("skipped", "unchanged since an older job", f"/{good}"),
    }, rows
    after = objects(d.s3, "preprocess")
    assert set(after) - set(pre_before) == {good, odd}
    assert {k: v for k, v in after.items() if k in pre_before} == pre_before
    assert after[odd].split()[0] == label.encode()
    assert job_of(status, "train")["state"] == "success"
    check_evaluate(d, status)


def test_wait_after_a_fix_reports_the_fixed_job(digits: Digits) -> None:
    d = digits
    assert d.fixed, "runs after test_a_code_fix_after_a_failure_runs_only_the_failed_datum"
    commit, failed, fixed = d.fixed
    status = wait_done(d.loxo, "images", commit)
    assert job_of(status, "preprocess")["job"] == fixed, (failed, status)
    assert jobs_in(status, "train"), status


def test_a_deleted_image_removes_exactly_its_output_and_coming_back_reuses_it(
    digits: Digits,
) -> None:
    d = digits
    pre_head = head(d.loxo, "preprocess")
    assert pre_head is not None
    gone = "img-0123.csv"
    before = objects(d.s3, "preprocess")
    kept_output = before[gone]
    commit = commit_files(d.loxo, d.s3, "images", {gone: None})
    status = wait_done(d.loxo, "images", commit)
    pre = job_of(status, "preprocess")
    assert pre["state"] == "success" and pre["datums"]["success"] == 0, pre
    assert d.loxo.inspect_job(pre["job"])["plan"]["removed"] == 1
    new_head = head(d.loxo, "preprocess")
    assert new_head is not None and new_head != pre_head
    changes = [(c.path, c.change) for c in d.loxo.diff("preprocess", pre_head, new_head)]
    assert changes == [(gone, "deleted")], changes
    assert gone not in keys(d.s3, "preprocess")
    assert job_of(status, "train")["state"] == "success"
    summary = json.loads(d.s3.get_object(Bucket="train", Key="summary.json")["Body"].read())
    assert summary["listed"] == len(d.images) - 1

    # The same bytes back: the older result is reused, nothing runs.
    back = commit_files(d.loxo, d.s3, "images", {gone: d.images[gone]})
    status = wait_done(d.loxo, "images", back)
    pre = job_of(status, "preprocess")
    assert pre["state"] == "success" and pre["datums"]["success"] == 0, pre
    rows = [(x["state"], x["reason"], x["inputs"][0]["path"]) for x in datums(d.loxo, pre["job"])]
    assert rows == [("skipped", "unchanged since an older job", f"/{gone}")]
    assert d.s3.get_object(Bucket="preprocess", Key=gone)["Body"].read() == kept_output
    restored = head(d.loxo, "preprocess")
    assert restored is not None
    # Same bytes; only the object's producer stamp (loxo-job) names the new job.
    changes = [c.path for c in d.loxo.diff("preprocess", pre_head, restored)]
    assert changes in ([], [gone]), changes
    assert objects(d.s3, "preprocess") == before
    # train's input is the same content as two jobs ago: its model is reused too.
    train = job_of(status, "train")
    assert train["state"] == "success" and train["datums"]["success"] == 0, train
    check_evaluate(d, status)
    assert [x["state"] for x in datums(d.loxo, train["job"])] == ["skipped"]


# --------------------------------------------------------------------------- bad specs


def _refused(loxo: Client, spec: dict[str, Any], update: str | None = None) -> LoxoError:
    with pytest.raises(LoxoError) as info:
        if update is None:
            loxo.create_pipeline(spec)
        else:
            loxo.update_pipeline(update, spec)
    assert info.value.code == "invalid_spec", info.value
    return info.value


def test_bad_specs_name_their_field(digits: Digits) -> None:
    loxo = digits.loxo
    cmd = {"cmd": ["true"]}
    good: dict[str, Any] = {
        "pipeline": {"name": "extra"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "transform": cmd,
    }
    err = _refused(loxo, {**good, "parallelism": 2})
    assert err.details["field"] == "parallelism" and "unknown field" in err.message
    err = _refused(loxo, {**good, "input": {"pfs": {"repo": "images", "glob": "/a]"}}})
    assert err.details["field"] == "input.pfs.glob" and "/a]" in err.message
    err = _refused(loxo, {**good, "input": {"pfs": {"glob": "/*"}}})
    assert err.details["field"] == "input.pfs.repo" and "required" in err.message
    err = _refused(loxo, {**good, "input": {"pfs": {"repo": "no-such-repo", "glob": "/*"}}})
    assert err.details["field"] == "input.pfs.repo" and "no-such-repo" in err.message
    # A cycle: preprocess reading evaluate, which (through train) reads preprocess.
    cyclic = {**digits.specs["preprocess"], "input": {"pfs": {"repo": "evaluate", "glob": "/"}}}
    err = _refused(loxo, cyclic, update="preprocess")
    assert err.details["field"].endswith("pfs.repo"), err.details
    assert "cycle" in err.message and "preprocess -> evaluate" in err.message, err.message
    assert loxo.inspect_pipeline("preprocess").spec["input"]["pfs"]["repo"] == "images"
    err = _refused(loxo, {**good, "input": {"pfs": {"repo": "extra", "glob": "/"}}})
    assert err.details["field"] == "input.pfs.repo", err.details
    assert "cycle" in err.message and "extra -> extra" in err.message, err.message
    assert "extra" not in {p.name for p in loxo.list_pipelines()}


def test_a_glob_with_alternatives_is_refused_at_create(digits: Digits) -> None:
    loxo = digits.loxo
    spec = {
        "pipeline": {"name": "alternatives"},
        "input": {"pfs": {"repo": "images", "glob": "/{a,b}"}},
        "transform": {"cmd": ["true"]},
    }
    try:
        err = _refused(loxo, spec)
    finally:
        if "alternatives" in {p.name for p in loxo.list_pipelines()}:
            loxo.delete_pipeline("alternatives", confirm=True)
    assert err.details["field"] == "input.pfs.glob"
