"""The Kubernetes executor: a reconcile loop that keeps one Kubernetes Job
per active loxo job (docs/design/executors.md).

Every `interval` seconds it compares what Kubernetes runs (our Jobs in the
namespace, by label) with what loxo wants (its control API over HTTP, as any
client: pipelines, their newest job, its datum counts) and acts:

- an active loxo job (created or running) of a running pipeline, with
  datums pending and no Kubernetes Job: create one (`manifests.job_manifest`);
  its deterministic name makes AlreadyExists a success, so the loop may run
  in every gateway at once;
- a Kubernetes Job whose loxo job ended, or whose pipeline was stopped or
  deleted: delete it, pods with it (propagationPolicy Background);
- a Kubernetes Job that finished while its loxo job still has pending
  datums (its pods failed, or exited too early): delete it, the next pass
  creates it again.

Kubernetes is read before loxo on each pass: a Job we see then was made from
loxo state at least that old, so a loxo job we find ended afterwards really
ended (another gateway's fresh Job is never taken for a stale one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.client import Client
from gateway.executors.manifests import (
    JOB_LABEL,
    MANAGED_BY,
    MANAGER,
    PIPELINE_LABEL,
    KubernetesSettings,
    job_manifest,
    job_name,
)
from versioning.pipelines.spec import SpecError, parse_spec

log = logging.getLogger("loxo.executor.kubernetes")

INTERVAL_SECONDS = 1.0
ACTIVE = ("created", "running")
HTTP_CONFLICT, HTTP_NOT_FOUND = 409, 404


@dataclass(frozen=True, slots=True)
class Wanted:
    """A loxo job that should have a Kubernetes Job."""

    pipeline: str
    job: str
    pending: int  # datums waiting for a worker
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pass:
    """What one reconcile pass did (Job names), for logs and tests."""

    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=())


def load_batch_api() -> Any:
    """A BatchV1Api from the pod's service account when running in a
    cluster, else from KUBECONFIG (or ~/.kube/config)."""
    from kubernetes import client, config  # only the kubernetes executor needs it

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.BatchV1Api()


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _finished(k8s_job: Any) -> bool:
    conditions = (k8s_job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


class KubernetesExecutor:
    """Start with `start()` (a thread running `reconcile()` every `interval`
    seconds), end with `stop()`; the same interface as LocalWorkers."""

    def __init__(
        self,
        settings: KubernetesSettings,
        loxo: Callable[[], Client],
        batch: Callable[[], Any] = load_batch_api,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self._loxo_factory = loxo
        self._batch_factory = batch
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self._loxo: Client | None = None
        self._batch: Any = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loxo-k8s-executor", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 10.0) -> None:
        # Pods are left running: they serve loxo jobs, not this gateway, and
        # another gateway's loop (or this one's next start) keeps them.
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(grace)
        if self._loxo is not None:
            self._loxo.close()

    def _run(self) -> None:
        log.info(
            "kubernetes executor: namespace %s, pods reach loxo at %s",
            self.settings.namespace,
            self.settings.endpoint,
        )
        while not self._stopping.is_set():
            try:
                done = self.reconcile()
                for name in done.created:
                    log.info("kubernetes executor: created Job %s", name)
                for name in done.deleted:
                    log.info("kubernetes executor: deleted Job %s", name)
            except Exception as exc:
                # Kubernetes or loxo unreachable for a while: try again later.
                log.warning("kubernetes executor: reconcile failed: %s", exc)
            self._stopping.wait(self.interval)

    # -- one pass ----------------------------------------------------------------------

    def _clients(self) -> tuple[Client, Any]:
        if self._loxo is None:
            self._loxo = self._loxo_factory()
        if self._batch is None:
            self._batch = self._batch_factory()
        return self._loxo, self._batch

    def _ours(self, batch: Any) -> Iterator[dict[str, Any]]:
        """Our Jobs in the namespace, as plain dicts (every page)."""
        api = batch.api_client
        cont: str | None = None
        while True:
            found = batch.list_namespaced_job(
                self.settings.namespace,
                label_selector=f"{MANAGED_BY}={MANAGER}",
                limit=500,
                _continue=cont,
            )
            for item in found.items:
                doc = api.sanitize_for_serialization(item)
                labels = (doc.get("metadata") or {}).get("labels") or {}
                # Checked here too: a selector is a request, not a guarantee.
                if labels.get(MANAGED_BY) == MANAGER and labels.get(JOB_LABEL):
                    yield doc
            cont = found.metadata._continue if found.metadata is not None else None
            if not cont:
                return

    def _wanted(self, loxo: Client) -> dict[str, Wanted]:
        """Job name -> the active loxo jobs of running pipelines."""
        out: dict[str, Wanted] = {}
        for pipeline in loxo.list_pipelines():
            last = pipeline.last_job
            if pipeline.state != "running" or not last or last.get("state") not in ACTIVE:
                continue
            job = loxo.inspect_job(last["id"])
            if job.get("state") not in ACTIVE:
                continue
            try:
                spec = parse_spec(pipeline.spec)
            except SpecError as exc:  # a spec the server took: only if versions differ
                self._report(f"{pipeline.name}: its spec does not parse here: {exc}")
                continue
            name = job_name(pipeline.name, job["id"])
            out[name] = Wanted(
                pipeline.name,
                job["id"],
                int((job.get("datums") or {}).get("pending", 0)),
                job_manifest(spec, job["id"], pipeline.version, self.settings),
            )
        return out

    def reconcile(self) -> Pass:
        """One pass: create and delete Jobs until Kubernetes runs what loxo wants."""
        loxo, batch = self._clients()
        existing = {doc["metadata"]["name"]: doc for doc in self._ours(batch)}
        wanted = self._wanted(loxo)
        created: list[str] = []
        deleted: list[str] = []
        kept: list[str] = []
        errors: list[str] = []
        for name, doc in existing.items():
            if (doc.get("metadata") or {}).get("deletionTimestamp"):
                continue  # already going
            want = wanted.get(name)
            if want is not None and not (_finished(doc) and want.pending > 0):
                kept.append(name)
                continue
            try:
                batch.delete_namespaced_job(
                    name, self.settings.namespace, propagation_policy="Background"
                )
                deleted.append(name)
            except Exception as exc:
                if _status(exc) != HTTP_NOT_FOUND:  # another gateway was first
                    errors.append(f"delete {name}: {exc}")
        for name, want in wanted.items():
            if name in existing or want.pending == 0:
                # No Job for a job whose datums all run elsewhere, or are
                # done: nothing would be left for new pods to lease.
                continue
            try:
                batch.create_namespaced_job(self.settings.namespace, want.manifest)
                created.append(name)
            except Exception as exc:
                if _status(exc) != HTTP_CONFLICT:  # another gateway was first
                    errors.append(f"create {name}: {exc}")
        for problem in errors:
            self._report(problem)
        return Pass(tuple(created), tuple(deleted), tuple(kept), tuple(errors))

    def _report(self, problem: str) -> None:
        # Once per distinct problem: a pass runs every few seconds.
        if problem not in self._reported:
            if len(self._reported) > 1000:
                self._reported.clear()
            self._reported.add(problem)
            log.warning("kubernetes executor: %s", problem)


__all__ = ["PIPELINE_LABEL", "KubernetesExecutor", "KubernetesSettings", "Pass", "load_batch_api"]
