"""The Kubernetes Job of a loxo job (gateway/executors/manifests.py), built
from pipeline specs and checked against Kubernetes' OpenAPI schema
(kubernetes-validate, strict: unknown fields are errors too)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.executors.manifests import (
    BACKOFF_LIMIT,
    TTL_SECONDS_AFTER_FINISHED,
    KubernetesSettings,
    job_manifest,
    job_name,
)
from versioning.pipelines.spec import parse_spec

# The Kubernetes version whose schema the manifests must satisfy.
K8S_VERSION = "1.33"
JOB = "0123456789abcdef0123456789abcdef"
SETTINGS = KubernetesSettings(
    endpoint="http://loxo.loxo.svc:9000",
    namespace="loxo",
    worker_image="registry.example/loxo:1.0",
    credentials_secret="loxo-keys",
)


def validate(manifest: dict[str, Any]) -> None:
    """Kubernetes' OpenAPI schema accepts it (unknown fields refused too)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def spec(**extra: Any) -> Any:
    doc: dict[str, Any] = {
        "pipeline": {"name": "edges"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "transform": {"cmd": ["python3", "/edges.py"]},
    }
    doc.update(extra)
    return parse_spec(doc)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_a_gpu_pipeline_with_two_way_parallelism() -> None:
    s = spec(
        transform={
            "image": "registry.example/edges:2",
            "cmd": ["python3", "/edges.py"],
            "env": {"MODEL": "canny", "LOXO_ACCESS_KEY": "not-this"},
        },
        parallelism_spec={"constant": 2},
        resource_requests={"cpu": 0.5, "memory": "512Mi"},
        resource_limits={"cpu": 2, "memory": "2G", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
        scheduling_spec={"node_selector": {"disktype": "ssd"}, "priority_class_name": "batch"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "EXISTS", "effect": "NO_SCHEDULE"}],
    )
    m = job_manifest(s, JOB, 3, SETTINGS)
    validate(m)
    assert m["apiVersion"] == "batch/v1" and m["kind"] == "Job"
    assert m["metadata"]["name"] == f"loxo-edges-{JOB}"
    assert m["metadata"]["namespace"] == "loxo"
    assert m["metadata"]["labels"]["loxo.dev/job"] == JOB
    assert m["metadata"]["annotations"]["loxo.dev/pipeline-version"] == "3"
    job_spec = m["spec"]
    # A work queue: parallelism pods, completions unset.
    assert job_spec["parallelism"] == 2 and "completions" not in job_spec
    assert job_spec["ttlSecondsAfterFinished"] == TTL_SECONDS_AFTER_FINISHED
    assert job_spec["backoffLimit"] == BACKOFF_LIMIT
    pod = job_spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"disktype": "ssd"}
    assert pod["priorityClassName"] == "batch"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    c = container(m)
    assert c["image"] == "registry.example/edges:2"
    assert c["command"] == [
        "loxo", "worker", "--endpoint", "http://loxo.loxo.svc:9000", "--pipelines", "edges",
        "--job", JOB, "--exit-when-idle", "--scratch", "/scratch", "--name", "$(POD_NAME)",
    ]  # fmt: skip
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "2G", "nvidia.com/gpu": "1"},
    }
    env = {e["name"]: e for e in c["env"]}
    # Keys from the Secret, never inline; the user's LOXO_ACCESS_KEY does not shadow ours.
    for key in ("LOXO_ACCESS_KEY", "LOXO_SECRET_KEY"):
        assert env[key] == {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": "loxo-keys", "key": key}},
        }
    assert [e["name"] for e in c["env"]].count("LOXO_ACCESS_KEY") == 1
    assert env["MODEL"] == {"name": "MODEL", "value": "canny"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "not-this" not in str(m) and "secret" not in str(c["command"]).lower()


def test_defaults_and_a_gpu_model_as_node_selector() -> None:
    s = spec(resource_requests={"gpu": {"type": "Tesla-T4", "number": 2}})
    m = job_manifest(s, JOB, 1, KubernetesSettings(endpoint="http://loxo:9000"))
    validate(m)
    c = container(m)
    assert c["image"] == "loxo:latest"  # no transform.image: the worker image
    # Kubernetes wants extended resources as limits (a request equal to them).
    assert c["resources"] == {
        "requests": {"nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    pod = m["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert m["spec"]["parallelism"] == 1
    assert m["metadata"]["namespace"] == "default"
    assert "tolerations" not in pod and "priorityClassName" not in pod


def test_a_service_account_replaces_the_unmounted_token() -> None:
    settings = KubernetesSettings(endpoint="https://loxo.example", service_account="runner")
    m = job_manifest(spec(), JOB, 1, settings)
    validate(m)
    pod = m["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner"
    assert "automountServiceAccountToken" not in pod


@pytest.mark.parametrize("pipeline", ["abc", "a" * 63, "x-" * 31 + "y"])
def test_job_names_fit_a_label(pipeline: str) -> None:
    name = job_name(pipeline, JOB)
    assert len(name) <= 63 and name.endswith(JOB) and "--" not in name[:-33]
    validate(job_manifest(spec(pipeline={"name": pipeline}), JOB, 1, SETTINGS))
