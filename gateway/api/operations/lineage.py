"""Control API: lineage and progress. File-level provenance and subvenance,
whether everything downstream of a commit has finished (`loxo wait`), and the
DAG of pipelines."""

from __future__ import annotations

from typing import Any

from gateway.api.errors import bad_request
from gateway.api.table import Call, Param, op
from versioning.control import Control

_FILE = (
    Param("repo", "query", "the repo", True),
    Param("ref", "query", "a branch, tag or commit (default: the default branch)"),
    Param("path", "query", "the object's key", True),
)


def _need(call: Call, name: str) -> str:
    value = call.q(name)
    if not value:
        raise bad_request(f"the query needs {name!r}")
    return value


@op(
    "GET",
    "/provenance",
    "The exact input files (repo@commit:path) that produced an output file, up the DAG",
    params=_FILE,
    returns="Provenance",
)
async def provenance(ctl: Control, call: Call) -> Any:
    repo = _need(call, "repo")
    commit = await ctl.resolve(repo, call.q("ref"))
    return await ctl.lineage.provenance(repo, commit, _need(call, "path"))


@op(
    "GET",
    "/subvenance",
    "Every output file derived from an input file, down the DAG",
    params=_FILE,
    returns="Subvenance",
)
async def subvenance(ctl: Control, call: Call) -> Any:
    repo = _need(call, "repo")
    commit = await ctl.resolve(repo, call.q("ref"))
    return await ctl.lineage.subvenance(repo, commit, _need(call, "path"))


@op(
    "GET",
    "/wait",
    "Whether every job downstream of repo@commit has finished, with datum counts",
    params=(
        Param("repo", "query", "the repo", True),
        Param("commit", "query", "a commit (or any ref) of the repo", True),
    ),
    returns="WaitStatus",
)
async def wait_status(ctl: Control, call: Call) -> Any:
    repo = _need(call, "repo")
    commit = await ctl.resolve(repo, _need(call, "commit"))
    doc = await ctl.lineage.wait_status(repo, commit)
    doc["commit"] = commit.hex()
    return doc


@op("GET", "/dag", "The pipelines' DAG: inputs, outputs, states and last jobs", returns="Dag")
async def dag(ctl: Control, call: Call) -> Any:
    del call
    return await ctl.lineage.dag()
