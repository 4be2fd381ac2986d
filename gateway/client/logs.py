"""Logs of every loxo process (the server, its workers, `loxo worker`
anywhere): where they go, in which format, from which loggers. It lives
beside the client because workers, which import nothing of the server, log
the same way, so local workers' lines fit the server's JSON stream.

Every log line goes to stderr, one record per line, either as JSON (one
object per line, for log shippers) or in a human format (for a terminal);
`--log-format auto` picks human when stderr is a terminal and JSON otherwise.
stdout keeps the few lines meant for the person who started the server (the
readiness line, generated credentials), so a JSON stream on stderr is never
interrupted by them.

Loggers are named `loxo.<area>` (docs/operations.md lists them): `loxo` for
the process (start, stop, background tasks), `loxo.access` for one line per
request, `loxo.s3`, `loxo.api`, `loxo.pipelines`, `loxo.gc`,
`loxo.migrations`, `loxo.executor` for pipeline executors, and so on. A
record's `extra={...}` fields become fields of the JSON object (and
`key=value` pairs in the human format), so events carry data, not only prose.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

# The attributes every LogRecord has; anything else on a record came from
# `extra=` and is a field of the event.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The event fields a record carries (its `extra=`), in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k[:1] != "_"}


# The access log writes a record per request: the time text is made once a
# second, not once a record (strftime is a good part of a record's cost).
# One tuple, replaced whole: a thread never reads one second's number with
# another second's text.
_second: tuple[int, str] = (-1, "")


def _utc(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: sorts as text, parses everywhere."""
    global _second
    whole = int(created)
    cached = _second
    if whole != cached[0]:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int(created % 1 * 1000):03d}Z"


_SIMPLE = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """A JSON-able form of a field value (bytes as hex, the rest as text)."""
    if type(value) in _SIMPLE or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the
    record's fields, and the traceback (`exception`) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key[:1] != "_" and key not in doc:
                doc[key] = value if type(value) in _SIMPLE else _plain(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii=False: keys and names stay readable; json escapes
        # control characters and newlines, so a record is always one line.
        return json.dumps(doc, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...`, then the traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = fields_of(record)
        if not extras:
            return text
        head, sep, tail = text.partition("\n")  # fields before any traceback
        pairs = " ".join(f"{k}={_human_value(v)}" for k, v in extras.items() if v is not None)
        return f"{head} {pairs}{sep}{tail}" if pairs else text


def _human_value(value: Any) -> str:
    """Text as is unless it needs quotes (spaces, quotes, =, nothing at
    all); anything else as compact JSON (a dict of counts stays readable)."""
    if not isinstance(value, str):
        return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    if not value or any(c.isspace() or c in '"=' for c in value):
        return json.dumps(value, ensure_ascii=False)
    return value


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`json` or `human`: `auto` is human on a terminal, JSON otherwise."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "human" if isatty is not None and isatty() else "json"


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Send every log record at `level` or above to `stream` (stderr) in
    `fmt`; returns the format used. Replaces whatever handlers the root
    logger had, so a second call (tests) does not double every line."""
    out = stream if stream is not None else sys.stderr
    chosen = resolve_format(fmt, out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if chosen == "json" else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pgserver narrates every pg_ctl call at INFO; asyncio's and uvicorn's
    # INFO lines ("Started server process") say nothing the loxo events don't.
    for name in ("pgserver", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return chosen
