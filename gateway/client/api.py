"""The control API client: `AsyncClient` for asyncio code, `Client` for
everything else (it runs an AsyncClient on a private event-loop thread, so it
works inside notebooks and other running loops too). Requests are signed with
SigV4 using the S3 keys (botocore's signer, the one every AWS SDK matches).

    from gateway.client import Client
    with Client("http://127.0.0.1:9000", KEY, SECRET) as loxo:
        loxo.create_repo("images")
        for commit in loxo.log("images"):
            print(commit.id, commit.message)
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, urlencode

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.client.models import (
    Branch,
    Change,
    Commit,
    MergeResult,
    OpenCommit,
    Pipeline,
    PipelinePlan,
    Purge,
    PurgePlan,
    Repo,
    Tag,
    TrashEntry,
    Upload,
    Version,
)

T = TypeVar("T")
PREFIX = "/_loxo/api/v1"
# Ref moves answer `busy` while a garbage collection runs (see
# versioning.catalog.MOVE_LOCK): retried with backoff for this long.
BUSY_RETRY_SECONDS = 120.0


class LoxoError(Exception):
    """An error answer of the API: `code` is stable, `message` for people."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _path(*parts: str) -> str:
    return PREFIX + "".join("/" + quote(p, safe="") for p in parts)


class AsyncClient:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        timeout: float = 300.0,
        verify: bool | str = True,
        busy_retry_seconds: float = BUSY_RETRY_SECONDS,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.busy_retry_seconds = busy_retry_seconds
        self.region = region
        self._credentials = Credentials(access_key, secret_key)
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing ------------------------------------------------------------

    def _signed(
        self, method: str, path: str, params: dict[str, Any] | None, body: bytes
    ) -> httpx.Request:
        query = urlencode(
            sorted((k, str(v)) for k, v in (params or {}).items() if v is not None),
            quote_via=quote,
        )
        url = self.endpoint + path + (f"?{query}" if query else "")
        headers = {"content-type": "application/json"} if body else {}
        aws = AWSRequest(method=method, url=url, data=body, headers=headers)
        S3SigV4Auth(self._credentials, "s3", self.region).add_auth(aws)
        return httpx.Request(method, url, content=body, headers=dict(aws.headers.items()))

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer (None for 204). Raises LoxoError."""
        data = json.dumps(body).encode() if body is not None else b""
        delay = 0.2
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_retry_seconds
        while True:
            response = await self._http.send(self._signed(method, path, params, data))
            if response.status_code == 204:
                return None
            try:
                doc = response.json()
            except ValueError:
                raise LoxoError(
                    response.status_code, "bad_response", response.text[:200], {}
                ) from None
            if response.status_code < 400:
                return doc
            error = doc.get("error", {}) if isinstance(doc, dict) else {}
            code = error.get("code", "unknown")
            if code == "busy" and loop.time() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            details = {k: v for k, v in error.items() if k not in ("code", "message")}
            raise LoxoError(response.status_code, code, error.get("message", ""), details)

    async def pages(
        self, path: str, params: dict[str, Any] | None = None, limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paginated list, following cursors."""
        query = dict(params or {})
        if limit is not None:
            query["limit"] = limit
        while True:
            doc = await self.request("GET", path, query)
            for item in doc["items"]:
                yield item
            if not doc.get("next_cursor"):
                return
            query["cursor"] = doc["next_cursor"]

    # -- repos ---------------------------------------------------------------

    async def create_repo(self, name: str) -> Repo:
        """A repo with an empty default branch, main."""
        body = {"name": name}
        return Repo.from_json(await self.request("POST", _path("repos"), body=body))

    async def list_repos(self) -> AsyncIterator[Repo]:
        async for item in self.pages(_path("repos")):
            yield Repo.from_json(item)

    async def describe_repo(self, name: str) -> Repo:
        return Repo.from_json(await self.request("GET", _path("repos", name)))

    async def delete_repo(self, name: str, confirm: bool = False) -> None:
        await self.request("DELETE", _path("repos", name), {"confirm": str(confirm).lower()})

    # -- branches --------------------------------------------------------------

    async def create_branch(self, repo: str, name: str, source: str | None = None) -> Branch:
        body = {"name": name, "from": source}
        return Branch.from_json(
            await self.request("POST", _path("repos", repo, "branches"), body=body)
        )

    async def list_branches(self, repo: str) -> AsyncIterator[Branch]:
        async for item in self.pages(_path("repos", repo, "branches")):
            yield Branch.from_json(item)

    async def get_branch(self, repo: str, name: str) -> Branch:
        return Branch.from_json(await self.request("GET", _path("repos", repo, "branches", name)))

    async def delete_branch(self, repo: str, name: str, require_merged: bool = False) -> None:
        """Delete a branch, to the trash. With `require_merged`, refused
        (LoxoError unmerged_commits, `details["commits"]` many) while it has
        commits no other branch or tag reaches."""
        params = {"require_merged": "true"} if require_merged else None
        await self.request("DELETE", _path("repos", repo, "branches", name), params)

    # -- the trash ---------------------------------------------------------------

    async def list_trash(
        self, repo: str | None = None, kind: str | None = None
    ) -> AsyncIterator[TrashEntry]:
        """Deleted repos and branches that can still be restored, newest first."""
        async for item in self.pages(_path("trash"), {"repo": repo, "kind": kind}):
            yield TrashEntry.from_json(item)

    async def restore_repo(self, name: str, as_name: str | None = None) -> Repo:
        """Put a deleted repo back, with all its branches, tags and history
        (LoxoError repo_exists when the name was taken again: pass `as_name`)."""
        path = _path("repos", name, "restore")
        return Repo.from_json(await self.request("POST", path, body={"as": as_name}))

    async def restore_branch(self, repo: str, name: str, as_name: str | None = None) -> Branch:
        """Put a deleted branch back at the head it had (LoxoError
        branch_exists when the name was taken again: pass `as_name`)."""
        path = _path("repos", repo, "branches", name, "restore")
        return Branch.from_json(await self.request("POST", path, body={"as": as_name}))

    async def reset_branch(
        self, repo: str, name: str, to: str, expected_head: str | Any | None = ...
    ) -> Branch:
        """Move a branch to a ref; with `expected_head` (a commit id, or None
        for "no commit"), only if that is still its head (LoxoError head_moved)."""
        body: dict[str, Any] = {"to": to}
        if expected_head is not ...:
            body["expected_head"] = expected_head
        path = _path("repos", repo, "branches", name, "reset")
        return Branch.from_json(await self.request("POST", path, body=body))

    # -- tags --------------------------------------------------------------------

    async def create_tag(self, repo: str, name: str, source: str | None = None) -> Tag:
        body = {"name": name, "from": source}
        return Tag.from_json(await self.request("POST", _path("repos", repo, "tags"), body=body))

    async def list_tags(self, repo: str) -> AsyncIterator[Tag]:
        async for item in self.pages(_path("repos", repo, "tags")):
            yield Tag.from_json(item)

    async def get_tag(self, repo: str, name: str) -> Tag:
        return Tag.from_json(await self.request("GET", _path("repos", repo, "tags", name)))

    async def delete_tag(self, repo: str, name: str) -> None:
        await self.request("DELETE", _path("repos", repo, "tags", name))

    # -- commits -------------------------------------------------------------------

    async def log(
        self,
        repo: str,
        ref: str | None = None,
        path: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Commit]:
        """Commits newest first, fetched `page_size` (default 1000) at a time."""
        params = {"ref": ref, "path": path, "since": since, "until": until}
        async for item in self.pages(_path("repos", repo, "commits"), params, page_size):
            yield Commit.from_json(item)

    async def inspect(self, repo: str, ref: str | None = None) -> Commit:
        """A commit's details; `ref` None: the default branch's head."""
        name = ref or (await self.describe_repo(repo)).default_branch
        return Commit.from_json(await self.request("GET", _path("repos", repo, "commits", name)))

    async def diff(
        self, repo: str, from_ref: str, to_ref: str, prefix: str = ""
    ) -> AsyncIterator[Change]:
        params = {"from": from_ref, "to": to_ref, "prefix": prefix or None}
        async for item in self.pages(_path("repos", repo, "diff"), params, limit=10_000):
            yield Change.from_json(item)

    async def history(self, repo: str, path: str, ref: str | None = None) -> AsyncIterator[Version]:
        params = {"path": path, "ref": ref}
        async for item in self.pages(_path("repos", repo, "history"), params):
            yield Version.from_json(item)

    # -- purges --------------------------------------------------------------------------

    async def purge_plan(self, repo: str, path: str) -> PurgePlan:
        """What purging `path` (a folder when it ends in /) would erase."""
        doc = await self.request("GET", _path("repos", repo, "purge-plan"), {"path": path})
        return PurgePlan.from_json(doc)

    async def purge(self, repo: str, path: str, reason: str, confirm: bool = False) -> Purge:
        """Erase the bytes of every version of `path` from the repo's history."""
        body = {"path": path, "reason": reason, "confirm": confirm}
        return Purge.from_json(
            await self.request("POST", _path("repos", repo, "purges"), body=body)
        )

    async def list_purges(self, repo: str) -> AsyncIterator[Purge]:
        """The repo's purge audit log, oldest first."""
        async for item in self.pages(_path("repos", repo, "purges")):
            yield Purge.from_json(item)

    # -- open commits ------------------------------------------------------------------

    async def start_commit(
        self, repo: str, branch: str | None = None, idle_seconds: float | None = None
    ) -> OpenCommit:
        body = {"branch": branch, "idle_seconds": idle_seconds}
        path = _path("repos", repo, "open-commits")
        return OpenCommit.from_json(await self.request("POST", path, body=body))

    async def list_open_commits(self, repo: str) -> AsyncIterator[OpenCommit]:
        async for item in self.pages(_path("repos", repo, "open-commits")):
            yield OpenCommit.from_json(item)

    async def finish_commit(self, repo: str, commit: str, message: str) -> str | None:
        """The finished commit's id (None when nothing was written)."""
        path = _path("repos", repo, "open-commits", commit, "finish")
        doc = await self.request("POST", path, body={"message": message})
        return doc["commit"]  # type: ignore[no-any-return]

    async def abort_commit(self, repo: str, commit: str) -> None:
        await self.request("DELETE", _path("repos", repo, "open-commits", commit))

    # -- merge and revert ------------------------------------------------------------------

    async def merge(
        self,
        repo: str,
        source: str,
        into: str,
        strategy: str | None = None,
        message: str | None = None,
    ) -> MergeResult:
        body = {"source": source, "into": into, "strategy": strategy, "message": message}
        doc = await self.request("POST", _path("repos", repo, "merge"), body=body)
        return MergeResult.from_json(doc)

    async def revert(
        self, repo: str, commit: str, branch: str | None = None, message: str | None = None
    ) -> str | None:
        body = {"commit": commit, "branch": branch, "message": message}
        doc = await self.request("POST", _path("repos", repo, "revert"), body=body)
        return doc["commit"]  # type: ignore[no-any-return]

    # -- multipart uploads -------------------------------------------------------------------

    async def list_uploads(self, repo: str, branch: str | None = None) -> AsyncIterator[Upload]:
        """Multipart uploads in progress in `repo` (or on `branch`), oldest first."""
        async for item in self.pages(_path("repos", repo, "uploads"), {"branch": branch}):
            yield Upload.from_json(item)

    async def abort_upload(
        self, repo: str, upload_id: str, branch: str | None = None, key: str | None = None
    ) -> None:
        """Abort an upload (only if it is `branch`'s and `key`'s, when given)."""
        params = {"branch": branch, "key": key}
        await self.request("DELETE", _path("repos", repo, "uploads", upload_id), params)

    # -- pipelines ---------------------------------------------------------------------

    async def plan_pipeline(self, spec: dict[str, Any], reprocess: bool = False) -> PipelinePlan:
        """What a job of `spec` (Pachyderm's JSON form) would run, skip and remove
        now, each datum with its reason (against the pipeline's past datums when
        it exists; with `reprocess`, as after `update --reprocess`). Nothing runs."""
        body = {"spec": spec, "reprocess": reprocess}
        doc = await self.request("POST", _path("pipelines", "plan"), body=body)
        return PipelinePlan.from_json(doc)

    async def create_pipeline(self, spec: dict[str, Any]) -> Pipeline:
        """A pipeline from a spec (Pachyderm's format, as a mapping), and its
        output repo. `invalid_spec` errors name the field in details["field"]."""
        doc = await self.request("POST", _path("pipelines"), body={"spec": spec})
        return Pipeline.from_json(doc)

    async def update_pipeline(
        self, name: str, spec: dict[str, Any], reprocess: bool = False
    ) -> Pipeline:
        """A new version of the pipeline's spec; a new salt with `reprocess`."""
        body = {"spec": spec, "reprocess": reprocess}
        doc = await self.request("POST", _path("pipelines", name, "versions"), body=body)
        return Pipeline.from_json(doc)

    async def list_pipelines(self) -> AsyncIterator[Pipeline]:
        async for item in self.pages(_path("pipelines")):
            yield Pipeline.from_json(item)

    async def inspect_pipeline(self, name: str) -> Pipeline:
        return Pipeline.from_json(await self.request("GET", _path("pipelines", name)))

    async def stop_pipeline(self, name: str) -> Pipeline:
        return Pipeline.from_json(await self.request("POST", _path("pipelines", name, "stop")))

    async def start_pipeline(self, name: str) -> Pipeline:
        return Pipeline.from_json(await self.request("POST", _path("pipelines", name, "start")))

    async def delete_pipeline(
        self, name: str, keep_repo: bool = False, confirm: bool = False
    ) -> None:
        """Delete the pipeline; its output repo goes to the trash unless `keep_repo`."""
        params = {"confirm": str(confirm).lower(), "keep_repo": str(keep_repo).lower()}
        await self.request("DELETE", _path("pipelines", name), params)

    # -- jobs, datums, logs and lineage (docs/design/jobs.md has the JSON shapes) --

    async def list_jobs(
        self, pipeline: str | None = None, state: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Jobs, newest first (of one pipeline, in one state, when given)."""
        async for item in self.pages(_path("jobs"), {"pipeline": pipeline, "state": state}):
            yield item

    async def inspect_job(self, job: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self.request("GET", _path("jobs", job))
        return doc

    async def stop_job(self, job: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self.request("POST", _path("jobs", job, "stop"))
        return doc

    async def list_datums(
        self, job: str, state: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        async for item in self.pages(_path("jobs", job, "datums"), {"state": state}):
            yield item

    async def inspect_datum(self, job: str, datum: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self.request("GET", _path("jobs", job, "datums", datum))
        return doc

    async def restart_datum(self, job: str, datum: str) -> dict[str, Any]:
        path = _path("jobs", job, "datums", datum, "restart")
        doc: dict[str, Any] = await self.request("POST", path)
        return doc

    async def logs(
        self,
        pipeline: str | None = None,
        job: str | None = None,
        datum: str | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of log records, oldest first: {"items": [...], "next_cursor"}."""
        params = {"pipeline": pipeline, "job": job, "datum": datum, "cursor": cursor}
        doc: dict[str, Any] = await self.request("GET", _path("logs"), params)
        return doc

    async def wait_status(self, repo: str, commit: str) -> dict[str, Any]:
        """Whether everything downstream of repo@commit has finished, now."""
        params = {"repo": repo, "commit": commit}
        doc: dict[str, Any] = await self.request("GET", _path("wait"), params)
        return doc

    async def provenance(self, repo: str, path: str, ref: str | None = None) -> dict[str, Any]:
        """The input files (repo@commit:path) that made repo@ref:path, up the DAG."""
        params = {"repo": repo, "ref": ref, "path": path}
        doc: dict[str, Any] = await self.request("GET", _path("provenance"), params)
        return doc

    async def subvenance(self, repo: str, path: str, ref: str | None = None) -> dict[str, Any]:
        """Everything derived from repo@ref:path, down the DAG."""
        params = {"repo": repo, "ref": ref, "path": path}
        doc: dict[str, Any] = await self.request("GET", _path("subvenance"), params)
        return doc

    async def dag(self) -> dict[str, Any]:
        doc: dict[str, Any] = await self.request("GET", _path("dag"))
        return doc

    # -- the worker protocol ---------------------------------------------------------

    async def lease_datums(
        self,
        worker: str,
        max_items: int = 1,
        wait_seconds: float = 0.0,
        pipelines: list[str] | None = None,
        jobs: list[str] | None = None,
    ) -> dict[str, Any]:
        """Up to `max_items` datums to run: {"lease_seconds", "items": [Lease]};
        only of `pipelines` and of `jobs` when given."""
        body: dict[str, Any] = {"worker": worker, "max": max_items, "wait_seconds": wait_seconds}
        if pipelines is not None:
            body["pipelines"] = pipelines
        if jobs is not None:
            body["jobs"] = jobs
        doc: dict[str, Any] = await self.request("POST", _path("work", "lease"), body=body)
        return doc

    async def heartbeat(self, worker: str, attempts: list[str]) -> list[str]:
        """Extends the leases; the attempts no longer held."""
        body = {"worker": worker, "attempts": attempts}
        doc = await self.request("POST", _path("work", "heartbeat"), body=body)
        return list(doc.get("lost", []))

    async def complete_datum(self, result: dict[str, Any]) -> dict[str, Any]:
        """Report an attempt's outcome; LoxoError(409, "lease_lost") if not held."""
        doc: dict[str, Any] = await self.request("POST", _path("work", "complete"), body=result)
        return doc


P = ParamSpec("P")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Awaitable[T]],
) -> Callable[Concatenate[Client, P], T]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self.aio, *args, **kwargs))

    call.__doc__ = method.__doc__
    call.__name__ = method.__name__
    return call


def _iterating(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[Client, P], Iterator[T]]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._iter(method(self.aio, *args, **kwargs))

    call.__doc__ = method.__doc__
    call.__name__ = method.__name__
    return call


class Client:
    """The synchronous client: every AsyncClient method, blocking, with the
    same signature and typed results; list methods return iterators that
    fetch pages as they are consumed."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.aio: AsyncClient = self._run(_make(endpoint, access_key, secret_key, options))

    def _run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_await(coro), self._loop).result()

    def _iter(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(items.__anext__())
            except StopAsyncIteration:
                return

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self.aio.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    request = _blocking(AsyncClient.request)
    create_repo = _blocking(AsyncClient.create_repo)
    list_repos = _iterating(AsyncClient.list_repos)
    describe_repo = _blocking(AsyncClient.describe_repo)
    delete_repo = _blocking(AsyncClient.delete_repo)
    create_branch = _blocking(AsyncClient.create_branch)
    list_branches = _iterating(AsyncClient.list_branches)
    get_branch = _blocking(AsyncClient.get_branch)
    delete_branch = _blocking(AsyncClient.delete_branch)
    reset_branch = _blocking(AsyncClient.reset_branch)
    list_trash = _iterating(AsyncClient.list_trash)
    restore_repo = _blocking(AsyncClient.restore_repo)
    restore_branch = _blocking(AsyncClient.restore_branch)
    create_tag = _blocking(AsyncClient.create_tag)
    list_tags = _iterating(AsyncClient.list_tags)
    get_tag = _blocking(AsyncClient.get_tag)
    delete_tag = _blocking(AsyncClient.delete_tag)
    log = _iterating(AsyncClient.log)
    inspect = _blocking(AsyncClient.inspect)
    diff = _iterating(AsyncClient.diff)
    history = _iterating(AsyncClient.history)
    start_commit = _blocking(AsyncClient.start_commit)
    list_open_commits = _iterating(AsyncClient.list_open_commits)
    finish_commit = _blocking(AsyncClient.finish_commit)
    abort_commit = _blocking(AsyncClient.abort_commit)
    merge = _blocking(AsyncClient.merge)
    revert = _blocking(AsyncClient.revert)
    purge_plan = _blocking(AsyncClient.purge_plan)
    purge = _blocking(AsyncClient.purge)
    list_purges = _iterating(AsyncClient.list_purges)
    list_uploads = _iterating(AsyncClient.list_uploads)
    abort_upload = _blocking(AsyncClient.abort_upload)
    plan_pipeline = _blocking(AsyncClient.plan_pipeline)
    create_pipeline = _blocking(AsyncClient.create_pipeline)
    update_pipeline = _blocking(AsyncClient.update_pipeline)
    list_pipelines = _iterating(AsyncClient.list_pipelines)
    inspect_pipeline = _blocking(AsyncClient.inspect_pipeline)
    stop_pipeline = _blocking(AsyncClient.stop_pipeline)
    start_pipeline = _blocking(AsyncClient.start_pipeline)
    delete_pipeline = _blocking(AsyncClient.delete_pipeline)
    list_jobs = _iterating(AsyncClient.list_jobs)
    inspect_job = _blocking(AsyncClient.inspect_job)
    stop_job = _blocking(AsyncClient.stop_job)
    list_datums = _iterating(AsyncClient.list_datums)
    inspect_datum = _blocking(AsyncClient.inspect_datum)
    restart_datum = _blocking(AsyncClient.restart_datum)
    logs = _blocking(AsyncClient.logs)
    wait_status = _blocking(AsyncClient.wait_status)
    provenance = _blocking(AsyncClient.provenance)
    subvenance = _blocking(AsyncClient.subvenance)
    dag = _blocking(AsyncClient.dag)
    lease_datums = _blocking(AsyncClient.lease_datums)
    heartbeat = _blocking(AsyncClient.heartbeat)
    complete_datum = _blocking(AsyncClient.complete_datum)


async def _make(endpoint: str, access: str, secret: str, options: dict[str, Any]) -> AsyncClient:
    # The httpx client binds to the loop it is created on: create it there.
    return AsyncClient(endpoint, access, secret, **options)


async def _await(aw: Awaitable[T]) -> T:
    return await aw
