"""The DAG among pipelines (versioning/pipelines/dag.py): topological order,
missing input repos, output repos that collide with existing repos, cycles."""

from __future__ import annotations

from typing import Any

import pytest

from versioning.pipelines.dag import check_dag
from versioning.pipelines.spec import PipelineSpec, SpecError, parse_spec


def pipeline(name: str, *repos: str, cron: bool = False) -> PipelineSpec:
    inputs: list[dict[str, Any]] = [{"pfs": {"repo": r, "glob": "/*"}} for r in repos]
    if cron:
        inputs.append({"cron": {"name": "tick", "spec": "@every 1m"}})
    node = inputs[0] if len(inputs) == 1 else {"cross": inputs}
    return parse_spec({"pipeline": {"name": name}, "input": node, "transform": {"cmd": ["x"]}})


def dag(*specs: PipelineSpec) -> dict[str, PipelineSpec]:
    return {s.name: s for s in specs}


def test_order_puts_readers_after_writers() -> None:
    specs = dag(
        pipeline("montage", "images", "edges"),
        pipeline("edges", "images"),
        pipeline("report", "montage", "stats"),
        pipeline("stats", "edges"),
    )
    assert check_dag(specs, ["images"]) == ["edges", "montage", "stats", "report"]


def test_ties_are_broken_by_name() -> None:
    specs = dag(pipeline("ccc", "src"), pipeline("aaa", "src"), pipeline("bbb", "src"))
    assert check_dag(specs, ["src", "other"]) == ["aaa", "bbb", "ccc"]
    assert check_dag({}, ["src"]) == []


def test_cron_inputs_need_no_repo() -> None:
    assert check_dag(dag(pipeline("ticker", cron=True)), []) == ["ticker"]


def test_missing_input_repo_names_the_field() -> None:
    specs = dag(pipeline("edges", "images"), pipeline("montage", "images", "edgez"))
    with pytest.raises(SpecError) as caught:
        check_dag(specs, ["images"])
    assert caught.value.field == "input.cross[1].pfs.repo"
    assert caught.value.pipeline == "montage"
    assert "'edgez' does not exist" in caught.value.message


def test_output_colliding_with_a_repo() -> None:
    with pytest.raises(SpecError) as caught:
        check_dag(dag(pipeline("images", "raw")), ["raw", "images"])
    assert caught.value.field == "pipeline.name"
    assert caught.value.pipeline == "images"
    assert "already exists" in caught.value.message


def test_self_cycle() -> None:
    with pytest.raises(SpecError) as caught:
        check_dag(dag(pipeline("loop", "loop")), [])
    assert caught.value.field == "input.pfs.repo"
    assert "loop -> loop" in caught.value.message


def test_cycle_path_is_named() -> None:
    specs = dag(
        pipeline("aaa", "src", "ccc"),
        pipeline("bbb", "aaa"),
        pipeline("ccc", "bbb"),
        pipeline("ddd", "aaa"),
    )
    with pytest.raises(SpecError) as caught:
        check_dag(specs, ["src"])
    assert "aaa -> ccc -> bbb -> aaa" in caught.value.message
    assert caught.value.pipeline == "aaa"
    assert caught.value.field == "input.cross[1].pfs.repo"


def test_cycle_behind_a_healthy_pipeline() -> None:
    specs = dag(pipeline("head", "xxx"), pipeline("xxx", "yyy"), pipeline("yyy", "xxx"))
    with pytest.raises(SpecError, match="xxx -> yyy -> xxx"):
        check_dag(specs, [])
