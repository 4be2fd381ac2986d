"""The Kubernetes executor end to end, without a cluster: a real loxo server
(`loxo serve --executor kubernetes`, KUBECONFIG naming kmock's in-memory
Kubernetes API) creates and deletes Jobs through the official client; the
test plays kubelet (kube_emulator.Kubelet), running each pod as a real
`loxo worker` process with the pod's command and environment, which leases
and completes datums over loxo's HTTP API. Every Job the server sent is
checked against Kubernetes' OpenAPI schema (kubernetes-validate, strict).

A real cluster: test_a_pipeline_on_a_real_cluster, opt-in (LOXO_TEST_KUBECONFIG).
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LoxoServer, free_port
from kube_emulator import Emulator, Kubelet, wait_for

from gateway.client import Client

NAMESPACE = "loxo-test"
SECRET = "loxo-test-keys"
IMAGE = "registry.example/loxo-worker:test"
K8S_VERSION = "1.33"
LEASE_SECONDS = 3

# User code: each file's length into pfs/out (a /pfs/ path: rewritten by the worker).
LENGTHS = """
import os, sys, time
time.sleep(float(os.environ.get("SLOW", "0")))
for folder, _, names in os.walk("/pfs/images"):
    for name in names:
        path = os.path.join(folder, name)
        target = os.path.join("/pfs/out", os.path.relpath(path, "/pfs/images") + ".len")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(str(os.path.getsize(path)))
"""
FILES = {"a.txt": b"aaa", "b.txt": b"bbbbb", "c.txt": b"c", "d.txt": b"dddddddd"}
EXPECTED = {"a.txt.len": b"3", "b.txt.len": b"5", "c.txt.len": b"1", "d.txt.len": b"8"}


class Stack:
    """A loxo server running the Kubernetes executor against the emulator."""

    def __init__(self, server: LoxoServer, emulator: Emulator, kubelet: Kubelet) -> None:
        self.server = server
        self.emulator = emulator
        self.kubelet = kubelet
        self.s3 = server.client()
        self.api = Client(server.endpoint, server.access_key or "", server.secret_key or "")

    def pipeline(self, slow: float = 0.0, **extra: Any) -> str:
        """An input repo holding FILES and a pipeline over it (one datum a file)."""
        name = f"lens{uuid.uuid4().hex[:8]}"
        repo = f"img{uuid.uuid4().hex[:8]}"
        self.api.create_repo(repo)
        for key, body in FILES.items():
            self.s3.put_object(Bucket=repo, Key=key, Body=body)
        self.api.create_pipeline(
            {
                "pipeline": {"name": name},
                "input": {"pfs": {"repo": repo, "name": "images", "glob": "/*"}},
                "transform": {"cmd": [sys.executable, "-c", LENGTHS], "env": {"SLOW": str(slow)}},
                **extra,
            }
        )
        return name

    def job_of(self, pipeline: str) -> dict[str, Any]:
        return dict(wait_for(lambda: list(self.api.list_jobs(pipeline=pipeline)), 60, "a job")[0])

    def wait_job(self, job: str, timeout: float = 120) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            doc = self.api.inspect_job(job)
            return doc if doc["state"] not in ("created", "running") else None

        return dict(wait_for(ended, timeout, f"job {job} to end", 0.2))

    def k8s_jobs(self) -> dict[str, Any]:
        return {j.metadata.name: j for j in self.kubelet.batch.list_namespaced_job(NAMESPACE).items}

    def outputs(self, bucket: str) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            o["Key"]: self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed
        }

    def validate_every_job_sent(self) -> list[dict[str, Any]]:
        import kubernetes_validate

        sent = self.emulator.created("jobs")
        for manifest in sent:
            kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        return sent


@pytest.fixture
def stack(
    tmp_path: Path, fresh_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    with Emulator() as emulator:
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig(tmp_path / "kubeconfig")))
        port = free_port()
        server = LoxoServer(
            extra_args=[
                "--workers", "0",
                "--lease-seconds", str(LEASE_SECONDS),
                "--executor", "kubernetes",
                "--k8s-namespace", NAMESPACE,
                "--k8s-endpoint", f"http://127.0.0.1:{port}",
                "--k8s-worker-image", IMAGE,
                "--k8s-credentials-secret", SECRET,
            ]
        )  # fmt: skip
        server.start(tmp_path / "data", fresh_database(), port=port)
        from kubernetes import client

        # What the deploy manifests do: the workers' keys in a Secret.
        client.CoreV1Api(emulator.api_client()).create_namespaced_secret(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET, "namespace": NAMESPACE},
                "data": {
                    key: base64.b64encode(value.encode()).decode()
                    for key, value in (
                        ("LOXO_ACCESS_KEY", server.access_key or ""),
                        ("LOXO_SECRET_KEY", server.secret_key or ""),
                    )
                },
            },
        )
        try:
            with Kubelet(emulator, NAMESPACE, tmp_path / "pods") as kubelet:
                s = Stack(server, emulator, kubelet)
                try:
                    yield s
                finally:
                    s.api.close()
        finally:
            server.stop()


def _logs(stack: Stack) -> str:
    return (
        "\n".join(
            f"--- {p.name} (exit {p.exit_code})\n{p.log.read_text(errors='replace')[-2000:]}"
            for p in stack.kubelet.pods()
        )
        + f"\n--- server\n{stack.server.log_text()[-3000:]}"
    )


def test_a_gpu_pipeline_runs_as_one_job_of_two_pods(stack: Stack) -> None:
    pipeline = stack.pipeline(
        slow=0.5,
        parallelism_spec={"constant": 2},
        resource_limits={"memory": "1Gi", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
        resource_requests={"cpu": 0.5},
        scheduling_spec={"node_selector": {"pool": "gpu"}},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "EXISTS", "effect": "NO_SCHEDULE"}],
    )
    job = stack.job_of(pipeline)
    ended = stack.wait_job(job["id"])
    assert ended["state"] == "success", _logs(stack)
    assert stack.outputs(pipeline) == EXPECTED

    (manifest,) = stack.validate_every_job_sent()  # one Job, schema-valid
    name = manifest["metadata"]["name"]
    assert name == f"loxo-{pipeline}-{job['id']}"
    assert manifest["spec"]["parallelism"] == 2 and "completions" not in manifest["spec"]
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE  # no transform.image: --k8s-worker-image
    assert container["resources"]["limits"] == {"memory": "1Gi", "nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"cpu": "500m"}
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"][0]["operator"] == "Exists"
    env = {e["name"]: e for e in container["env"]}
    assert env["SLOW"] == {"name": "SLOW", "value": "0.5"}
    for key in ("LOXO_ACCESS_KEY", "LOXO_SECRET_KEY"):
        assert env[key]["valueFrom"] == {"secretKeyRef": {"name": SECRET, "key": key}}
    assert stack.server.secret_key not in str(manifest)

    # Two pods ran the datums, through loxo's HTTP API, named by their pods.
    pods = [p for p in stack.kubelet.pods() if p.job == name]
    assert len(pods) == 2
    workers = {d["worker"] for d in stack.api.list_datums(job["id"])}
    assert workers <= {p.name for p in pods} and workers, (workers, _logs(stack))
    # The loxo job ended: the executor deletes its Job, and the pods end cleanly
    # (idle, or stopped by the deletion), none failed.
    wait_for(lambda: name not in stack.k8s_jobs(), 30, "the Job's deletion")
    wait_for(lambda: all(p.exit_code is not None for p in pods), 30, "the pods to end")
    assert [p.exit_code for p in pods] == [0, 0], _logs(stack)


def test_a_killed_pods_datum_runs_again_on_another(stack: Stack) -> None:
    pipeline = stack.pipeline(slow=2.0, parallelism_spec={"constant": 2})
    job = stack.job_of(pipeline)

    def running() -> list[dict[str, Any]]:
        return [d for d in stack.api.list_datums(job["id"], state="running") if d["worker"]]

    victim = wait_for(running, 60, "a running datum")[0]
    stack.kubelet.kill(victim["worker"])  # kill -9 mid-datum: a lost node
    ended = stack.wait_job(job["id"])
    assert ended["state"] == "success", _logs(stack)
    assert stack.outputs(pipeline) == EXPECTED  # each output once
    again = stack.api.inspect_datum(job["id"], victim["id"])
    assert again["state"] == "success"
    # Another pod ran it (its try counted, unless the kill came while loxo was
    # still answering the lease: then the datum went back untried).
    assert again["worker"] != victim["worker"], (victim, again, _logs(stack))
    pods = stack.kubelet.pods()
    assert [p.killed for p in pods].count(True) == 1
    # The killed pod failed; the Job controller started another in its place.
    assert len(pods) == 3, _logs(stack)
    stack.validate_every_job_sent()


def test_stopping_and_deleting_a_pipeline_deletes_its_job(stack: Stack) -> None:
    pipeline = stack.pipeline(slow=120.0)
    job = stack.job_of(pipeline)
    name = f"loxo-{pipeline}-{job['id']}"
    wait_for(lambda: list(stack.api.list_datums(job["id"], state="running")), 60, "a pod at work")

    stack.api.stop_pipeline(pipeline)
    wait_for(lambda: name not in stack.k8s_jobs(), 30, "the stopped pipeline's Job deletion")
    pods = stack.kubelet.pods()
    wait_for(lambda: all(p.exit_code is not None for p in pods), 30, "its pods to end")
    assert all(p.terminated and p.exit_code == 0 for p in pods), _logs(stack)
    # The loxo job waits, active, for the pipeline to start again.
    assert stack.api.inspect_job(job["id"])["state"] == "running"

    # Started again: the same Job again, once the abandoned lease expired.
    stack.api.start_pipeline(pipeline)
    wait_for(lambda: name in stack.k8s_jobs(), 30, "the Job again")
    stack.api.delete_pipeline(pipeline, confirm=True)
    wait_for(lambda: not stack.k8s_jobs(), 30, "the deleted pipeline's Job deletion")
    assert len(stack.validate_every_job_sent()) == 2


# -- a real cluster (opt-in) -------------------------------------------------------------

REAL = ("LOXO_TEST_KUBECONFIG", "LOXO_TEST_K8S_URL", "LOXO_TEST_K8S_KEYS")


@pytest.mark.skipif(
    not all(os.environ.get(v) for v in REAL),
    reason="opt-in: set LOXO_TEST_KUBECONFIG (a cluster running compose/kubernetes), "
    "LOXO_TEST_K8S_URL (its loxo Service, e.g. via kubectl port-forward) and "
    "LOXO_TEST_K8S_KEYS (ACCESS:SECRET); optional LOXO_TEST_K8S_NAMESPACE (default loxo)",
)
def test_a_pipeline_on_a_real_cluster() -> None:
    """A pipeline run by the deployed stack: its gateways' executor creates a
    real Job, real pods (the loxo image) run the datums, the Job goes away."""
    from kubernetes import client, config

    config.load_kube_config(os.environ["LOXO_TEST_KUBECONFIG"])
    batch = client.BatchV1Api()
    namespace = os.environ.get("LOXO_TEST_K8S_NAMESPACE", "loxo")
    url = os.environ["LOXO_TEST_K8S_URL"]
    access, _, secret = os.environ["LOXO_TEST_K8S_KEYS"].partition(":")
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    with Client(url, access, secret) as api:
        repo, name = f"img{uuid.uuid4().hex[:8]}", f"lens{uuid.uuid4().hex[:8]}"
        api.create_repo(repo)
        for key, body in FILES.items():
            s3.put_object(Bucket=repo, Key=key, Body=body)
        api.create_pipeline(
            {
                "pipeline": {"name": name},
                "input": {"pfs": {"repo": repo, "name": "images", "glob": "/*"}},
                # python3 of the worker image (the loxo image by default)
                "transform": {"cmd": ["python3", "-c", LENGTHS]},
                "parallelism_spec": {"constant": 2},
            }
        )
        try:
            jobs = wait_for(lambda: list(api.list_jobs(pipeline=name)), 120, "a job")
            label = f"loxo.dev/job={jobs[0]['id']}"
            wait_for(
                lambda: batch.list_namespaced_job(namespace, label_selector=label).items,
                120,
                "its Kubernetes Job",
            )

            def ended() -> dict[str, Any] | None:
                doc = api.inspect_job(jobs[0]["id"])
                return doc if doc["state"] not in ("created", "running") else None

            assert wait_for(ended, 600, "the job", 1.0)["state"] == "success"
            listed = s3.list_objects_v2(Bucket=name).get("Contents", [])
            got = {
                o["Key"]: s3.get_object(Bucket=name, Key=o["Key"])["Body"].read() for o in listed
            }
            assert got == EXPECTED
            wait_for(
                lambda: not batch.list_namespaced_job(namespace, label_selector=label).items,
                120,
                "the Job's deletion",
                1.0,
            )
        finally:
            api.delete_pipeline(name, confirm=True)
            api.delete_repo(repo, confirm=True)
