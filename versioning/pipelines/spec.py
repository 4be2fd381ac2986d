"""The pipeline spec: a Pachyderm-compatible subset, parsed and validated.

Pachyderm's field names are kept (`pipeline.name`, `input.pfs.glob`,
`parallelism_spec.constant`, `egress.URL`...), so a Pachyderm spec that uses
only this subset is a loxo spec. A spec is JSON or YAML; `parse_spec` turns
it into frozen dataclasses or raises one `SpecError` naming the field by its
dotted path (`input.cross[1].pfs.glob`). `to_json` gives the canonical form
back (stable field order, every default written out), and
`parse_spec(to_json(s)) == s`.

Values are normalised: durations ("1h30m") become seconds, memory ("2G",
"512Mi") bytes, cpu a float, env a tuple of (name, value) pairs sorted by
name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import yaml

from versioning import errors
from versioning.names import DEFAULT_BRANCH, NAME, check_ref_name, check_repo_name
from versioning.pipelines.globs import compile_glob

# ---------------------------------------------------------------------------- errors


class SpecError(ValueError):
    """A refused spec: `field` is the dotted path of the culprit (`""` for the
    document itself), `message` says why; `source` is the file (if any) and
    `pipeline` the pipeline's name (if known), for callers that report
    several specs."""

    def __init__(self, field: str, message: str, *, source: str = "", pipeline: str = "") -> None:
        self.field = field
        self.message = message
        self.source = source
        self.pipeline = pipeline
        text = f"{field}: {message}" if field else message
        super().__init__(f"{source}: {text}" if source else text)


# ---------------------------------------------------------------------------- the model


class ReprocessSpec(StrEnum):
    """Pachyderm's `reprocess_spec`: skip datums whose hash is unchanged since
    the last successful job (`until_success`) or run every datum every job."""

    UNTIL_SUCCESS = "until_success"
    EVERY_JOB = "every_job"


@dataclass(frozen=True, slots=True)
class Pfs:
    """Files of a repo's branch, split into datums by `glob`; seen by the code
    under /pfs/<name>."""

    repo: str
    glob: str
    name: str  # default: the repo's name
    branch: str = DEFAULT_BRANCH
    join_on: str = ""  # only inside a join: the key, from the glob's capture groups ($1)
    outer_join: bool = False  # only inside a join: keep this input's unmatched datums
    group_by: str = ""  # only inside a group: the key, from the glob's capture groups
    s3: bool = False  # a bucket of the datum's files instead of files on disk
    empty_files: bool = False  # lay files out empty (the code reads only names)


@dataclass(frozen=True, slots=True)
class Cross:
    """Every combination of one datum of each input."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True, slots=True)
class Union:
    """The datums of each input, one after the other."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True, slots=True)
class Join:
    """Datums of the inputs whose `join_on` keys are equal, crossed."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """All datums of the inputs sharing one `group_by` key, as one datum."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True, slots=True)
class Cron:
    """A tick on a schedule (a 5-field cron expression or `@every 30s`)."""

    name: str
    spec: str
    overwrite: bool = False  # keep only the latest tick file, not one per tick


Input = Pfs | Cross | Union | Join | Group | Cron
Combined = Cross | Union | Join | Group


@dataclass(frozen=True, slots=True)
class Transform:
    cmd: tuple[str, ...]
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # sorted by name
    image: str = ""  # the Kubernetes executor's container image (gateway/executors)
    err_cmd: tuple[str, ...] = ()
    accept_return_code: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ParallelismSpec:
    constant: int = 1


@dataclass(frozen=True, slots=True)
class Gpu:
    type: str
    number: int


@dataclass(frozen=True, slots=True)
class Resources:
    """A datum pod's requests or limits (the Kubernetes executor's container
    resources; the local executor ignores them)."""

    cpu: float | None = None
    memory: int | None = None  # bytes
    gpu: Gpu | None = None


@dataclass(frozen=True, slots=True)
class SchedulingSpec:
    """Pachyderm's `scheduling_spec`: where the Kubernetes executor's pods may
    run (the pod's nodeSelector and priorityClassName)."""

    node_selector: tuple[tuple[str, str], ...] = ()  # sorted by label
    priority_class_name: str = ""


class TolerationOperator(StrEnum):
    """Pachyderm's names; Kubernetes' spellings (`Exists`, `Equal`) are read too."""

    EXISTS = "EXISTS"
    EQUAL = "EQUAL"


class TaintEffect(StrEnum):
    """Pachyderm's names (`ALL_EFFECTS`: any effect, Kubernetes' empty effect);
    Kubernetes' spellings (`NoSchedule`...) are read too."""

    ALL_EFFECTS = "ALL_EFFECTS"
    NO_SCHEDULE = "NO_SCHEDULE"
    PREFER_NO_SCHEDULE = "PREFER_NO_SCHEDULE"
    NO_EXECUTE = "NO_EXECUTE"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A Kubernetes toleration of the executor's pods (Pachyderm's `tolerations`)."""

    key: str = ""  # empty with EXISTS: every taint
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str = ""
    effect: TaintEffect = TaintEffect.ALL_EFFECTS
    toleration_seconds: int | None = None  # only with NO_EXECUTE


@dataclass(frozen=True, slots=True)
class Egress:
    url: str


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    name: str
    input: Input
    transform: Transform
    description: str = ""
    parallelism_spec: ParallelismSpec = ParallelismSpec()
    datum_tries: int = 3
    datum_timeout: float | None = None  # seconds
    job_timeout: float | None = None  # seconds
    resource_requests: Resources | None = None
    resource_limits: Resources | None = None
    s3_out: bool = False
    reprocess_spec: ReprocessSpec = ReprocessSpec.UNTIL_SUCCESS
    egress: Egress | None = None
    output_branch: str = DEFAULT_BRANCH
    scheduling_spec: SchedulingSpec = SchedulingSpec()
    tolerations: tuple[Toleration, ...] = ()


# ---------------------------------------------------------------------------- scalars

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration ("30s", "1h30m", "1.5h", "250ms") in seconds; ValueError
    if it is not one. Go's sign and bare "0" are not accepted: a timeout is
    positive."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The canonical text of a duration: "1h30m", "45s", or "0.25s" for
    fractions (parse_duration reads each back exactly)."""
    if seconds != int(seconds):
        # repr is the shortest text that reads back as the same float; Decimal
        # writes it without an exponent (1e-09 -> 0.000000001), as Go expects.
        return f"{Decimal(repr(seconds)):f}s"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


_DECIMAL = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5, "E": 1000**6}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_SUFFIXES = {**_DECIMAL, **_BINARY}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_memory(text: str) -> int:
    """A Kubernetes-style quantity ("2G", "512Mi", "1.5Gi", "1000") in bytes."""
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a memory size like 512Mi, 2G or 1000 (suffixes "
            "k M G T P E, Ki Mi Gi Ti Pi Ei)"
        )
    number, suffix = match.group(1), match.group(2) or ""
    whole, _, frac = number.partition(".")
    unit = _SUFFIXES[suffix]
    # Exact arithmetic: 1.5Gi is 1610612736 bytes, not a float's guess.
    numerator = int(whole + frac) * unit
    denominator = int(10 ** len(frac))
    if numerator % denominator:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return numerator // denominator


def format_memory(size: int) -> str:
    """The shortest exact text: "2G", "512Mi", or plain bytes."""
    best = str(size)
    best_number = size
    for suffix, unit in _SUFFIXES.items():
        if suffix and size and size % unit == 0 and size // unit < best_number:
            best, best_number = f"{size // unit}{suffix}", size // unit
    return best


_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
_CRON_DESCRIPTORS = {
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
}


def check_cron(spec: str) -> None:
    """The shape of a cron schedule (its values are not checked): 5 fields
    (minute hour day-of-month month day-of-week, as robfig/cron's standard
    parser, which Pachyderm uses), a descriptor (@daily...), or `@every D`."""
    text = spec.strip()
    if text.startswith("@every"):
        rest = text[len("@every") :].strip()
        if not rest or rest == text[len("@every") :]:
            raise ValueError(f"{spec!r}: @every needs a duration, like `@every 30s`")
        if parse_duration(rest) <= 0:
            raise ValueError(f"{spec!r}: @every needs a positive duration")
        return
    if text.startswith("@"):
        if text not in _CRON_DESCRIPTORS:
            raise ValueError(
                f"{spec!r} is not a cron descriptor: one of "
                f"{', '.join(sorted(_CRON_DESCRIPTORS))} or `@every 30s`"
            )
        return
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{spec!r} is not a cron schedule: 5 fields (minute hour day month weekday, "
            "e.g. `*/10 * * * *`), a descriptor like @daily, or `@every 30s`"
        )


# ---------------------------------------------------------------------------- globs


def check_glob(pattern: str) -> int:
    """Check a Pachyderm glob and return its number of capture groups: the
    matching engine's own check (globs.compile_glob), so a spec is refused
    exactly when its glob could never be matched. Raises ValueError."""
    return compile_glob(pattern).groups


_GROUP_REF = re.compile(r"\$(\d+)")


# ---------------------------------------------------------------------------- reading


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _bad_type(path: str, expected: str, value: object) -> SpecError:
    return SpecError(path, f"must be {expected}, not {_type_name(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Obj:
    """A JSON object being read: typed getters that name the field on error,
    and a check that no unknown field is left."""

    def __init__(self, value: object, path: str, known: tuple[str, ...]) -> None:
        if not isinstance(value, Mapping):
            if not path:
                raise SpecError(
                    "",
                    f"a spec is a mapping (pipeline, input, transform...), not {_type_name(value)}",
                )
            raise _bad_type(path, "a mapping", value)
        for key in value:
            if not isinstance(key, str):
                raise SpecError(path, f"field names are strings, not {_type_name(key)}")
            if key not in known:
                raise SpecError(
                    _join(path, key),
                    f"unknown field {key!r}; known fields here: {', '.join(known)}",
                )
        self.value: Mapping[str, Any] = value
        self.path = path

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def field(self, key: str) -> str:
        return _join(self.path, key)

    def raw(self, key: str) -> Any:
        return self.value.get(key)

    def string(self, key: str, default: str | None = None) -> str:
        value = self.value.get(key)
        if value is None:
            if default is None:
                raise SpecError(self.field(key), "is required")
            return default
        if not isinstance(value, str):
            raise _bad_type(self.field(key), "a string", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.value.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise _bad_type(self.field(key), "a boolean (true or false)", value)
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.value.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_type(self.field(key), "an integer", value)
        if value < minimum:
            raise SpecError(self.field(key), f"must be at least {minimum}, not {value}")
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.value.get(key)
        if value is None:
            if required:
                raise SpecError(self.field(key), "is required: a non-empty list of strings")
            return ()
        if not isinstance(value, list):
            raise _bad_type(self.field(key), "a list of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _bad_type(f"{self.field(key)}[{i}]", "a string", item)
        if required and not value:
            raise SpecError(self.field(key), "must be a non-empty list of strings")
        return tuple(value)

    def duration(self, key: str) -> float | None:
        value = self.value.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _bad_type(self.field(key), "a duration string like 30s or 1h30m", value)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise SpecError(self.field(key), str(exc)) from None
        if seconds <= 0:
            raise SpecError(self.field(key), f"must be a positive duration, not {value!r}")
        return seconds


def _check_name(path: str, name: str, what: str) -> None:
    if not NAME.match(name):
        raise SpecError(
            path,
            f"invalid {what} {name!r}: 1 to 63 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen",
        )


def _check_repo(path: str, name: str) -> None:
    try:
        check_repo_name(name)
    except errors.InvalidName as exc:
        raise SpecError(path, str(exc)) from None


def _check_ref(path: str, name: str) -> None:
    try:
        check_ref_name(name)
    except errors.InvalidName as exc:
        raise SpecError(path, str(exc)) from None


_INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")
_PFS_FIELDS = (
    "name",
    "repo",
    "branch",
    "glob",
    "join_on",
    "outer_join",
    "group_by",
    "s3",
    "empty_files",
)
_COMBINED: dict[str, type[Combined]] = {
    "cross": Cross,
    "union": Union,
    "join": Join,
    "group": Group,
}


def _read_input(value: object, path: str, ancestors: tuple[str, ...]) -> Input:
    node = _Obj(value, path, _INPUT_KINDS)
    present = [k for k in _INPUT_KINDS if node.has(k)]
    # Pachyderm: an input is exactly one of pfs, cross, union, join, group, cron.
    if len(present) != 1:
        found = ", ".join(present) if present else "none"
        raise SpecError(
            path or "input",
            f"an input has exactly one of {', '.join(_INPUT_KINDS)}; found {found}",
        )
    kind = present[0]
    where = node.field(kind)
    if kind == "pfs":
        return _read_pfs(node.raw(kind), where, ancestors)
    if kind == "cron":
        cron = _Obj(node.raw(kind), where, ("name", "spec", "overwrite"))
        name = cron.string("name")
        _check_name(cron.field("name"), name, "input name")
        spec = cron.string("spec")
        try:
            check_cron(spec)
        except ValueError as exc:
            raise SpecError(cron.field("spec"), str(exc)) from None
        return Cron(name=name, spec=spec, overwrite=cron.boolean("overwrite"))
    children = node.raw(kind)
    if not isinstance(children, list):
        raise _bad_type(where, "a list of inputs", children)
    # An empty cross/union/join/group has no datums at all: refused, as
    # Pachyderm does. One child is accepted (a join or group of one input is
    # that input keyed by join_on / group_by); Pachyderm's docs show joins of
    # two or more, but nothing in the model needs two, so loxo does not ask.
    if not children:
        raise SpecError(where, f"a {kind} needs at least one input")
    return _COMBINED[kind](
        tuple(
            _read_input(child, f"{where}[{i}]", (*ancestors, kind))
            for i, child in enumerate(children)
        )
    )


def _read_pfs(value: object, path: str, ancestors: tuple[str, ...]) -> Pfs:
    pfs = _Obj(value, path, _PFS_FIELDS)
    repo = pfs.string("repo")
    _check_repo(pfs.field("repo"), repo)
    name = pfs.string("name", repo)
    _check_name(pfs.field("name"), name, "input name")
    branch = pfs.string("branch", DEFAULT_BRANCH)
    _check_ref(pfs.field("branch"), branch)
    glob = pfs.string("glob")
    try:
        groups = check_glob(glob)
    except ValueError as exc:
        raise SpecError(pfs.field("glob"), str(exc)) from None
    parent = ancestors[-1] if ancestors else ""
    join_on = pfs.string("join_on", "")
    group_by = pfs.string("group_by", "")
    outer_join = pfs.boolean("outer_join")
    # Pachyderm: join_on and outer_join mean something only for an input
    # directly inside a join, group_by only directly inside a group.
    if join_on and parent != "join":
        raise SpecError(pfs.field("join_on"), "join_on is allowed only in an input of a join")
    if outer_join and parent != "join":
        raise SpecError(pfs.field("outer_join"), "outer_join is allowed only in an input of a join")
    if group_by and parent != "group":
        raise SpecError(pfs.field("group_by"), "group_by is allowed only in an input of a group")
    for key, text in (("join_on", join_on), ("group_by", group_by)):
        for ref in _GROUP_REF.findall(text):
            if not 1 <= int(ref) <= groups:
                raise SpecError(
                    pfs.field(key),
                    f"${ref} refers to capture group {int(ref)}, but the glob {glob!r} has "
                    f"{groups} (groups are the glob's parenthesised parts, $1 first)",
                )
    # Unlike Pachyderm, an s3 input may use any glob and sit in any
    # combination: each datum gets a bucket holding only its own files.
    s3 = pfs.boolean("s3")
    return Pfs(
        repo=repo,
        glob=glob,
        name=name,
        branch=branch,
        join_on=join_on,
        outer_join=outer_join,
        group_by=group_by,
        s3=s3,
        empty_files=pfs.boolean("empty_files"),
    )


def iter_leaves(node: Input, path: str = "input") -> Iterator[tuple[str, Pfs | Cron]]:
    """Every pfs and cron input with its field path (`input.cross[0].pfs`)."""
    if isinstance(node, Pfs):
        yield f"{path}.pfs", node
    elif isinstance(node, Cron):
        yield f"{path}.cron", node
    else:
        kind = _kind(node)
        for i, child in enumerate(node.inputs):
            yield from iter_leaves(child, f"{path}.{kind}[{i}]")


def _kind(node: Combined) -> str:
    return {Cross: "cross", Union: "union", Join: "join", Group: "group"}[type(node)]


def _read_transform(value: object) -> Transform:
    t = _Obj(value, "transform", ("image", "cmd", "stdin", "env", "err_cmd", "accept_return_code"))
    env_raw = t.raw("env")
    env: list[tuple[str, str]] = []
    if env_raw is not None:
        if not isinstance(env_raw, Mapping):
            raise _bad_type("transform.env", "a mapping of names to strings", env_raw)
        for key, val in env_raw.items():
            if not isinstance(key, str) or not key:
                raise SpecError("transform.env", f"variable names are strings, not {key!r}")
            if not isinstance(val, str):
                raise _bad_type(f"transform.env.{key}", "a string", val)
            env.append((key, val))
    codes_raw = t.raw("accept_return_code")
    codes: tuple[int, ...] = ()
    if codes_raw is not None:
        if not isinstance(codes_raw, list):
            raise _bad_type("transform.accept_return_code", "a list of integers", codes_raw)
        for i, code in enumerate(codes_raw):
            if isinstance(code, bool) or not isinstance(code, int):
                raise _bad_type(f"transform.accept_return_code[{i}]", "an integer", code)
        codes = tuple(codes_raw)
    return Transform(
        cmd=t.strings("cmd", required=True),
        stdin=t.strings("stdin"),
        env=tuple(sorted(env)),
        image=t.string("image", ""),
        err_cmd=t.strings("err_cmd"),
        accept_return_code=codes,
    )


def _read_resources(value: object, path: str) -> Resources:
    r = _Obj(value, path, ("cpu", "memory", "gpu"))
    cpu_raw = r.raw("cpu")
    cpu: float | None = None
    if cpu_raw is not None:
        if isinstance(cpu_raw, bool) or not isinstance(cpu_raw, int | float):
            raise _bad_type(r.field("cpu"), "a number (of cores, e.g. 0.5)", cpu_raw)
        if not math.isfinite(cpu_raw) or cpu_raw <= 0:
            raise SpecError(r.field("cpu"), f"must be a positive number, not {cpu_raw}")
        cpu = float(cpu_raw)
    memory_raw = r.raw("memory")
    memory: int | None = None
    if memory_raw is not None:
        if isinstance(memory_raw, bool) or not isinstance(memory_raw, str | int):
            raise _bad_type(r.field("memory"), "a size string like 512Mi or 2G", memory_raw)
        try:
            memory = parse_memory(str(memory_raw))
        except ValueError as exc:
            raise SpecError(r.field("memory"), str(exc)) from None
    gpu: Gpu | None = None
    if r.raw("gpu") is not None:
        g = _Obj(r.raw("gpu"), r.field("gpu"), ("type", "number"))
        gpu = Gpu(type=g.string("type"), number=g.integer("number", 1, 1))
        if not gpu.type:
            raise SpecError(g.field("type"), "must not be empty (e.g. nvidia.com/gpu)")
    return Resources(cpu=cpu, memory=memory, gpu=gpu)


# Kubernetes' spellings of Pachyderm's enum values, both read.
_OPERATORS = {"Exists": TolerationOperator.EXISTS, "Equal": TolerationOperator.EQUAL}
_EFFECTS = {
    "": TaintEffect.ALL_EFFECTS,
    "NoSchedule": TaintEffect.NO_SCHEDULE,
    "PreferNoSchedule": TaintEffect.PREFER_NO_SCHEDULE,
    "NoExecute": TaintEffect.NO_EXECUTE,
}
# A Kubernetes label key: an optional DNS-subdomain prefix and "/", then a
# name of up to 63 characters; values up to 63 characters (maybe empty).
_LABEL_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^(?:[a-z0-9](?:[a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^(?:{_LABEL_NAME})?$")


def _read_scheduling(value: object) -> SchedulingSpec:
    s = _Obj(value, "scheduling_spec", ("node_selector", "priority_class_name"))
    raw = s.raw("node_selector")
    labels: list[tuple[str, str]] = []
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise _bad_type(s.field("node_selector"), "a mapping of node labels", raw)
        for key, val in raw.items():
            field = f"{s.field('node_selector')}.{key}"
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                raise SpecError(field, "is not a Kubernetes label name (e.g. disktype)")
            if not isinstance(val, str):
                raise _bad_type(field, "a string", val)
            if not _LABEL_VALUE.match(val):
                raise SpecError(field, f"{val!r} is not a Kubernetes label value")
            labels.append((key, val))
    return SchedulingSpec(tuple(sorted(labels)), s.string("priority_class_name", ""))


def _read_tolerations(value: object) -> tuple[Toleration, ...]:
    if not isinstance(value, list):
        raise _bad_type("tolerations", "a list of tolerations", value)
    out = []
    for i, item in enumerate(value):
        t = _Obj(
            item,
            f"tolerations[{i}]",
            ("key", "operator", "value", "effect", "toleration_seconds"),
        )
        key = t.string("key", "")
        if key and not _LABEL_KEY.match(key):
            raise SpecError(t.field("key"), f"{key!r} is not a Kubernetes taint key")
        text = t.string("operator", "EQUAL")
        try:
            operator = _OPERATORS.get(text) or TolerationOperator(text)
        except ValueError:
            raise SpecError(t.field("operator"), f"must be EXISTS or EQUAL, not {text!r}") from None
        text = t.string("effect", "ALL_EFFECTS")
        try:
            effect = _EFFECTS.get(text) or TaintEffect(text)
        except ValueError:
            raise SpecError(
                t.field("effect"),
                f"must be NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE or ALL_EFFECTS, not {text!r}",
            ) from None
        val = t.string("value", "")
        if operator is TolerationOperator.EXISTS and val:
            raise SpecError(t.field("value"), "must be empty with operator EXISTS")
        if not key and operator is not TolerationOperator.EXISTS:
            raise SpecError(t.field("key"), "is required unless operator is EXISTS")
        seconds: int | None = None
        if t.has("toleration_seconds"):
            seconds = t.integer("toleration_seconds", 0, 0)
            if effect is not TaintEffect.NO_EXECUTE:
                raise SpecError(t.field("toleration_seconds"), "is only for effect NO_EXECUTE")
        out.append(Toleration(key, operator, val, effect, seconds))
    return tuple(out)


_TOP_FIELDS = (
    "pipeline",
    "description",
    "input",
    "transform",
    "parallelism_spec",
    "datum_tries",
    "datum_timeout",
    "job_timeout",
    "resource_requests",
    "resource_limits",
    "s3_out",
    "reprocess_spec",
    "egress",
    "output_branch",
    "scheduling_spec",
    "tolerations",
)


def _load(text: str) -> object:
    # Pachyderm reads a spec as JSON when it starts with `{`, else as YAML.
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SpecError("", f"not valid JSON: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("", f"not valid YAML: {exc}") from None


def parse_spec(data: Mapping[str, Any] | str, *, source: str = "") -> PipelineSpec:
    """A pipeline spec from a mapping, JSON text or YAML text; SpecError names
    the first refused field (`source`, e.g. the file name, is kept on it)."""
    try:
        return _parse(_load(data) if isinstance(data, str) else data)
    except SpecError as exc:
        exc.source = source
        if source:
            exc.args = (f"{source}: {exc.args[0]}",)
        raise


def _parse(value: object) -> PipelineSpec:
    top = _Obj(value, "", _TOP_FIELDS)
    meta = _Obj(top.raw("pipeline"), "pipeline", ("name",)) if top.has("pipeline") else None
    if meta is None:
        raise SpecError("pipeline.name", "is required")
    name = meta.string("name")
    # The pipeline's name is its output repo's name.
    _check_repo("pipeline.name", name)
    try:
        if not top.has("input"):
            # Pachyderm's pipelines without input are spouts, not in this subset.
            raise SpecError("input", "is required (spouts are not supported)")
        root = _read_input(top.raw("input"), "input", ())
        if not top.has("transform"):
            raise SpecError("transform", "is required")
        transform = _read_transform(top.raw("transform"))
        _check_input_names(root)
        return _read_rest(top, name, root, transform)
    except SpecError as exc:
        exc.pipeline = name
        raise


def _check_input_names(root: Input) -> None:
    # Each input is a folder /pfs/<name> (and a variable <name>) in the
    # worker, next to /pfs/out: names are unique in the tree, and not "out".
    seen: dict[str, str] = {}
    for path, leaf in iter_leaves(root):
        if leaf.name == "out":
            raise SpecError(
                f"{path}.name", "an input cannot be named 'out' (/pfs/out is the output)"
            )
        if leaf.name in seen:
            raise SpecError(
                f"{path}.name",
                f"input name {leaf.name!r} is used twice ({seen[leaf.name]} and {path}); "
                "each input is the folder /pfs/<name>: set `name` to tell them apart"
                + (" (a pfs input's name defaults to its repo)" if isinstance(leaf, Pfs) else ""),
            )
        seen[leaf.name] = path


def _read_rest(top: _Obj, name: str, root: Input, transform: Transform) -> PipelineSpec:
    parallelism = ParallelismSpec()
    if top.has("parallelism_spec"):
        p = _Obj(top.raw("parallelism_spec"), "parallelism_spec", ("constant",))
        parallelism = ParallelismSpec(constant=p.integer("constant", 1, 1))
    reprocess = ReprocessSpec.UNTIL_SUCCESS
    if top.has("reprocess_spec"):
        text = top.string("reprocess_spec")
        try:
            reprocess = ReprocessSpec(text)
        except ValueError:
            raise SpecError(
                "reprocess_spec", f"must be until_success or every_job, not {text!r}"
            ) from None
    egress: Egress | None = None
    if top.has("egress"):
        e = _Obj(top.raw("egress"), "egress", ("URL",))
        url = e.string("URL")
        if "://" not in url:
            raise SpecError("egress.URL", f"must be a URL like s3://bucket/prefix, not {url!r}")
        egress = Egress(url=url)
    output_branch = top.string("output_branch", DEFAULT_BRANCH)
    _check_ref("output_branch", output_branch)
    return PipelineSpec(
        name=name,
        input=root,
        transform=transform,
        description=top.string("description", ""),
        parallelism_spec=parallelism,
        datum_tries=top.integer("datum_tries", 3, 1),
        datum_timeout=top.duration("datum_timeout"),
        job_timeout=top.duration("job_timeout"),
        resource_requests=(
            _read_resources(top.raw("resource_requests"), "resource_requests")
            if top.has("resource_requests")
            else None
        ),
        resource_limits=(
            _read_resources(top.raw("resource_limits"), "resource_limits")
            if top.has("resource_limits")
            else None
        ),
        s3_out=top.boolean("s3_out"),
        reprocess_spec=reprocess,
        egress=egress,
        output_branch=output_branch,
        scheduling_spec=(
            _read_scheduling(top.raw("scheduling_spec"))
            if top.has("scheduling_spec")
            else SchedulingSpec()
        ),
        tolerations=_read_tolerations(top.raw("tolerations")) if top.has("tolerations") else (),
    )


# ---------------------------------------------------------------------------- writing


def _input_json(node: Input) -> dict[str, Any]:
    if isinstance(node, Pfs):
        return {
            "pfs": {
                "name": node.name,
                "repo": node.repo,
                "branch": node.branch,
                "glob": node.glob,
                **({"join_on": node.join_on} if node.join_on else {}),
                **({"outer_join": True} if node.outer_join else {}),
                **({"group_by": node.group_by} if node.group_by else {}),
                "s3": node.s3,
                "empty_files": node.empty_files,
            }
        }
    if isinstance(node, Cron):
        return {"cron": {"name": node.name, "spec": node.spec, "overwrite": node.overwrite}}
    return {_kind(node): [_input_json(child) for child in node.inputs]}


def _resources_json(r: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.cpu is not None:
        out["cpu"] = r.cpu
    if r.memory is not None:
        out["memory"] = format_memory(r.memory)
    if r.gpu is not None:
        out["gpu"] = {"type": r.gpu.type, "number": r.gpu.number}
    return out


def to_json(spec: PipelineSpec) -> dict[str, Any]:
    """The canonical JSON form: Pachyderm's field names in a fixed order, every
    default written out, optional parts (timeouts, resources, egress) only
    when set. parse_spec(to_json(s)) == s."""
    t = spec.transform
    out: dict[str, Any] = {
        "pipeline": {"name": spec.name},
        "description": spec.description,
        "input": _input_json(spec.input),
        "transform": {
            "image": t.image,
            "cmd": list(t.cmd),
            "stdin": list(t.stdin),
            "env": dict(t.env),
            "err_cmd": list(t.err_cmd),
            "accept_return_code": list(t.accept_return_code),
        },
        "parallelism_spec": {"constant": spec.parallelism_spec.constant},
        "datum_tries": spec.datum_tries,
    }
    if spec.datum_timeout is not None:
        out["datum_timeout"] = format_duration(spec.datum_timeout)
    if spec.job_timeout is not None:
        out["job_timeout"] = format_duration(spec.job_timeout)
    if spec.resource_requests is not None:
        out["resource_requests"] = _resources_json(spec.resource_requests)
    if spec.resource_limits is not None:
        out["resource_limits"] = _resources_json(spec.resource_limits)
    out["s3_out"] = spec.s3_out
    out["reprocess_spec"] = spec.reprocess_spec.value
    if spec.egress is not None:
        out["egress"] = {"URL": spec.egress.url}
    out["output_branch"] = spec.output_branch
    if spec.scheduling_spec != SchedulingSpec():
        out["scheduling_spec"] = {
            "node_selector": dict(spec.scheduling_spec.node_selector),
            "priority_class_name": spec.scheduling_spec.priority_class_name,
        }
    if spec.tolerations:
        out["tolerations"] = [_toleration_json(t) for t in spec.tolerations]
    return out


def _toleration_json(t: Toleration) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": t.key,
        "operator": t.operator.value,
        "value": t.value,
        "effect": t.effect.value,
    }
    if t.toleration_seconds is not None:
        out["toleration_seconds"] = t.toleration_seconds
    return out
