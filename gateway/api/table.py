"""The control API's operation table: how an operation is declared (method,
path, parameters, body, result) and what a handler gets (a parsed Call).
The OpenAPI document is built from this table, so the two cannot disagree;
the handlers live in gateway/api/operations/.

Lists take `limit` (1..10000, default 1000) and `cursor` (the previous page's
`next_cursor`) and answer {"items": [...], "next_cursor": str | null}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

from gateway.api import encode
from gateway.api.errors import bad_request
from s3api.inputs import decimal
from versioning.control import Control

DEFAULT_LIMIT = 1000
MAX_IDLE_SECONDS = 365 * 24 * 3600
MAX_LIMIT = 10_000


@dataclass(slots=True)
class Call:
    """One API request, parsed: path parameters, query and JSON body."""

    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]
    access_key: str
    # Whether the client has hung up (a long poll stops waiting, and gives back
    # what it took, when nobody is left to answer).
    disconnected: Callable[[], Awaitable[bool]] | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def limit(self) -> int:
        value = decimal(self.query.get("limit", str(DEFAULT_LIMIT)))
        if value is None or not 1 <= value <= MAX_LIMIT:
            raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
        return value

    def time(self, name: str) -> int | None:
        text = self.query.get(name)
        if text is None:
            return None
        try:
            return encode.parse_time(text)
        except ValueError:
            raise bad_request(f"{name} must be an ISO 8601 time or Unix seconds") from None

    def field(self, name: str, required: bool = True) -> Any:
        if name not in self.body:
            if required:
                raise bad_request(f"the JSON body needs the field {name!r}")
            return None
        value = self.body[name]
        if value is not None and not isinstance(value, str | int | float | bool):
            raise bad_request(f"field {name!r} has the wrong type")
        return value

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.field(name, required)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"field {name!r} must be a string")
        return value


Handler = Callable[[Control, Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "path" or "query"
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # under /_loxo/api/v1, with {name} placeholders
    name: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    body: dict[str, str] = field(default_factory=dict)  # field -> description
    required: tuple[str, ...] = ()
    returns: str = ""  # component schema name; "list:X" for a page of X
    status: int = 200


OPERATIONS: list[Operation] = []

REPO = Param("repo", "path", "repo name", True)
BRANCH = Param("branch", "path", "branch name", True)
PAGE = (
    Param("limit", "query", f"items per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})"),
    Param("cursor", "query", "next_cursor of the previous page"),
)


def op(
    method: str,
    path: str,
    summary: str,
    *,
    params: tuple[Param, ...] = (),
    body: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
    returns: str = "",
    status: int = 200,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method,
                path,
                handler.__name__,
                summary,
                handler,
                params,
                body or {},
                required,
                returns,
                status,
            )
        )
        return handler

    return register


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def named_page(items: list[Any], limit: int, key: str = "name") -> dict[str, Any]:
    """A page of items listed by name: the cursor is the last name."""
    more = len(items) > limit
    items = items[:limit]
    return page(items, items[-1][key] if more and items else None)


def json_response(value: Any, status: int) -> Response:
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status_code=status)
    return JSONResponse(value, status_code=status)
