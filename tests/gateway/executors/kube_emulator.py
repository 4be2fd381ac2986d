"""A Kubernetes API and a kubelet for the executor's tests, on loopback.

`Emulator` runs kmock's KubernetesEmulator (an in-memory Kubernetes API
server: objects created, listed, patched and deleted over real HTTP) in a
thread of its own and writes a kubeconfig for it, so `loxo serve --executor
kubernetes` reaches it exactly as it would a cluster (KUBECONFIG, the
official client). kmock has no controllers, so `Kubelet` plays the Job
controller and the kubelet: it starts a Job's `parallelism` pods, each a real
`loxo worker` process run with the pod's command and environment (keys read
from the Secret, $(POD_NAME) expanded), replaces a failed pod, moves the
Job's status, and, once a Job is deleted, stops its pods (SIGTERM) and
deletes their Pod objects, as garbage collection would.

Not a test module: imported as `kube_emulator` (this folder is on sys.path).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
STOP_GRACE = 10.0


class Emulator:
    """kmock's KubernetesEmulator on 127.0.0.1, served from its own thread."""

    def __init__(self) -> None:
        import kmock

        self.kmock = kmock.KubernetesEmulator()
        # Declared, so that listing them answers [] before any exists.
        for resource, kind in (
            ("batch/v1/jobs", "Job"),
            ("v1/pods", "Pod"),
            ("v1/secrets", "Secret"),
        ):
            self.kmock.resources[resource] = {"kind": kind, "namespaced": True}
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)

    def _serve(self) -> None:
        import kmock

        async def main() -> None:
            async with self.kmock, kmock.Server(self.kmock) as server:
                self.url = str(server.url).rstrip("/")
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()

        asyncio.run(main())

    def __enter__(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("kmock's emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig naming this server (as `kind` or a cloud writes one)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient(client.Configuration(host=self.url))

    def created(self, plural: str) -> list[dict[str, Any]]:
        """The bodies of every create request of `plural` (as sent, unparsed
        by any client model: what a schema check must see)."""
        import kmock

        return [
            dict(r.data)
            for r in list(self.kmock._requests)  # the requests it served, in order
            if r.action == kmock.action.CREATE and r.resource is not None
            if r.resource.plural == plural
        ]


@dataclass
class Pod:
    name: str
    job: str
    proc: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = None
    killed: bool = False  # by the test (a lost node), not by a Job's deletion
    terminated: bool = False  # by the Job's deletion


@dataclass
class JobRun:
    name: str
    manifest: dict[str, Any]
    pods: list[Pod] = field(default_factory=list)
    deleted: bool = False
    finished: str = ""  # "Complete" or "Failed" once so


def _expand(text: str, env: dict[str, str]) -> str:
    # Kubernetes' rule for command arguments: $(VAR) if VAR is defined, $$ is $.
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


class Kubelet:
    """Runs the emulator's Jobs as pods of real `loxo worker` processes."""

    def __init__(self, emulator: Emulator, namespace: str, root: Path) -> None:
        from kubernetes import client

        api = emulator.api_client()
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.api = api
        self.namespace = namespace
        self.root = root
        self.jobs: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(30)
        for run in self.jobs.values():
            for pod in run.pods:
                self._terminate(pod)

    def _run(self) -> None:
        while not self._stopping.wait(0.1):
            try:
                self.tick()
            except Exception as exc:  # the emulator going away at the end
                if not self._stopping.is_set():
                    print(f"kubelet: {exc!r}", file=sys.stderr)

    # -- what tests use ----------------------------------------------------------------

    def pods(self) -> list[Pod]:
        with self._lock:
            return [p for run in self.jobs.values() for p in run.pods]

    def kill(self, pod_name: str) -> None:
        """SIGKILL a pod's worker (its node is lost): nothing is reported."""
        with self._lock:
            for pod in (p for run in self.jobs.values() for p in run.pods):
                if pod.name == pod_name:
                    pod.killed = True
                    pod.proc.kill()
                    return
        raise KeyError(pod_name)

    # -- the controllers ------------------------------------------------------------------

    def tick(self) -> None:
        listed = self.batch.list_namespaced_job(self.namespace).items
        present = {j.metadata.name for j in listed}
        with self._lock:
            for job in listed:
                if job.metadata.name not in self.jobs:
                    manifest = self.api.sanitize_for_serialization(job)
                    run = self.jobs[job.metadata.name] = JobRun(job.metadata.name, manifest)
                    for _ in range(int(manifest["spec"].get("parallelism") or 1)):
                        self._start(run)
            for run in self.jobs.values():
                if run.deleted:
                    continue
                if run.name not in present:
                    # Deleted (propagationPolicy Background): its pods go too.
                    run.deleted = True
                    for pod in run.pods:
                        pod.terminated = True
                        self._terminate(pod)
                        with contextlib.suppress(Exception):
                            self.core.delete_namespaced_pod(pod.name, self.namespace)
                    continue
                self._follow(run)

    def _follow(self, run: JobRun) -> None:
        changed = False
        for pod in run.pods:
            if pod.exit_code is None and pod.proc.poll() is not None:
                pod.exit_code = pod.proc.returncode
                phase = "Succeeded" if pod.exit_code == 0 else "Failed"
                self.core.patch_namespaced_pod_status(
                    pod.name, self.namespace, {"status": {"phase": phase}}
                )
                changed = True
        if not changed or run.finished:
            return
        succeeded = sum(1 for p in run.pods if p.exit_code == 0)
        failed = sum(1 for p in run.pods if p.exit_code not in (None, 0))
        active = sum(1 for p in run.pods if p.exit_code is None)
        limit = int(run.manifest["spec"].get("backoffLimit", 6))
        # restartPolicy Never: a failed pod is replaced by a new one, while
        # no pod has succeeded (a work queue is then finishing) and the
        # backoff limit is not passed.
        if succeeded == 0 and failed <= limit:
            wanted = int(run.manifest["spec"].get("parallelism") or 1)
            for _ in range(wanted - active):
                self._start(run)
                active += 1
        status: dict[str, Any] = {"active": active, "succeeded": succeeded, "failed": failed}
        if active == 0 and (succeeded or failed > limit):
            run.finished = "Complete" if succeeded else "Failed"
            status["conditions"] = [{"type": run.finished, "status": "True"}]
        self.batch.patch_namespaced_job_status(run.name, self.namespace, {"status": status})

    # -- one pod ------------------------------------------------------------------------------

    def _secret(self, name: str, key: str) -> str:
        secret = self.core.read_namespaced_secret(name, self.namespace)
        return base64.b64decode(secret.data[key]).decode()

    def _start(self, run: JobRun) -> None:
        template = run.manifest["spec"]["template"]
        spec = template["spec"]
        (container,) = spec["containers"]
        name = f"{run.name}-{uuid.uuid4().hex[:5]}"
        env: dict[str, str] = {}
        for item in container.get("env", []):
            source = item.get("valueFrom")
            if source is None:
                env[item["name"]] = item.get("value", "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[item["name"]] = self._secret(ref["name"], ref["key"])
            elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = name
            else:
                raise AssertionError(f"unexpected env source {item}")
        args = [_expand(a, env) for a in container["command"]]
        # The container's filesystem: its volume mounts are folders of ours.
        mounts = {m["mountPath"]: self.root / name / m["name"] for m in container["volumeMounts"]}
        args = [str(mounts[a]) if a in mounts else a for a in args]
        assert args[0] == "loxo", args  # the image's `loxo`: this checkout's
        command = [sys.executable, "-m", "gateway.cli", *args[1:]]
        base = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
        base["LOXO_CONFIG"] = str(self.root / "no-config.json")  # no user settings
        (self.root / name).mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**base, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {**template["metadata"]["labels"], "job-name": run.name},
                },
                "spec": spec,
                "status": {"phase": "Running"},
            },
        )
        run.pods.append(Pod(name, run.name, proc, log))

    def _terminate(self, pod: Pod) -> None:
        if pod.proc.poll() is None:
            pod.proc.send_signal(signal.SIGTERM)
            try:
                pod.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                pod.proc.kill()
                pod.proc.wait()
        if pod.exit_code is None:
            pod.exit_code = pod.proc.returncode


def wait_for(check: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {value!r}")
        time.sleep(every)
