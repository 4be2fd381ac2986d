"""The lease: what the server hands a worker to run one attempt of one datum
(the `items` of `POST /work/lease`, docs/design/jobs.md), parsed into frozen
dataclasses. A malformed lease raises `LeaseError` naming the field, so a
worker reports "bad lease" instead of failing somewhere inside a run.

`inspect_datum` answers the same shape under "lease", without `attempt` and
with `output_bucket` null (a local replay: nothing is uploaded); `Lease`
accepts both.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class LeaseError(ValueError):
    """A lease document that does not have the contract's shape."""


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in doc:
        raise LeaseError(f"{where}{name}: missing")
    value = doc[name]
    # bool is an int: a count given as true is still wrong.
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise LeaseError(f"{where}{name}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise LeaseError(f"{where}{name}: expected {expected}, got {type(value).__name__}")
    return value


def _optional(
    doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str, default: Any
) -> Any:
    if doc.get(name) is None:
        return default
    return _field(doc, name, kind, where)


def _strings(doc: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    values = _optional(doc, name, list, where, [])
    if not all(isinstance(v, str) for v in values):
        raise LeaseError(f"{where}{name}: expected a list of strings")
    return tuple(values)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LeaseError(f"{where}: expected an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Transform:
    cmd: tuple[str, ...]
    stdin: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    err_cmd: tuple[str, ...] = ()
    err_stdin: tuple[str, ...] = ()
    accept_return_code: tuple[int, ...] = ()

    @staticmethod
    def from_json(value: Any, where: str = "transform.") -> Transform:
        doc = _object(value, where.rstrip("."))
        cmd = _strings(doc, "cmd", where)
        if not cmd:
            raise LeaseError(f"{where}cmd: empty")
        env = _optional(doc, "env", Mapping, where, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise LeaseError(f"{where}env: expected string values")
        codes = _optional(doc, "accept_return_code", list, where, [])
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            raise LeaseError(f"{where}accept_return_code: expected a list of integers")
        return Transform(
            cmd=cmd,
            stdin=_strings(doc, "stdin", where),
            env=dict(env),
            err_cmd=_strings(doc, "err_cmd", where),
            err_stdin=_strings(doc, "err_stdin", where),
            accept_return_code=tuple(codes),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "cmd": list(self.cmd),
            "stdin": list(self.stdin),
            "env": dict(self.env),
            "err_cmd": list(self.err_cmd),
            "err_stdin": list(self.err_stdin),
            "accept_return_code": list(self.accept_return_code),
        }


@dataclass(frozen=True, slots=True)
class InputFile:
    key: str
    size: int
    # A small file's bytes, sent in the lease: no GET needed.
    body: bytes | None = None

    @staticmethod
    def from_json(value: Any, where: str) -> InputFile:
        doc = _object(value, where.rstrip("."))
        key = _field(doc, "key", str, where)
        if not key or key.startswith("/") or ".." in key.split("/"):
            # The key becomes a path under pfs/<input>: it must stay there.
            raise LeaseError(f"{where}key: {key!r} is not a safe relative path")
        size = _optional(doc, "size", int, where, 0)
        if isinstance(size, bool) or size < 0:
            raise LeaseError(f"{where}size: expected a size in bytes")
        body = None
        text = _optional(doc, "body", str, where, None)
        if text is not None:
            try:
                body = base64.b64decode(text, validate=True)
            except binascii.Error:
                raise LeaseError(f"{where}body: not base64") from None
            if len(body) != size:
                raise LeaseError(f"{where}body: {len(body)} bytes, the file has {size}")
        return InputFile(key, size, body)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"key": self.key, "size": self.size}
        if self.body is not None:
            doc["body"] = base64.b64encode(self.body).decode()
        return doc


@dataclass(frozen=True, slots=True)
class LeaseInput:
    name: str
    repo: str
    branch: str
    commit: str
    path: str
    s3: bool
    bucket: str
    files: tuple[InputFile, ...] = ()

    @staticmethod
    def from_json(value: Any, where: str) -> LeaseInput:
        doc = _object(value, where.rstrip("."))
        name = _field(doc, "name", str, where)
        if not name or "/" in name or name in (".", "..", "out"):
            raise LeaseError(f"{where}name: {name!r} cannot name a folder under pfs/")
        files = _optional(doc, "files", list, where, [])
        if files and not doc.get("bucket"):
            raise LeaseError(f"{where}bucket: missing, and there are files to read")
        return LeaseInput(
            name=name,
            repo=_field(doc, "repo", str, where),
            branch=_optional(doc, "branch", str, where, ""),
            # An input branch without a commit yet has neither (and no files).
            commit=_optional(doc, "commit", str, where, ""),
            path=_optional(doc, "path", str, where, ""),
            s3=bool(_optional(doc, "s3", bool, where, False)),
            bucket=_optional(doc, "bucket", str, where, ""),
            files=tuple(InputFile.from_json(f, f"{where}files[{i}].") for i, f in enumerate(files)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repo": self.repo,
            "branch": self.branch,
            "commit": self.commit,
            "path": self.path,
            "s3": self.s3,
            "bucket": self.bucket,
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class Lease:
    """One attempt of one datum. `attempt` is "" and `output_bucket` None for a
    local replay (`loxo datum run --local`)."""

    attempt: str
    job: str
    datum: str
    pipeline: str
    transform: Transform
    inputs: tuple[LeaseInput, ...]
    output_bucket: str | None
    version: int = 0
    try_: int = 1
    datum_tries: int = 1
    datum_timeout: float = 0.0
    s3_out: bool = False
    # (bytes per file, bytes in all): small outputs the server takes in the
    # `complete` call; (0, 0): every output goes by S3.
    inline_outputs: tuple[int, int] = (0, 0)

    @property
    def s3_mode(self) -> bool:
        """Whether user code talks S3 itself (then it gets endpoint and keys)."""
        return self.s3_out or any(i.s3 for i in self.inputs)

    @staticmethod
    def from_json(value: Any) -> Lease:
        doc = _object(value, "lease")
        inputs = _field(doc, "inputs", list, "")
        parsed = tuple(LeaseInput.from_json(v, f"inputs[{i}].") for i, v in enumerate(inputs))
        names = [i.name for i in parsed]
        if len(set(names)) != len(names):
            raise LeaseError(f"inputs: two inputs share a name ({', '.join(names)})")
        timeout = _optional(doc, "datum_timeout", (int, float), "", 0)
        if timeout < 0:
            raise LeaseError("datum_timeout: negative")
        inline = _optional(doc, "inline_outputs", Mapping, "", {})
        limits = tuple(inline.get(k, 0) for k in ("file", "total"))
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in limits):
            raise LeaseError("inline_outputs: expected {file, total} byte counts")
        return Lease(
            attempt=_optional(doc, "attempt", str, "", ""),
            job=_field(doc, "job", str, ""),
            datum=_field(doc, "datum", str, ""),
            pipeline=_field(doc, "pipeline", str, ""),
            transform=Transform.from_json(_field(doc, "transform", Mapping, "")),
            inputs=parsed,
            output_bucket=_optional(doc, "output_bucket", str, "", None),
            version=_optional(doc, "version", int, "", 0),
            try_=_optional(doc, "try", int, "", 1),
            datum_tries=_optional(doc, "datum_tries", int, "", 1),
            datum_timeout=float(timeout),
            s3_out=bool(_optional(doc, "s3_out", bool, "", False)),
            inline_outputs=(int(limits[0]), int(limits[1])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "job": self.job,
            "datum": self.datum,
            "pipeline": self.pipeline,
            "version": self.version,
            "try": self.try_,
            "datum_tries": self.datum_tries,
            "transform": self.transform.to_json(),
            "datum_timeout": self.datum_timeout,
            "inputs": [i.to_json() for i in self.inputs],
            "output_bucket": self.output_bucket,
            "s3_out": self.s3_out,
            "inline_outputs": {"file": self.inline_outputs[0], "total": self.inline_outputs[1]},
        }
