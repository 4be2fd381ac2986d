"""The Kubernetes Job of one loxo job, built from its pipeline's spec.

One `batch/v1` Job per loxo job: a work queue (`parallelism` from
`parallelism_spec.constant`, `completions` unset) whose pods each run
`loxo worker --job ID --exit-when-idle` and end with code 0 once the loxo
job has ended; the Job is then complete and `ttlSecondsAfterFinished` cleans
it up. docs/design/executors.md says why (and why not Pachyderm's
per-pipeline replication controller).

Pure functions of their arguments, so every manifest can be checked against
the Kubernetes OpenAPI schema in tests (tests/gateway/executors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from versioning.pipelines.spec import (
    PipelineSpec,
    Resources,
    TaintEffect,
    Toleration,
    TolerationOperator,
    format_memory,
)

# Labels every Job and pod of ours carries: the reconcile loop lists by them.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "loxo"
COMPONENT = "app.kubernetes.io/component"
PIPELINE_LABEL = "loxo.dev/pipeline"
JOB_LABEL = "loxo.dev/job"
VERSION_ANNOTATION = "loxo.dev/pipeline-version"

# Keys of the credentials Secret: the same names as the variables, so the
# gateway's Deployment can take the Secret whole with envFrom.
ACCESS_KEY = "LOXO_ACCESS_KEY"
SECRET_KEY = "LOXO_SECRET_KEY"

# A GPU type with a "/" is a resource name (Pachyderm's meaning: nvidia.com/gpu,
# amd.com/gpu); any other type is a GPU model, asked for as one nvidia.com/gpu
# on a node whose GPU feature discovery label names that model.
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"

# The executor deletes a Job as soon as its loxo job ends; the TTL only
# matters when no executor runs (every gateway down, or moved to local).
TTL_SECONDS_AFTER_FINISHED = 600
# Pods that fail (not datums: a worker reports those) before the Job gives up:
# an image that cannot start, a node lost, an OOM-killed worker.
BACKOFF_LIMIT = 6
SCRATCH = "/scratch"
CONTAINER = "worker"
# Variables the worker itself needs: a transform.env of the same name is not
# passed to the container (the lease still gives it to the datum's command).
RESERVED_ENV = {ACCESS_KEY, SECRET_KEY, "LOXO_REGION", "LOXO_ENDPOINT", "POD_NAME"}

_EFFECTS = {
    TaintEffect.NO_SCHEDULE: "NoSchedule",
    TaintEffect.PREFER_NO_SCHEDULE: "PreferNoSchedule",
    TaintEffect.NO_EXECUTE: "NoExecute",
}
_OPERATORS = {TolerationOperator.EXISTS: "Exists", TolerationOperator.EQUAL: "Equal"}


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """Where and how the executor runs pods (`loxo serve --k8s-*`)."""

    endpoint: str  # loxo's URL as pods reach it (a Service, never 127.0.0.1)
    namespace: str = "default"
    worker_image: str = "loxo:latest"  # for pipelines without transform.image
    service_account: str = ""  # "" : the namespace's default, its token not mounted
    credentials_secret: str = "loxo-credentials"  # keys LOXO_ACCESS_KEY, LOXO_SECRET_KEY
    region: str = "us-east-1"


def job_name(pipeline: str, job: str) -> str:
    """The Job's name: deterministic, so every gateway running the loop
    creates the same one (AlreadyExists then means "done"). The job id makes
    it unique; the pipeline's name, cut to fit, is for people. At most 63
    characters: Kubernetes copies it into the pods' `job-name` label."""
    head = pipeline[:25].rstrip("-")
    return f"loxo-{head}-{job}"


def _cpu(cores: float) -> str:
    # Millicores are the finest unit Kubernetes keeps.
    milli = max(1, round(cores * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _gpu_resource(gpu_type: str) -> tuple[str, dict[str, str]]:
    """(the resource name to ask for, the node labels it needs)."""
    if "/" in gpu_type:
        return gpu_type, {}
    return DEFAULT_GPU_RESOURCE, {GPU_PRODUCT_LABEL: gpu_type}


def _quantities(r: Resources | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if r is None:
        return out
    if r.cpu is not None:
        out["cpu"] = _cpu(r.cpu)
    if r.memory is not None:
        out["memory"] = format_memory(r.memory)
    return out


def resources(spec: PipelineSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """The container's resources and the node labels its GPU needs.
    Kubernetes takes extended resources (GPUs) as limits, a request being
    optional and equal: a GPU asked for in requests only is made a limit."""
    requests = _quantities(spec.resource_requests)
    limits = _quantities(spec.resource_limits)
    labels: dict[str, str] = {}
    for r, target in ((spec.resource_requests, requests), (spec.resource_limits, limits)):
        if r is not None and r.gpu is not None:
            name, needs = _gpu_resource(r.gpu.type)
            target[name] = str(r.gpu.number)
            labels.update(needs)
    for name in [n for n in requests if "/" in n]:
        limits.setdefault(name, requests[name])
        requests[name] = limits[name]  # must equal the limit
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out, labels


def _toleration(t: Toleration) -> dict[str, Any]:
    out: dict[str, Any] = {"operator": _OPERATORS[t.operator]}
    if t.key:
        out["key"] = t.key
    if t.value:
        out["value"] = t.value
    if t.effect in _EFFECTS:
        out["effect"] = _EFFECTS[t.effect]
    if t.toleration_seconds is not None:
        out["tolerationSeconds"] = t.toleration_seconds
    return out


def _env(spec: PipelineSpec, settings: KubernetesSettings) -> list[dict[str, Any]]:
    # Keys come from the Secret, never inline: a Job's manifest is readable by
    # anyone who may list Jobs, a Secret only by those who may read Secrets.
    ours: list[dict[str, Any]] = [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": settings.credentials_secret, "key": name}},
        }
        for name in (ACCESS_KEY, SECRET_KEY)
    ]
    ours += [
        {"name": "LOXO_REGION", "value": settings.region},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    user = [{"name": k, "value": v} for k, v in spec.transform.env if k not in RESERVED_ENV]
    return user + ours


_ESCAPE = re.compile(r"\$(?=\()")


def _literal(text: str) -> str:
    # Kubernetes expands $(NAME) in command arguments; "$$" keeps a "$" as is.
    return _ESCAPE.sub("$$", text)


def worker_command(spec: PipelineSpec, job: str, settings: KubernetesSettings) -> list[str]:
    return [
        "loxo",
        "worker",
        "--endpoint",
        _literal(settings.endpoint),
        "--pipelines",
        spec.name,
        "--job",
        job,
        "--exit-when-idle",
        "--scratch",
        SCRATCH,
        "--name",
        "$(POD_NAME)",
    ]


def job_manifest(
    spec: PipelineSpec, job: str, version: int, settings: KubernetesSettings
) -> dict[str, Any]:
    """The `batch/v1` Job that runs loxo job `job` of `spec`'s pipeline."""
    labels = {
        MANAGED_BY: MANAGER,
        COMPONENT: "pipeline-worker",
        PIPELINE_LABEL: spec.name,
        JOB_LABEL: job,
    }
    container_resources, gpu_labels = resources(spec)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.transform.image or settings.worker_image,
        "command": worker_command(spec, job, settings),
        "env": _env(spec, settings),
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
    }
    if container_resources:
        container["resources"] = container_resources
    pod: dict[str, Any] = {
        # A worker that dies is replaced by a new pod (its datums' leases
        # expire and run again); the failed pod stays for `kubectl logs`.
        "restartPolicy": "Never",
        "containers": [container],
        # Datum folders live on the node's disk, not in the container's layer.
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    else:
        # Workers talk to loxo only: no Kubernetes API token in their pods.
        pod["automountServiceAccountToken"] = False
    node_selector = {**dict(spec.scheduling_spec.node_selector), **gpu_labels}
    if node_selector:
        pod["nodeSelector"] = node_selector
    if spec.scheduling_spec.priority_class_name:
        pod["priorityClassName"] = spec.scheduling_spec.priority_class_name
    if spec.tolerations:
        pod["tolerations"] = [_toleration(t) for t in spec.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.name, job),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {VERSION_ANNOTATION: str(version)},
        },
        "spec": {
            # A work queue: `parallelism` pods lease datums until none is
            # left; `completions` unset, the Job completes once a pod has
            # exited 0 and the others have ended.
            "parallelism": spec.parallelism_spec.constant,
            "backoffLimit": BACKOFF_LIMIT,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
