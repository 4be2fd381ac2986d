"""The control API's OpenAPI 3.1 document, built from the operations table."""

from __future__ import annotations

from typing import Any

from gateway.api.errors import API_CODES, domain_codes
from gateway.api.operations import OPERATIONS, Operation

PREFIX = "/_loxo/api/v1"

_S = {"type": "string"}
_SN = {"type": ["string", "null"]}
_I = {"type": "integer"}

SCHEMAS: dict[str, Any] = {
    "Repo": {"type": "object", "properties": {"name": _S, "default_branch": _S, "created": _S}},
    "RepoInfo": {
        "type": "object",
        "properties": {
            "name": _S,
            "default_branch": _S,
            "created": _S,
            "branches": _I,
            "last_commit": _SN,
            "last_commit_time": _SN,
            "objects": _I,
            "size": _I,
        },
    },
    "Branch": {
        "type": "object",
        "properties": {"repo": _S, "name": _S, "head": _SN, "created": _S},
    },
    "Tag": {"type": "object", "properties": {"repo": _S, "name": _S, "commit": _S, "created": _S}},
    "TrashEntry": {
        "type": "object",
        "properties": {
            "id": _I,
            "kind": {"type": "string", "enum": ["repo", "branch"]},
            "repo": _S,
            "name": _S,
            "head": _SN,
            "deleted": _S,
            "expires": _S,
            "default_branch": _SN,
            "branches": {"type": "array", "items": _S},
            "tags": {"type": "array", "items": _S},
        },
    },
    "Commit": {
        "type": "object",
        "properties": {
            "id": _S,
            "parents": {"type": "array", "items": _S},
            "author": _S,
            "message": _S,
            "time": _S,
            "origin": {"type": "object"},
        },
    },
    "CommitInfo": {
        "allOf": [
            {"$ref": "#/components/schemas/Commit"},
            {
                "type": "object",
                "properties": {
                    "objects": _I,
                    "size": _I,
                    "bucket": {"type": ["string", "null"]},
                    "changes": {
                        "type": "object",
                        "properties": {"added": _I, "modified": _I, "deleted": _I},
                    },
                },
            },
        ]
    },
    "Change": {
        "type": "object",
        "properties": {
            "path": _S,
            "change": {"enum": ["added", "modified", "deleted"]},
            "size_before": {"type": ["integer", "null"]},
            "size_after": {"type": ["integer", "null"]},
        },
    },
    "Version": {
        "type": "object",
        "properties": {
            "commit": _S,
            "time": _S,
            "message": _S,
            "deleted": {"type": "boolean"},
            "object": {"type": ["object", "null"]},
        },
    },
    "OpenCommit": {
        "type": "object",
        "properties": {
            "id": _S,
            "repo": _S,
            "branch": _S,
            "bucket": _S,
            "base": _SN,
            "created": _S,
            "idle_seconds": {"type": "number"},
            "author": _S,
            "finishing": {"type": "boolean"},
        },
    },
    "Finished": {"type": "object", "properties": {"commit": _SN}},
    "Upload": {
        "type": "object",
        "properties": {
            "id": _S,
            "repo": _S,
            "branch": _S,
            "key": _S,
            "created": _S,
            "parts": {"type": "integer"},
            "size": {"type": "integer"},
        },
    },
    "MergeResult": {
        "type": "object",
        "properties": {
            "outcome": {"enum": ["fast-forward", "merged", "up-to-date"]},
            "commit": _SN,
            "conflicts": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Purge": {
        "type": "object",
        "properties": {
            "id": _I,
            "repo": _S,
            "path": _S,
            "versions": _I,
            "commits": _I,
            "contents": _I,
            "bytes": _I,
            "reason": _S,
            "purged_by": _S,
            "at": _S,
        },
    },
    "PurgePlan": {
        "type": "object",
        "properties": {
            "repo": _S,
            "path": _S,
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": _S, "commit": _S, "size": _I},
                },
            },
            "commits": _I,
            "contents": _I,
            "bytes": _I,
            "other_paths": {"type": "array", "items": _S},
            "other_paths_complete": {"type": "boolean"},
        },
    },
    "PipelinePlan": {
        "type": "object",
        "properties": {
            "pipeline": _S,
            "datums": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": _S,
                        "decision": {"enum": ["run", "skip", "remove"]},
                        "reason": _S,
                        "inputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": _S,
                                    "repo": _S,
                                    "branch": _S,
                                    "commit": _SN,
                                    "path": _S,
                                    "files": _I,
                                    "bytes": _I,
                                },
                            },
                        },
                    },
                },
            },
            "totals": {
                "type": "object",
                "properties": {"datums": _I, "run": _I, "skip": _I, "remove": _I},
            },
        },
    },
    "Pipeline": {
        "type": "object",
        "properties": {
            "name": _S,
            "state": {"enum": ["running", "stopped"]},
            "version": _I,
            "salt": _S,
            "reprocess": {"type": "boolean"},
            "output_repo": _S,
            "input_repos": {"type": "array", "items": _S},
            "created": _S,
            "updated": _S,
            "spec": {"type": "object"},
            "last_job": {"type": ["object", "null"]},
        },
    },
    # Jobs, datums, logs and lineage: docs/design/jobs.md has their fields.
    "Job": {
        "type": "object",
        "properties": {
            "id": _S,
            "pipeline": _S,
            "version": _I,
            "state": {"enum": ["created", "running", "success", "failure", "killed"]},
            "reason": _S,
            "output_commit": _SN,
            "commit_set": _S,
            "inputs": {"type": "array", "items": {"type": "object"}},
            "datums": {"type": "object"},
            "timings": {"type": "object"},
        },
    },
    "Datum": {
        "type": "object",
        "properties": {
            "job": _S,
            "id": _S,
            "state": {
                "enum": [
                    "pending",
                    "running",
                    "success",
                    "failed",
                    "skipped",
                    "recovered",
                    "killed",
                ]
            },
            "reason": _S,
            "tries": _I,
            "inputs": {"type": "array", "items": {"type": "object"}},
            "timings": {"type": "object"},
        },
    },
    "LogLine": {"type": "object", "properties": {"seq": _I, "stream": _S, "text": _S}},
    "Leases": {"type": "object", "properties": {"lease_seconds": {"type": "number"}}},
    "Heartbeat": {"type": "object", "properties": {"lost": {"type": "array", "items": _S}}},
    "Completed": {"type": "object", "properties": {"state": _S}},
    "Provenance": {"type": "object"},
    "Subvenance": {"type": "object"},
    "WaitStatus": {"type": "object", "properties": {"done": {"type": "boolean"}}},
    "Dag": {"type": "object"},
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "enum": sorted(
                            {c for _, _, c in domain_codes()} | {c for _, c, _ in API_CODES}
                        )
                    },
                    "message": _S,
                },
                "required": ["code", "message"],
            }
        },
    },
}


# Body fields that are not plain strings.
FIELD_TYPES: dict[str, dict[str, Any]] = {
    "idle_seconds": {"type": "number", "exclusiveMinimum": 0},
    "expected_head": _SN,
    "from": _SN,
    "strategy": {"enum": ["ours", "theirs", None]},
    "confirm": {"type": "boolean"},
    "spec": {"type": "object"},
    "reprocess": {"type": "boolean"},
    "max": {"type": "integer", "minimum": 1},
    "wait_seconds": {"type": "number", "minimum": 0},
    "attempts": {"type": "array", "items": _S},
    "pipelines": {"type": "array", "items": _S},
    "exit_code": {"type": ["integer", "null"]},
    "timings": {"type": "object"},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(operation: Operation) -> dict[str, Any]:
    if not operation.returns:
        return {"description": "done"}
    if operation.returns.startswith("list:"):
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": _ref(operation.returns[5:])},
                "next_cursor": _SN,
            },
        }
    else:
        schema = _ref(operation.returns)
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        spec: dict[str, Any] = {
            "operationId": operation.name,
            "summary": operation.summary,
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required,
                    "description": p.description,
                    "schema": _S,
                }
                for p in operation.params
            ],
            "responses": {
                str(operation.status): _response(operation),
                "default": {
                    "description": "an error",
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
            },
        }
        if operation.body:
            spec["requestBody"] = {
                "required": bool(operation.required),
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                k: {**FIELD_TYPES.get(k, _S), "description": v}
                                for k, v in operation.body.items()
                            },
                            "required": list(operation.required),
                        }
                    }
                },
            }
        paths.setdefault(PREFIX + operation.path, {})[operation.method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loxo control API",
            "version": "1",
            "description": "Repos, branches, tags, commits, diffs, open commits, merges. "
            "Sign every request with AWS SigV4 using the S3 access key and secret key.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4 (any region and service)",
                }
            },
        },
        "security": [{"sigv4": []}],
    }
