"""What every client command shares: settings, the client, targets
(`REPO@REF:PATH`), output as tables or JSON, and exit codes.

Exit codes: 0 done; 1 any other failure; 2 bad usage or input; 3 not found;
4 conflict (exists already, merge conflict, head moved); 5 not
authenticated, or no endpoint/keys configured; 6 the server is unreachable
or unavailable; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.client import Client, LoxoError
from gateway.client.models import plural as plural  # re-exported for the commands
from gateway.client.transfer import UnsafeKeys

# Interrupted by Ctrl-C (SIGINT): 128 + 2, as shells report it.
EXIT_INTERRUPTED = 130
EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_AUTH, EXIT_UNAVAILABLE = (
    1,
    2,
    3,
    4,
    5,
    6,
)

# Piped output is not cut to 80 columns: scripts get whole ids.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 400)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 400)


class Output(StrEnum):
    table = "table"
    json = "json"


OUTPUT = typer.Option(Output.table, "--output", "-o", help="table (for people) or json.")


def config_path() -> Path:
    if os.environ.get("LOXO_CONFIG"):
        return Path(os.environ["LOXO_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "loxo" / "config.json"


@dataclass(frozen=True, slots=True)
class Settings:
    endpoint: str | None
    access_key: str | None
    secret_key: str | None
    region: str = "us-east-1"

    @staticmethod
    def load() -> Settings:
        """The config file's settings, each overridden by its LOXO_* variable."""
        path = config_path()
        stored: dict[str, Any] = {}
        if path.exists():
            try:
                stored = json.loads(path.read_text("utf-8"))
            except ValueError:
                fail(f"{path} is not valid JSON; fix or delete it", EXIT_USAGE)
        return Settings(
            os.environ.get("LOXO_ENDPOINT") or stored.get("endpoint"),
            os.environ.get("LOXO_ACCESS_KEY") or stored.get("access_key"),
            os.environ.get("LOXO_SECRET_KEY") or stored.get("secret_key"),
            os.environ.get("LOXO_REGION") or stored.get("region") or "us-east-1",
        )

    def save(self) -> Path:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({k: v for k, v in dataclasses.asdict(self).items() if v is not None}, f)
        os.replace(tmp, path)
        return path

    def require(self) -> tuple[str, str, str]:
        if not (self.endpoint and self.access_key and self.secret_key):
            fail(
                "no endpoint and keys configured: run `loxo config set --endpoint URL "
                "--access-key KEY --secret-key SECRET` (or `--from-data-dir ./loxo-data`), "
                "or set LOXO_ENDPOINT, LOXO_ACCESS_KEY and LOXO_SECRET_KEY",
                EXIT_AUTH,
            )
        return self.endpoint, self.access_key, self.secret_key


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    # The message is text, never markup: "[repo_not_found]" must print as is.
    err.print(Text.assemble(("error:", "red"), " ", message))
    raise typer.Exit(code)


_NOT_FOUND = {
    "repo_not_found",
    "branch_not_found",
    "tag_not_found",
    "commit_not_found",
    "ref_not_found",
    "open_commit_not_found",
    "object_not_found",
    "trash_not_found",
    "upload_not_found",
    "pipeline_not_found",
    "job_not_found",
    "datum_not_found",
    "not_found",
}
_CONFLICT = {
    "repo_exists",
    "branch_exists",
    "tag_exists",
    "merge_conflict",
    "head_moved",
    "default_branch",
    "branch_not_empty",
    "read_only",
    "pipeline_exists",
}
_USAGE = {
    "invalid_name",
    "invalid_ref",
    "ambiguous_ref",
    "invalid_request",
    "confirmation_required",
    "unmerged_commits",
    "invalid_spec",
}
_AUTH = {"unauthenticated", "access_denied"}


def exit_code_for(code: str, status: int) -> int:
    if code in _NOT_FOUND:
        return EXIT_NOT_FOUND
    if code in _CONFLICT:
        return EXIT_CONFLICT
    if code in _USAGE:
        return EXIT_USAGE
    if code in _AUTH:
        return EXIT_AUTH
    if status >= 500:
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


@contextlib.contextmanager
def client() -> Iterator[Client]:
    """A connected client; API and transport errors become messages and exit codes."""
    settings = Settings.load()
    endpoint, access, secret = settings.require()
    api = Client(endpoint, access, secret, region=settings.region)
    try:
        yield api
    except LoxoError as exc:
        for conflict in exc.details.get("conflicts", []):
            err.print(f"  conflict: {conflict['path']} ({conflict['kind']})")
        fail(f"{exc.message} [{exc.code}]", exit_code_for(exc.code, exc.status))
    except httpx.TransportError as exc:
        fail(f"cannot reach loxo at {endpoint}: {exc}", EXIT_UNAVAILABLE)
    except ClientError as exc:
        _s3_failure(exc)
    except S3UploadFailedError as exc:
        # boto3's transfer manager wraps the S3 error it met.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError):
            _s3_failure(cause)
        fail(f"S3: {exc}", EXIT_ERROR)
    except BotoCoreError as exc:
        fail(f"S3: {exc}", EXIT_UNAVAILABLE)
    except FileNotFoundError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except UnsafeKeys as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        api.close()


def _s3_failure(exc: ClientError) -> NoReturn:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if status == 404:
        mapped = EXIT_NOT_FOUND
    elif code == "AccessDenied":
        mapped = EXIT_CONFLICT  # a write to something read-only (a snapshot, a tag)
    elif code == "InvalidObjectState":
        mapped = EXIT_ERROR  # a purged body: nothing to retry, nor to log in again
    elif status == 403:
        mapped = EXIT_AUTH  # InvalidAccessKeyId, SignatureDoesNotMatch
    else:
        mapped = EXIT_ERROR
    fail(f"S3: {error.get('Message') or code} [{code}]", mapped)


@dataclass(frozen=True, slots=True)
class Target:
    repo: str
    ref: str | None
    path: str

    @property
    def name(self) -> str:
        """The ref, for targets parsed with need_ref=True."""
        assert self.ref is not None
        return self.ref


def open_commit_target(text: str) -> tuple[str, str]:
    """(repo, open commit id or prefix) of `REPO@ID`, or of the bucket `commit
    start` printed: `REPO.ID`, also as `s3://REPO.ID/`."""
    name = text.removeprefix("s3://").rstrip("/")
    if "@" in name:
        t = target(name, need_ref=True, allow_path=False)
        return t.repo, t.name
    repo, dot, ident = name.partition(".")
    if not (repo and dot and ident) or "/" in ident:
        fail(
            f"{text!r}: expected REPO@ID or the bucket `loxo commit start` printed (REPO.ID)",
            EXIT_USAGE,
        )
    return repo, ident


def _messages_path() -> Path:
    return config_path().parent / "open-commit-messages.json"


def _messages() -> dict[str, str]:
    try:
        doc = json.loads(_messages_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, str)} if isinstance(doc, dict) else {}


def _save_messages(messages: dict[str, str]) -> None:
    path = _messages_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(messages), "utf-8")
    os.replace(tmp, path)


def remember_message(repo: str, commit_id: str, message: str) -> None:
    """Keep `commit start -m`'s message (on this machine) for `commit finish`."""
    messages = _messages()
    messages[f"{repo}@{commit_id}"] = message
    _save_messages(messages)


def recall_message(repo: str, ident: str, forget: bool = False) -> str | None:
    """The message `commit start -m` kept for repo@ident (an id or a prefix)."""
    messages = _messages()
    found = [k for k in messages if k.startswith(f"{repo}@{ident}")]
    if len(found) != 1:
        return None
    message = messages[found[0]]
    if forget:
        del messages[found[0]]
        _save_messages(messages)
    return message


def ref_text(t: Target) -> str:
    """`repo@ref` of a target, as the user gave it (`repo` for the default branch)."""
    return f"{t.repo}@{t.ref}" if t.ref else t.repo


def target(text: str, need_ref: bool = False, allow_path: bool = True) -> Target:
    """Parse `REPO[@REF][:PATH]`."""
    head, colon, path = text.partition(":")
    if colon and not allow_path:
        fail(f"{text!r}: expected REPO@REF, without a :PATH", EXIT_USAGE)
    repo, at, ref = head.partition("@")
    if not repo or (at and not ref):
        fail(f"{text!r}: expected REPO@REF[:PATH]", EXIT_USAGE)
    if need_ref and not at:
        fail(f"{text!r}: name the branch or commit too, as REPO@REF", EXIT_USAGE)
    return Target(repo, ref or None, path.lstrip("/"))


def require_branch(api: Client, repo: str, name: str) -> None:
    """Fail clearly, before any transfer, unless repo@name is a branch."""
    try:
        api.get_branch(repo, name)
    except LoxoError as exc:
        if exc.code != "branch_not_found":
            raise
        try:
            api.get_tag(repo, name)
        except LoxoError:
            fail(f"{repo}@{name} is not a branch [branch_not_found]", EXIT_NOT_FOUND)
        fail(f"{repo}@{name} is a tag, and tags are read-only: put to a branch", EXIT_CONFLICT)


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_json(value), indent=2) + "\n")


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(*columns, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    out.print(t)


def short(commit: str | None) -> str:
    return commit[:12] if commit else "-"
