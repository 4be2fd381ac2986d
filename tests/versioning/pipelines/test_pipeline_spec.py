"""Pipeline specs (versioning/pipelines/spec.py): every refusal names its
field by dotted path; good specs with every field; defaults; JSON and YAML;
and a hypothesis property: to_json then parse_spec gives the same spec."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from versioning.pipelines.spec import (
    Cron,
    Cross,
    Egress,
    Gpu,
    Group,
    Join,
    ParallelismSpec,
    Pfs,
    ReprocessSpec,
    Resources,
    SchedulingSpec,
    SpecError,
    TaintEffect,
    Toleration,
    TolerationOperator,
    Transform,
    Union,
    check_cron,
    check_glob,
    format_duration,
    format_memory,
    iter_leaves,
    parse_duration,
    parse_memory,
    parse_spec,
    to_json,
)


def minimal(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "pipeline": {"name": "edges"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "transform": {"cmd": ["python3", "/edges.py"]},
    }
    spec.update(extra)
    return spec


def pfs(repo: str, glob: str = "/*", **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


FULL_YAML = """
pipeline:
  name: montage
description: Edges and originals side by side.
input:
  cross:
    - join:
        - pfs: {repo: images, glob: "/(*)-(*).png", join_on: "$1", outer_join: true}
        - pfs: {repo: labels, glob: "/(*).txt", join_on: "$1", name: tags}
    - group:
        - pfs: {repo: logs, branch: dev, glob: "/(*)/*.log", group_by: "$1", empty_files: true}
    - union:
        - pfs: {repo: extra-a, glob: "/**"}
        - pfs: {repo: extra-b, glob: "/[a-z]?.csv"}
    - pfs: {repo: models, glob: "/", s3: true}
    - cron: {name: tick, spec: "@every 30s", overwrite: true}
transform:
  image: pachyderm/opencv:1.0
  cmd: [sh]
  stdin: ["montage /pfs/images /pfs/out/m.png"]
  env: {B: "2", A: "1"}
  err_cmd: ["true"]
  accept_return_code: [1, 3]
parallelism_spec: {constant: 4}
datum_tries: 5
datum_timeout: 1m30s
job_timeout: 2h
resource_requests: {cpu: 0.5, memory: 512Mi}
resource_limits: {cpu: 2, memory: 2G, gpu: {type: nvidia.com/gpu, number: 1}}
s3_out: true
reprocess_spec: every_job
egress: {URL: "s3://bucket/out"}
output_branch: results
"""


def test_every_field_is_read() -> None:
    spec = parse_spec(FULL_YAML)
    assert spec.name == "montage"
    assert spec.description == "Edges and originals side by side."
    assert isinstance(spec.input, Cross)
    join, group, union, s3, cron = spec.input.inputs
    assert join == Join(
        (
            Pfs(repo="images", glob="/(*)-(*).png", name="images", join_on="$1", outer_join=True),
            Pfs(repo="labels", glob="/(*).txt", name="tags", join_on="$1"),
        )
    )
    assert group == Group(
        (
            Pfs(
                repo="logs",
                glob="/(*)/*.log",
                name="logs",
                branch="dev",
                group_by="$1",
                empty_files=True,
            ),
        )
    )
    assert union == Union(
        (
            Pfs(repo="extra-a", glob="/**", name="extra-a"),
            Pfs(repo="extra-b", glob="/[a-z]?.csv", name="extra-b"),
        )
    )
    assert s3 == Pfs(repo="models", glob="/", name="models", s3=True)
    assert cron == Cron(name="tick", spec="@every 30s", overwrite=True)
    assert spec.transform == Transform(
        cmd=("sh",),
        stdin=("montage /pfs/images /pfs/out/m.png",),
        env=(("A", "1"), ("B", "2")),
        image="pachyderm/opencv:1.0",
        err_cmd=("true",),
        accept_return_code=(1, 3),
    )
    assert spec.parallelism_spec == ParallelismSpec(4)
    assert spec.datum_tries == 5
    assert spec.datum_timeout == 90.0
    assert spec.job_timeout == 7200.0
    assert spec.resource_requests == Resources(cpu=0.5, memory=512 * 2**20)
    assert spec.resource_limits == Resources(
        cpu=2.0, memory=2 * 10**9, gpu=Gpu("nvidia.com/gpu", 1)
    )
    assert spec.s3_out is True
    assert spec.reprocess_spec is ReprocessSpec.EVERY_JOB
    assert spec.egress == Egress("s3://bucket/out")
    assert spec.output_branch == "results"
    assert parse_spec(to_json(spec)) == spec


def test_defaults() -> None:
    spec = parse_spec(minimal())
    assert spec.input == Pfs(repo="images", glob="/*", name="images", branch="main")
    assert spec.description == ""
    assert spec.datum_tries == 3
    assert spec.parallelism_spec.constant == 1
    assert spec.reprocess_spec is ReprocessSpec.UNTIL_SUCCESS
    assert spec.output_branch == "main"
    assert spec.datum_timeout is None and spec.job_timeout is None
    assert spec.resource_requests is None and spec.resource_limits is None
    assert spec.egress is None and spec.s3_out is False
    assert spec.transform == Transform(cmd=("python3", "/edges.py"))


def test_json_yaml_and_mapping_agree() -> None:
    data = minimal(datum_timeout="30s", transform={"cmd": ["a"], "env": {"X": "1"}})
    from_dict = parse_spec(data)
    assert parse_spec(json.dumps(data)) == from_dict
    assert parse_spec("  \n" + json.dumps(data, indent=2)) == from_dict
    assert parse_spec(yaml.safe_dump(data)) == from_dict


def test_canonical_json_is_stable_and_complete() -> None:
    doc = to_json(parse_spec(minimal()))
    assert list(doc) == [
        "pipeline",
        "description",
        "input",
        "transform",
        "parallelism_spec",
        "datum_tries",
        "s3_out",
        "reprocess_spec",
        "output_branch",
    ]
    assert doc["input"] == {
        "pfs": {
            "name": "images",
            "repo": "images",
            "branch": "main",
            "glob": "/*",
            "s3": False,
            "empty_files": False,
        }
    }
    full = to_json(parse_spec(FULL_YAML))
    assert full["datum_timeout"] == "1m30s" and full["job_timeout"] == "2h"
    assert full["resource_requests"] == {"cpu": 0.5, "memory": "512Mi"}
    assert full["resource_limits"]["memory"] == "2G"
    assert full["egress"] == {"URL": "s3://bucket/out"}
    assert full["transform"]["env"] == {"A": "1", "B": "2"}
    # The canonical form survives a JSON text round trip too.
    assert parse_spec(json.dumps(full)) == parse_spec(FULL_YAML)


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """minimal() with the dotted `path` set to value (None deletes it)."""
    spec = copy.deepcopy(base if base is not None else minimal())
    keys = path.split(".")
    node = spec
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return spec


def cross(*children: dict[str, Any]) -> dict[str, Any]:
    return {"cross": list(children)}


BAD: list[tuple[str, dict[str, Any] | str, str, str]] = [
    # (id, spec, field, a piece of the message)
    ("unknown top field", minimal(parallelism=2), "parallelism", "known fields here: pipeline"),
    ("unknown pfs field", _with("input.pfs.lazy", True), "input.pfs.lazy", "known fields"),
    (
        "unknown nested field",
        _with("input", cross(pfs("images"), pfs("labels", "/", globb="/"))),
        "input.cross[1].pfs.globb",
        "unknown field 'globb'",
    ),
    ("unknown transform field", _with("transform.secrets", []), "transform.secrets", "known"),
    ("no name", _with("pipeline", {}), "pipeline.name", "required"),
    ("no pipeline", _with("pipeline", None), "pipeline.name", "required"),
    ("name type", _with("pipeline.name", 7), "pipeline.name", "a string, not an integer"),
    ("name short", _with("pipeline.name", "ab"), "pipeline.name", "3 to 63"),
    ("name upper", _with("pipeline.name", "Edges"), "pipeline.name", "invalid repo name"),
    ("no input", _with("input", None), "input", "required"),
    ("no transform", _with("transform", None), "transform", "required"),
    ("input empty", _with("input", {}), "input", "exactly one of"),
    (
        "two kinds",
        _with("input", {**pfs("images"), "cron": {"name": "t", "spec": "@daily"}}),
        "input",
        "found pfs, cron",
    ),
    ("cross not list", _with("input", {"cross": {}}), "input.cross", "a list of inputs"),
    ("cross empty", _with("input", {"cross": []}), "input.cross", "at least one"),
    ("join empty", _with("input", {"join": []}), "input.join", "at least one"),
    ("no repo", _with("input.pfs.repo", None), "input.pfs.repo", "required"),
    ("bad repo", _with("input.pfs.repo", "Im_ages"), "input.pfs.repo", "invalid repo name"),
    ("no glob", _with("input.pfs.glob", None), "input.pfs.glob", "required"),
    ("relative glob", _with("input.pfs.glob", "*.png"), "input.pfs.glob", "must start with '/'"),
    (
        "bad glob deep",
        _with("input", cross(pfs("images"), {"union": [pfs("labels", "/[a-")]})),
        "input.cross[1].union[0].pfs.glob",
        "never closed",
    ),
    ("empty class", _with("input.pfs.glob", "/[]x"), "input.pfs.glob", "is empty"),
    ("unbalanced (", _with("input.pfs.glob", "/(*.png"), "input.pfs.glob", "never closed"),
    ("unbalanced )", _with("input.pfs.glob", "/*).png"), "input.pfs.glob", "closes no group"),
    ("alternatives", _with("input.pfs.glob", "/{a,b}"), "input.pfs.glob", "not supported"),
    ("stray ]", _with("input.pfs.glob", "/a]"), "input.pfs.glob", "is not supported"),
    ("bad branch", _with("input.pfs.branch", "Dev"), "input.pfs.branch", "branch"),
    ("bad input name", _with("input.pfs.name", "-x"), "input.pfs.name", "input name"),
    ("input named out", _with("input.pfs.name", "out"), "input.pfs.name", "/pfs/out"),
    (
        "duplicate input names",
        _with("input", cross(pfs("images"), pfs("images", "/"))),
        "input.cross[1].pfs.name",
        "used twice",
    ),
    (
        "duplicate with cron",
        _with(
            "input", cross(pfs("images", name="tick"), {"cron": {"name": "tick", "spec": "@daily"}})
        ),
        "input.cross[1].cron.name",
        "used twice",
    ),
    ("join_on outside join", _with("input.pfs.join_on", "$1"), "input.pfs.join_on", "join"),
    (
        "join_on in a group",
        _with("input", {"group": [pfs("images", "/(*)", join_on="$1")]}),
        "input.group[0].pfs.join_on",
        "only in an input of a join",
    ),
    (
        "group_by in a join",
        _with("input", {"join": [pfs("images", "/(*)", group_by="$1")]}),
        "input.join[0].pfs.group_by",
        "only in an input of a group",
    ),
    (
        "group_by in a cross in a group",
        _with("input", {"group": [cross(pfs("images", "/(*)", group_by="$1"))]}),
        "input.group[0].cross[0].pfs.group_by",
        "only in an input of a group",
    ),
    (
        "outer_join outside join",
        _with("input.pfs.outer_join", True),
        "input.pfs.outer_join",
        "join",
    ),
    (
        "join_on $3 of 2 groups",
        _with("input", {"join": [pfs("images", "/(*)-(*)", join_on="$1$3")]}),
        "input.join[0].pfs.join_on",
        "$3 refers to capture group 3, but the glob '/(*)-(*)' has 2",
    ),
    (
        "group_by $1 of none",
        _with("input", {"group": [pfs("images", "/*", group_by="$1")]}),
        "input.group[0].pfs.group_by",
        "has 0",
    ),
    ("s3 not bool", _with("input.pfs.s3", "yes"), "input.pfs.s3", "a boolean"),
    (
        "cron spec",
        _with("input", {"cron": {"name": "tick", "spec": "* * *"}}),
        "input.cron.spec",
        "5 fields",
    ),
    (
        "cron every",
        _with("input", {"cron": {"name": "tick", "spec": "@every x"}}),
        "input.cron.spec",
        "duration",
    ),
    ("cron no name", _with("input", {"cron": {"spec": "@daily"}}), "input.cron.name", "required"),
    ("cmd missing", _with("transform", {"image": "x"}), "transform.cmd", "required"),
    ("cmd empty", _with("transform.cmd", []), "transform.cmd", "non-empty"),
    (
        "cmd string",
        _with("transform.cmd", "python3 x.py"),
        "transform.cmd",
        "a list of strings, not a string",
    ),
    ("cmd item", _with("transform.cmd", ["sh", 1]), "transform.cmd[1]", "a string, not an integer"),
    ("stdin item", _with("transform.stdin", [None]), "transform.stdin[0]", "a string, not null"),
    ("env list", _with("transform.env", ["A=1"]), "transform.env", "a mapping"),
    ("env value", _with("transform.env", {"N": 1}), "transform.env.N", "a string"),
    (
        "codes",
        _with("transform.accept_return_code", [1, "2"]),
        "transform.accept_return_code[1]",
        "an integer",
    ),
    (
        "codes bool",
        _with("transform.accept_return_code", [True]),
        "transform.accept_return_code[0]",
        "an integer, not a boolean",
    ),
    (
        "parallelism 0",
        _with("parallelism_spec", {"constant": 0}),
        "parallelism_spec.constant",
        "at least 1",
    ),
    (
        "parallelism field",
        _with("parallelism_spec", {"coefficient": 1}),
        "parallelism_spec.coefficient",
        "known fields here: constant",
    ),
    ("datum_tries type", minimal(datum_tries="3"), "datum_tries", "an integer"),
    ("datum_tries 0", minimal(datum_tries=0), "datum_tries", "at least 1"),
    ("timeout number", minimal(datum_timeout=30), "datum_timeout", "a duration string"),
    ("timeout text", minimal(job_timeout="30 seconds"), "job_timeout", "not a duration"),
    ("timeout zero", minimal(job_timeout="0s"), "job_timeout", "positive"),
    ("cpu string", minimal(resource_requests={"cpu": "1"}), "resource_requests.cpu", "a number"),
    ("cpu negative", minimal(resource_limits={"cpu": -1}), "resource_limits.cpu", "positive"),
    (
        "memory",
        minimal(resource_limits={"memory": "2GB"}),
        "resource_limits.memory",
        "not a memory size",
    ),
    (
        "memory fraction",
        minimal(resource_limits={"memory": "0.5"}),
        "resource_limits.memory",
        "whole number",
    ),
    (
        "gpu number",
        minimal(resource_limits={"gpu": {"type": "g", "number": 0}}),
        "resource_limits.gpu.number",
        "at least 1",
    ),
    (
        "gpu type",
        minimal(resource_limits={"gpu": {"number": 1}}),
        "resource_limits.gpu.type",
        "required",
    ),
    (
        "disk",
        minimal(resource_limits={"disk": "1G"}),
        "resource_limits.disk",
        "known fields here: cpu, memory, gpu",
    ),
    (
        "node selector label",
        minimal(scheduling_spec={"node_selector": {"bad key!": "x"}}),
        "scheduling_spec.node_selector.bad key!",
        "not a Kubernetes label name",
    ),
    (
        "node selector value",
        minimal(scheduling_spec={"node_selector": {"disktype": 1}}),
        "scheduling_spec.node_selector.disktype",
        "a string",
    ),
    (
        "scheduling field",
        minimal(scheduling_spec={"nodeSelector": {}}),
        "scheduling_spec.nodeSelector",
        "known fields here: node_selector, priority_class_name",
    ),
    ("tolerations type", minimal(tolerations={"key": "a"}), "tolerations", "a list"),
    (
        "toleration operator",
        minimal(tolerations=[{"key": "a", "operator": "IN"}]),
        "tolerations[0].operator",
        "EXISTS or EQUAL",
    ),
    (
        "toleration effect",
        minimal(tolerations=[{"key": "a", "effect": "NoRun"}]),
        "tolerations[0].effect",
        "NO_SCHEDULE",
    ),
    (
        "toleration without key",
        minimal(tolerations=[{"value": "x"}]),
        "tolerations[0].key",
        "required unless operator is EXISTS",
    ),
    (
        "toleration seconds",
        minimal(tolerations=[{"key": "a", "effect": "NO_SCHEDULE", "toleration_seconds": 5}]),
        "tolerations[0].toleration_seconds",
        "only for effect NO_EXECUTE",
    ),
    ("reprocess", minimal(reprocess_spec="never"), "reprocess_spec", "until_success or every_job"),
    ("egress url key", minimal(egress={"url": "s3://b"}), "egress.url", "known fields here: URL"),
    ("egress not url", minimal(egress={"URL": "bucket"}), "egress.URL", "a URL"),
    ("output_branch", minimal(output_branch="Main"), "output_branch", "branch"),
    ("s3_out type", minimal(s3_out=1), "s3_out", "a boolean"),
    ("input not mapping", minimal(input=["x"]), "input", "a mapping, not a list"),
    ("document list", "- a\n- b\n", "", "a spec is a mapping"),
    ("bad yaml", "pipeline: {name: [\n", "", "not valid YAML"),
    ("bad json", '{"pipeline": ', "", "not valid JSON"),
]


@pytest.mark.parametrize(
    ("spec", "field", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_refused_with_field(spec: dict[str, Any] | str, field: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    assert caught.value.field == field, caught.value
    assert message in caught.value.message, caught.value


def test_error_text_names_source_field_and_pipeline() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with("input.pfs.glob", "x"), source="edges.yaml")
    exc = caught.value
    assert exc.source == "edges.yaml" and exc.pipeline == "edges"
    assert str(exc).startswith("edges.yaml: input.pfs.glob: glob 'x' must start")
    assert isinstance(exc, ValueError)


def test_yaml_types_are_checked_not_coerced() -> None:
    # YAML reads `yes` as true and `1.5` as a number: the spec still wants strings.
    with pytest.raises(SpecError) as caught:
        parse_spec(
            "pipeline: {name: edges}\ninput: {pfs: {repo: images, glob: /}}\n"
            "transform: {cmd: [sh], env: {DEBUG: yes}}\n"
        )
    assert caught.value.field == "transform.env.DEBUG"


@pytest.mark.parametrize(
    ("glob", "groups"),
    [
        ("/", 0),
        ("/*", 0),
        ("/**", 0),
        ("/*/?.csv", 0),
        ("/(*)", 1),
        ("/(*)-(*).png", 2),
        ("/((a)(b))", 3),
        ("/[!a-z]*", 0),
        ("/[\\]]", 0),
        ("/\\(x\\)", 0),
    ],
)
def test_check_glob_counts_groups(glob: str, groups: int) -> None:
    assert check_glob(glob) == groups


@pytest.mark.parametrize(
    "glob", ["", "*", "/[", "/[]", "/[!]", "/[]]", "/(", "/)", "/a]", "/x\\", "/[a\\]"]
)
def test_check_glob_refuses(glob: str) -> None:
    with pytest.raises(ValueError):
        check_glob(glob)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25), ("2m3s", 123), ("1us", 1e-6)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size", "canonical"),
    [
        ("2G", 2 * 10**9, "2G"),
        ("512Mi", 512 * 2**20, "512Mi"),
        ("1.5Gi", 3 * 2**29, "1536Mi"),
        ("1000", 1000, "1k"),
        ("1024", 1024, "1Ki"),
        ("7", 7, "7"),
    ],
)
def test_memory(text: str, size: int, canonical: str) -> None:
    assert parse_memory(text) == size
    assert format_memory(size) == canonical
    assert parse_memory(canonical) == size


@pytest.mark.parametrize("spec", ["*/10 * * * *", "0 3 * * MON-FRI", "@daily", "@every 1h30m"])
def test_cron_shapes(spec: str) -> None:
    check_cron(spec)


@pytest.mark.parametrize("spec", ["", "* * * *", "* * * * * *", "@often", "@every", "@every30s"])
def test_cron_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        check_cron(spec)


# ---------------------------------------------------------------------------- property

_names = st.from_regex(r"\A[a-z][a-z0-9-]{1,10}[a-z0-9]\Z")
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_globs = st.sampled_from(["/", "/*", "/**", "/*/*.csv", "/(*)", "/(*)-(*).png", "/[a-c]?/(*)"])


def _leaf(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "cron":
        return st.builds(
            lambda spec, overwrite: {"cron": {"name": "", "spec": spec, "overwrite": overwrite}},
            st.sampled_from(["*/5 * * * *", "@hourly", "@every 30s", "0 0 1 1 *"]),
            st.booleans(),
        )
    return st.builds(
        lambda repo, branch, glob, empty: {
            "pfs": {"repo": repo, "branch": branch, "glob": glob, "empty_files": empty}
        },
        _names,
        st.sampled_from(["main", "dev", "v2"]),
        _globs,
        st.booleans(),
    )


_inputs = st.recursive(
    st.one_of(_leaf("pfs"), _leaf("cron")),
    lambda children: st.builds(
        lambda kind, kids: {kind: kids},
        st.sampled_from(["cross", "union", "join", "group"]),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def _finish(node: dict[str, Any], parent: str, counter: list[int], draw_flag: bool) -> None:
    """Give every leaf a unique name and the keys its parent allows."""
    ((kind, body),) = node.items()
    if kind in ("cron", "pfs"):
        counter[0] += 1
        body["name"] = f"in-{counter[0]}"
        if kind == "pfs":
            groups = check_glob(body["glob"])
            if parent == "join" and groups:
                body["join_on"] = f"${groups}"
                body["outer_join"] = draw_flag
            if parent == "group" and groups:
                body["group_by"] = "$1"
        return
    for child in body:
        _finish(child, kind, counter, not draw_flag)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    root = draw(_inputs)
    _finish(root, "", [0], draw(st.booleans()))
    doc: dict[str, Any] = {
        "pipeline": {"name": draw(_names)},
        "input": root,
        "transform": {
            "cmd": draw(st.lists(_text, min_size=1, max_size=3)),
            "stdin": draw(st.lists(_text, max_size=2)),
            "env": draw(st.dictionaries(st.from_regex(r"\A[A-Z_]{1,5}\Z"), _text, max_size=3)),
            "image": draw(_text),
            "err_cmd": draw(st.lists(_text, max_size=2)),
            "accept_return_code": draw(st.lists(st.integers(-300, 300), max_size=3)),
        },
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "description": _text,
        "parallelism_spec": st.builds(lambda n: {"constant": n}, st.integers(1, 64)),
        "datum_tries": st.integers(1, 10),
        "datum_timeout": st.sampled_from(["30s", "1h30m", "250ms", "1.5h", "90m", "1ns"]),
        "job_timeout": st.integers(1, 10**6).map(lambda s: f"{s}s"),
        "resource_requests": st.fixed_dictionaries(
            {},
            optional={
                "cpu": st.floats(0.001, 64),
                "memory": st.sampled_from(["512Mi", "2G", "1.5Gi", "1000", "3k"]),
            },
        ),
        "resource_limits": st.fixed_dictionaries(
            {},
            optional={
                "cpu": st.integers(1, 64),
                "gpu": st.builds(
                    lambda n: {"type": "nvidia.com/gpu", "number": n}, st.integers(1, 8)
                ),
            },
        ),
        "s3_out": st.booleans(),
        "reprocess_spec": st.sampled_from(["until_success", "every_job"]),
        "egress": st.just({"URL": "s3://bucket/prefix"}),
        "output_branch": st.sampled_from(["main", "out", "results-2"]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    return doc


@settings(max_examples=150, deadline=None)
@given(specs())
def test_round_trip(doc: dict[str, Any]) -> None:
    spec = parse_spec(doc)
    canonical = to_json(spec)
    assert parse_spec(canonical) == spec
    assert to_json(parse_spec(canonical)) == canonical
    assert parse_spec(json.dumps(canonical)) == spec
    assert parse_spec(yaml.safe_dump(canonical)) == spec


@pytest.mark.parametrize(
    "input_",
    [
        pfs("images", "/*", s3=True),
        {"union": [pfs("images", "/a/*", s3=True), pfs("images", "/b/*", name="b")]},
        {
            "join": [
                pfs("images", "/(*)", s3=True, join_on="$1"),
                pfs("labels", "/(*)", join_on="$1"),
            ]
        },
    ],
    ids=["any glob", "in a union", "in a join"],
)
def test_s3_inputs_take_any_glob_and_combination(input_: dict[str, Any]) -> None:
    # Unlike Pachyderm: each datum's input bucket holds only that datum's files.
    spec = parse_spec(_with("input", input_))
    assert any(leaf.s3 for _, leaf in iter_leaves(spec.input) if isinstance(leaf, Pfs))


def test_scheduling_and_tolerations_read_pachyderm_and_kubernetes_spellings() -> None:
    """Pachyderm's scheduling_spec and tolerations (its enum names, or
    Kubernetes' spellings, kept as Pachyderm's), for the Kubernetes executor."""
    spec = parse_spec(
        minimal(
            scheduling_spec={
                "node_selector": {"nvidia.com/gpu.product": "Tesla-T4", "disktype": "ssd"},
                "priority_class_name": "batch-low",
            },
            tolerations=[
                {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
                {"operator": "EXISTS"},
                {"key": "spot", "effect": "NO_EXECUTE", "toleration_seconds": 60},
            ],
        )
    )
    assert spec.scheduling_spec == SchedulingSpec(
        (("disktype", "ssd"), ("nvidia.com/gpu.product", "Tesla-T4")), "batch-low"
    )
    assert spec.tolerations == (
        Toleration("gpu", TolerationOperator.EQUAL, "yes", TaintEffect.NO_SCHEDULE),
        Toleration("", TolerationOperator.EXISTS),
        Toleration("spot", effect=TaintEffect.NO_EXECUTE, toleration_seconds=60),
    )
    doc = to_json(spec)
    assert doc["tolerations"][0] == {
        "key": "gpu",
        "operator": "EQUAL",
        "value": "yes",
        "effect": "NO_SCHEDULE",
    }
    assert parse_spec(doc) == spec
    # Unset, they are not written: existing specs' canonical JSON is unchanged.
    bare = to_json(parse_spec(minimal()))
    assert "scheduling_spec" not in bare and "tolerations" not in bare
