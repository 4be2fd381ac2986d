"""The control API's operations, one handler each, registered in the
operation table (gateway/api/table.py) as their modules are imported."""

from __future__ import annotations

from gateway.api.operations import (
    commits,
    jobs,
    lineage,
    pipeline_plan,
    pipelines,
    purge,
    refs,
    uploads,
    work,
)
from gateway.api.table import OPERATIONS, Call, Operation, json_response

__all__ = [
    "OPERATIONS",
    "Call",
    "Operation",
    "commits",
    "jobs",
    "json_response",
    "lineage",
    "pipeline_plan",
    "pipelines",
    "purge",
    "refs",
    "uploads",
    "work",
]
