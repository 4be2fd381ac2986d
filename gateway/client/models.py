"""Typed results of the control API, as the client returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n noun`, with the noun's plural (noun + "s", or `nouns`) unless n is 1."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True, slots=True)
class Repo:
    name: str
    default_branch: str
    created: datetime | None
    # Set by describe_repo only.
    branches: int | None = None
    last_commit: str | None = None
    last_commit_time: datetime | None = None
    objects: int | None = None
    size: int | None = None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Repo:
        return Repo(
            d["name"],
            d["default_branch"],
            _time(d.get("created")),
            d.get("branches"),
            d.get("last_commit"),
            _time(d.get("last_commit_time")),
            d.get("objects"),
            d.get("size"),
        )


@dataclass(frozen=True, slots=True)
class Branch:
    repo: str
    name: str
    head: str | None
    created: datetime | None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Branch:
        return Branch(d["repo"], d["name"], d.get("head"), _time(d.get("created")))


@dataclass(frozen=True, slots=True)
class TrashEntry:
    """A deleted repo or branch that can be restored until `expires`."""

    id: int
    kind: str  # "repo" or "branch"
    repo: str
    name: str
    head: str | None
    deleted: datetime | None
    expires: datetime | None
    default_branch: str | None = None
    branches: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @staticmethod
    def from_json(d: dict[str, Any]) -> TrashEntry:
        return TrashEntry(
            d["id"],
            d["kind"],
            d["repo"],
            d["name"],
            d.get("head"),
            _time(d.get("deleted")),
            _time(d.get("expires")),
            d.get("default_branch"),
            tuple(d.get("branches") or ()),
            tuple(d.get("tags") or ()),
        )


@dataclass(frozen=True, slots=True)
class Tag:
    repo: str
    name: str
    commit: str
    created: datetime | None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Tag:
        return Tag(d["repo"], d["name"], d["commit"], _time(d.get("created")))


@dataclass(frozen=True, slots=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    author: str
    message: str
    time: datetime | None
    origin: dict[str, Any]
    # Set by inspect only.
    objects: int | None = None
    size: int | None = None
    changes: dict[str, int] = field(default_factory=dict)
    bucket: str | None = None  # the commit's read-only S3 bucket, if its name fits

    @staticmethod
    def from_json(d: dict[str, Any]) -> Commit:
        return Commit(
            d["id"],
            tuple(d["parents"]),
            d["author"],
            d["message"],
            _time(d.get("time")),
            d.get("origin") or {},
            d.get("objects"),
            d.get("size"),
            d.get("changes") or {},
            d.get("bucket"),
        )


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    change: str  # added, modified or deleted
    size_before: int | None
    size_after: int | None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Change:
        return Change(d["path"], d["change"], d.get("size_before"), d.get("size_after"))


@dataclass(frozen=True, slots=True)
class Version:
    commit: str
    time: datetime | None
    message: str
    deleted: bool
    size: int | None
    etag: str | None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Version:
        obj = d.get("object") or {}
        return Version(
            d["commit"],
            _time(d.get("time")),
            d.get("message", ""),
            bool(d.get("deleted")),
            obj.get("size"),
            obj.get("etag"),
        )


@dataclass(frozen=True, slots=True)
class OpenCommit:
    id: str
    repo: str
    branch: str
    bucket: str
    base: str | None
    created: datetime | None
    idle_seconds: float
    finishing: bool

    @staticmethod
    def from_json(d: dict[str, Any]) -> OpenCommit:
        return OpenCommit(
            d["id"],
            d["repo"],
            d["branch"],
            d["bucket"],
            d.get("base"),
            _time(d.get("created")),
            float(d.get("idle_seconds", 0)),
            bool(d.get("finishing")),
        )


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart upload in progress."""

    id: str
    repo: str
    branch: str
    key: str
    created: datetime | None
    parts: int
    size: int

    @staticmethod
    def from_json(d: dict[str, Any]) -> Upload:
        return Upload(
            d["id"],
            d["repo"],
            d["branch"],
            d["key"],
            _time(d.get("created")),
            int(d.get("parts", 0)),
            int(d.get("size", 0)),
        )


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    kind: str


@dataclass(frozen=True, slots=True)
class MergeResult:
    outcome: str  # fast-forward, merged or up-to-date
    commit: str | None
    conflicts: tuple[Conflict, ...]

    @staticmethod
    def from_json(d: dict[str, Any]) -> MergeResult:
        return MergeResult(
            d["outcome"],
            d.get("commit"),
            tuple(Conflict(c["path"], c["kind"]) for c in d.get("conflicts", [])),
        )


@dataclass(frozen=True, slots=True)
class PurgedVersion:
    """One version a purge erases: a path in a commit."""

    path: str
    commit: str
    size: int


@dataclass(frozen=True, slots=True)
class PurgePlan:
    """What purging a path would erase (nothing is erased by asking)."""

    repo: str
    path: str
    versions: list[PurgedVersion]
    commits: int
    contents: int
    bytes: int
    # Other paths of the repo (at branch and tag heads) holding the same bytes:
    # they are erased too.
    other_paths: list[str]
    other_paths_complete: bool

    @staticmethod
    def from_json(d: dict[str, Any]) -> PurgePlan:
        return PurgePlan(
            d["repo"],
            d["path"],
            [PurgedVersion(v["path"], v["commit"], v["size"]) for v in d["versions"]],
            d["commits"],
            d["contents"],
            d["bytes"],
            list(d.get("other_paths", [])),
            bool(d.get("other_paths_complete", True)),
        )


@dataclass(frozen=True, slots=True)
class Purge:
    """A row of a repo's purge audit log."""

    id: int
    repo: str
    path: str
    versions: int
    commits: int
    contents: int
    bytes: int
    reason: str
    purged_by: str
    at: datetime | None

    @staticmethod
    def from_json(d: dict[str, Any]) -> Purge:
        return Purge(
            d["id"],
            d["repo"],
            d["path"],
            d["versions"],
            d["commits"],
            d["contents"],
            d["bytes"],
            d["reason"],
            d["purged_by"],
            _time(d.get("at")),
        )


@dataclass(frozen=True, slots=True)
class PlannedInput:
    """One input of a planned datum: the matched path and what it covers."""

    name: str
    repo: str
    branch: str
    commit: str | None
    path: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class PlannedDatum:
    """A datum of a pipeline plan: `decision` is run, skip or remove."""

    id: str
    decision: str
    reason: str
    inputs: list[PlannedInput]


@dataclass(frozen=True, slots=True)
class PipelinePlan:
    """What a job of a spec would do now (nothing runs by asking)."""

    pipeline: str
    datums: list[PlannedDatum]
    totals: dict[str, int]

    @staticmethod
    def from_json(d: dict[str, Any]) -> PipelinePlan:
        return PipelinePlan(
            d.get("pipeline", ""),
            [
                PlannedDatum(
                    x["id"],
                    x["decision"],
                    x["reason"],
                    [
                        PlannedInput(
                            i["name"],
                            i["repo"],
                            i["branch"],
                            i.get("commit"),
                            i["path"],
                            int(i["files"]),
                            int(i["bytes"]),
                        )
                        for i in x.get("inputs", [])
                    ],
                )
                for x in d["datums"]
            ],
            {k: int(v) for k, v in d["totals"].items()},
        )


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A pipeline: its current spec version, state and salt."""

    name: str
    state: str  # "running" or "stopped"
    version: int
    salt: str
    reprocess: bool
    output_repo: str
    input_repos: tuple[str, ...]
    created: datetime | None
    updated: datetime | None
    spec: dict[str, Any] = field(default_factory=dict)  # canonical JSON form
    last_job: dict[str, Any] | None = None  # {"id", "state", "version"} of its newest job

    @staticmethod
    def from_json(d: dict[str, Any]) -> Pipeline:
        return Pipeline(
            d["name"],
            d["state"],
            int(d["version"]),
            d["salt"],
            bool(d.get("reprocess", False)),
            d.get("output_repo", d["name"]),
            tuple(d.get("input_repos", ())),
            _time(d.get("created")),
            _time(d.get("updated")),
            dict(d.get("spec") or {}),
            d.get("last_job"),
        )
