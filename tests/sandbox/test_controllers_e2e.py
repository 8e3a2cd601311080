"""The controller manager end to end: a real store, the real kubelet on the Docker engine, real containers.

One manager runs for the module (as ``service.py`` runs one per cluster); each test works in a namespace of
its own. Pods use a busybox image built FROM scratch on the spot; back-off is shortened to 1-2 s (the
kubelet keeps its wording). ``kubectl_rollout_status`` is kubectl's own rule for "rolled out".
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import requests

from sandbox.kube.controllers import ControllerManager, Routes
from sandbox.kube.controllers.objects import get_condition
from sandbox.kube.kubelet import LABEL_CLUSTER, LABEL_HOME, Kubelet, home_hash
from sandbox.kube.store import Store
from sandbox.kube.store.kinds import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    INGRESSES,
    NODES,
    PODS,
    PVCS,
    PVS,
    SERVICES,
    STORAGECLASSES,
)
from tests.sandbox.test_controllers import kubectl_rollout_status

pytestmark = pytest.mark.e2e

T = TypeVar("T")


class Harness:
    """A cluster's controllers on their own event loop thread, as in the daemon."""

    def __init__(self, engine: docker.DockerClient, home: Path) -> None:
        self.engine = engine
        self.home = home
        self.cluster = f"c{uuid.uuid4().hex[:6]}"
        self.store = Store(None)
        self.kubelet = Kubelet(
            self.cluster, "node-1", "127.0.0.2", engine, {}, home, backoff_base=1, backoff_max=2
        )
        self.routes: list[Routes] = []
        self.manager = ControllerManager(
            self.cluster, self.store, self.kubelet, on_routes=self.routes.append, resync_seconds=0.5
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.manager.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.manager.stop(), self.loop).result(90)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.kubelet.cleanup()

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 30) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def pods(self, ns: str) -> list[dict[str, Any]]:
        return self.store.list(PODS, ns)[0]

    def deployment(self, ns: str, name: str) -> dict[str, Any]:
        d = self.store.get(DEPLOYMENTS, ns, name)
        assert d is not None
        return d

    def events(self, ns: str, reason: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.store.list(EVENTS, ns)[0] if reason is None or e["reason"] == reason]

    def rolled_out(self, ns: str, name: str) -> bool:
        return kubectl_rollout_status(self.deployment(ns, name))[0]


@pytest.fixture(scope="module")
def cluster(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    home = tmp_path_factory.mktemp("home")
    harness = Harness(engine, home)
    yield harness
    harness.close()
    selector = [f"{LABEL_HOME}={home_hash(home)}", f"{LABEL_CLUSTER}={harness.cluster}"]
    assert engine.api.containers(all=True, filters={"label": selector}) == []
    for volume in engine.api.volumes(filters={"label": selector}).get("Volumes") or []:
        engine.api.remove_volume(volume["Name"], force=True)


@pytest.fixture
def ns() -> str:
    return f"t-{uuid.uuid4().hex[:6]}"


def web_container(image: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "image": image,
        "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        **extra,
    }


def deployment(
    ns: str, name: str, container: dict[str, Any], replicas: int = 1, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                    **spec.pop("pod", {}),
                },
            },
            **spec,
        },
    }


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    result: dict[str, Any] = statuses[0]
    return result


def waiting(pod: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (container_status(pod).get("state") or {}).get("waiting") or {}
    return result


def is_ready(pod: dict[str, Any]) -> bool:
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready")
    return bool(cond and cond["status"] == "True")


def test_deployment_becomes_available_and_its_service_routes_to_ready_pods(
    cluster: Harness, busybox: str, ns: str
) -> None:
    cluster.store.create(
        DEPLOYMENTS, deployment(ns, "web", web_container(busybox), replicas=2), manager="test"
    )
    cluster.store.create(
        SERVICES,
        {
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30100, "protocol": "TCP"}
                ],
            },
        },
        manager="test",
    )
    cluster.wait(lambda: cluster.rolled_out(ns, "web"), "the rollout", 40)
    status = cluster.deployment(ns, "web")["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("Available", "True"),
        ("Progressing", "True"),
    ]
    pods = cluster.pods(ns)
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] == "node-1" for p in pods)
    assert all(get_condition(p["status"]["conditions"], "PodScheduled")["status"] == "True" for p in pods)  # type: ignore[index]

    def endpoints_ready() -> list[dict[str, Any]] | None:
        ep = cluster.store.get(ENDPOINTS, ns, "web")
        subsets = (ep or {}).get("subsets") or []
        addresses = [a for s in subsets for a in s.get("addresses") or []]
        return addresses if len(addresses) == 2 else None

    addresses = cluster.wait(endpoints_ready, "two ready endpoints")
    assert {a["targetRef"]["name"] for a in addresses} == {p["metadata"]["name"] for p in pods}

    def routed() -> list[tuple[str, int]] | None:
        last = cluster.routes[-1] if cluster.routes else None
        backends = last.node_ports.get(("127.0.0.2", 30100), []) if last else []
        return backends if len(backends) == 2 else None

    for ip, port in cluster.wait(routed, "proxy routes"):
        assert port == 8080
        assert requests.get(f"http://{ip}:{port}/", timeout=5).text == "hello from busybox\n"
    cluster.store.create(
        INGRESSES,
        {
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "rules": [
                    {
                        "host": "web.example.test",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"name": "http"}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
        manager="test",
    )

    def ingress_ip() -> str | None:
        ing = cluster.store.get(INGRESSES, ns, "web") or {}
        ip: str | None = (
            ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress", [{}])[0].get("ip")
        )
        return ip

    assert cluster.wait(ingress_ip, "the Ingress address") == "127.0.0.2"

    def ingress_routed() -> bool:
        table = cluster.routes[-1].ingress if cluster.routes else None
        path = table.route("web.example.test", "/notes") if table is not None else None
        return path is not None and len(path.endpoints) == 2

    cluster.wait(ingress_routed, "the Ingress route")
    pod_name = pods[0]["metadata"]["name"]
    kubelet_reasons = [e["reason"] for e in cluster.events(ns) if e["involvedObject"]["name"] == pod_name]
    assert {"Scheduled", "Created", "Started"} <= set(kubelet_reasons)
    started = next(e for e in cluster.events(ns, "Started") if e["involvedObject"]["name"] == pod_name)
    assert started["source"] == {"component": "kubelet", "host": "node-1"}
    assert started["involvedObject"]["fieldPath"] == "spec.containers{web}"
    node = cluster.store.get(NODES, None, "node-1")
    assert node is not None and get_condition(node["status"]["conditions"], "Ready")["status"] == "True"  # type: ignore[index]


def test_rolling_update_with_max_unavailable_zero_keeps_a_ready_pod(
    cluster: Harness, busybox: str, ns: str
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    cluster.store.create(
        DEPLOYMENTS, deployment(ns, "web", web_container(busybox), strategy=strategy), manager="test"
    )
    cluster.wait(lambda: cluster.rolled_out(ns, "web"), "the first rollout", 40)
    (old_pod,) = cluster.pods(ns)
    d = cluster.deployment(ns, "web")
    d["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "2"}]
    cluster.store.update(DEPLOYMENTS, d, manager="test")
    deadline = time.monotonic() + 40
    saw_two = False
    while not (cluster.rolled_out(ns, "web") and len(cluster.pods(ns)) == 1):
        pods = cluster.pods(ns)
        saw_two = saw_two or len(pods) == 2
        assert any(is_ready(p) for p in pods), "maxUnavailable 0: a ready pod at every moment"
        assert len(pods) <= 2, "maxSurge 1"
        assert time.monotonic() < deadline, "the rolling update took too long"
        time.sleep(0.05)
    assert saw_two
    (new_pod,) = cluster.pods(ns)
    assert new_pod["metadata"]["name"] != old_pod["metadata"]["name"]
    d = cluster.deployment(ns, "web")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    messages = [e["message"] for e in cluster.events(ns, "ScalingReplicaSet")]
    assert any(m.startswith("Scaled down replica set") and m.endswith("from 1 to 0") for m in messages)


def test_crashing_container_goes_into_crash_loop_back_off(cluster: Harness, busybox: str, ns: str) -> None:
    crash = {"name": "app", "image": busybox, "command": ["sh", "-c", "echo boom; exit 3"]}
    cluster.store.create(DEPLOYMENTS, deployment(ns, "crash", crash), manager="test")

    def crash_looping() -> dict[str, Any] | None:
        pods = cluster.pods(ns)
        return pods[0] if pods and waiting(pods[0]).get("reason") == "CrashLoopBackOff" else None

    pod = cluster.wait(crash_looping, "CrashLoopBackOff", 30)
    status = container_status(pod)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["restartCount"] >= 1
    backoff = cluster.wait(lambda: cluster.events(ns, "BackOff"), "a BackOff event")
    assert backoff[0]["type"] == "Warning" and backoff[0]["message"].startswith(
        "Back-off restarting failed container"
    )

    # Between crashes the container runs and, without a readiness probe, counts as Ready for a moment;
    # the Deployment's counts follow one pass later, so wait for them rather than read them once.
    def unavailable() -> dict[str, Any] | None:
        d = cluster.deployment(ns, "crash")
        cond = get_condition((d.get("status") or {}).get("conditions"), "Available")
        return d if cond and cond["status"] == "False" else None

    d = cluster.wait(unavailable, "Available=False")
    assert not kubectl_rollout_status(d)[0]


def test_missing_image_is_err_image_pull_then_image_pull_back_off(cluster: Harness, ns: str) -> None:
    missing = {"name": "app", "image": "127.0.0.1:9/nobody/missing:v1"}
    cluster.store.create(DEPLOYMENTS, deployment(ns, "missing", missing), manager="test")
    seen: set[str] = set()

    def back_off() -> bool:
        pods = cluster.pods(ns)
        reason = waiting(pods[0]).get("reason") if pods else None
        if reason:
            seen.add(reason)
        return reason == "ImagePullBackOff"

    cluster.wait(back_off, "ImagePullBackOff", 30)
    assert "ErrImagePull" in seen or cluster.events(ns, "Failed")
    failed = [e["message"] for e in cluster.events(ns, "Failed")]
    assert any(m.startswith('Failed to pull image "127.0.0.1:9/nobody/missing:v1"') for m in failed)
    assert any(m == "Error: ErrImagePull" for m in failed)


def test_missing_configmap_is_create_container_config_error_until_it_exists(
    cluster: Harness, busybox: str, ns: str
) -> None:
    app = {
        "name": "app",
        "image": busybox,
        "command": ["sleep", "3600"],
        "envFrom": [{"configMapRef": {"name": "app-config"}}],
    }
    cluster.store.create(DEPLOYMENTS, deployment(ns, "cfg", app), manager="test")

    def config_error() -> dict[str, Any] | None:
        pods = cluster.pods(ns)
        return pods[0] if pods and waiting(pods[0]).get("reason") == "CreateContainerConfigError" else None

    pod = cluster.wait(config_error, "CreateContainerConfigError")
    assert waiting(pod)["message"] == 'configmap "app-config" not found'
    failed = cluster.wait(lambda: cluster.events(ns, "Failed"), "a Failed event")
    assert failed[0]["message"] == 'Error: configmap "app-config" not found'
    cluster.store.create(
        CONFIGMAPS,
        {"metadata": {"name": "app-config", "namespace": ns}, "data": {"GREETING": "hi"}},
        manager="test",
    )
    cluster.wait(lambda: cluster.rolled_out(ns, "cfg"), "the rollout once the ConfigMap exists")


def test_progress_deadline_exceeded(cluster: Harness, busybox: str, ns: str) -> None:
    never_ready = web_container(
        busybox, readinessProbe={"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1}
    )
    cluster.store.create(
        DEPLOYMENTS, deployment(ns, "slow", never_ready, progressDeadlineSeconds=2), manager="test"
    )

    def timed_out() -> dict[str, Any] | None:
        d = cluster.deployment(ns, "slow")
        cond = get_condition((d.get("status") or {}).get("conditions"), "Progressing")
        return cond if cond and cond["reason"] == "ProgressDeadlineExceeded" else None

    cond = cluster.wait(timed_out, "ProgressDeadlineExceeded", 20)
    assert cond["status"] == "False"
    assert cond["message"].endswith("has timed out progressing.")
    with pytest.raises(RuntimeError, match="exceeded its progress deadline"):
        kubectl_rollout_status(cluster.deployment(ns, "slow"))


def test_pod_requesting_too_much_stays_pending_unschedulable(cluster: Harness, busybox: str, ns: str) -> None:
    huge = {"name": "app", "image": busybox, "resources": {"requests": {"cpu": "1000"}}}
    cluster.store.create(DEPLOYMENTS, deployment(ns, "huge", huge), manager="test")

    def unschedulable() -> dict[str, Any] | None:
        pods = cluster.pods(ns)
        cond = (
            get_condition((pods[0].get("status") or {}).get("conditions"), "PodScheduled") if pods else None
        )
        return cond if cond and cond.get("reason") == "Unschedulable" else None

    cond = cluster.wait(unschedulable, "PodScheduled=False")
    assert cond["status"] == "False"
    assert cond["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")
    (event,) = cluster.wait(lambda: cluster.events(ns, "FailedScheduling"), "a FailedScheduling event")
    assert event["type"] == "Warning" and event["source"]["component"] == "default-scheduler"
    assert cluster.pods(ns)[0]["status"]["phase"] == "Pending"


def test_claim_outlives_its_pod(cluster: Harness, busybox: str, ns: str) -> None:
    if cluster.store.get(STORAGECLASSES, None, "standard-rwo") is None:
        cluster.store.create(
            STORAGECLASSES,
            {
                "metadata": {
                    "name": "standard-rwo",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "pd.csi.storage.gke.io",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            manager="test",
        )
    cluster.store.create(
        PVCS,
        {
            "metadata": {"name": "data", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        manager="test",
    )
    writer = {
        "name": "db",
        "image": busybox,
        "command": ["sh", "-c", "[ -f /data/row ] || echo $POD_NAME > /data/row; exec sleep 3600"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    spec = deployment(
        ns,
        "db",
        writer,
        strategy={"type": "Recreate"},
        pod={"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
    )
    cluster.store.create(DEPLOYMENTS, spec, manager="test")
    cluster.wait(lambda: cluster.rolled_out(ns, "db"), "the database rollout", 40)
    claim = cluster.store.get(PVCS, ns, "data")
    assert claim is not None and claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "standard-rwo"
    pv = cluster.store.get(PVS, None, claim["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["claimRef"]["name"] == "data"
    labels = [f"io.kubernetes.pod.namespace={ns}", "io.kubernetes.docker.type=container"]

    def most_running_until(done: Callable[[], bool]) -> int:
        """The most app containers of the namespace seen running at once until ``done``."""
        most = 0
        deadline = time.monotonic() + 40
        while not done():
            running = cluster.engine.api.containers(filters={"label": labels, "status": "running"})
            most = max(most, len(running))
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)
        return most

    # The pod's `sleep` ignores SIGTERM, so each old container lives for its whole grace period: its
    # replacement must still never run beside it on the claim.
    (first,) = cluster.pods(ns)
    cluster.store.delete(PODS, ns, first["metadata"]["name"])

    def replaced() -> dict[str, Any] | None:
        pods = [p for p in cluster.pods(ns) if p["metadata"]["name"] != first["metadata"]["name"]]
        return pods[0] if pods and is_ready(pods[0]) else None

    assert most_running_until(lambda: replaced() is not None) == 1
    second = replaced()
    assert second is not None
    container_id = container_status(second)["containerID"].removeprefix("docker://")
    exec_id = cluster.engine.api.exec_create(container_id, ["cat", "/data/row"])
    assert cluster.engine.api.exec_start(exec_id).decode().strip() == first["metadata"]["name"]

    # Recreate: the new ReplicaSet's pod starts only once the old pod's container is gone.
    d = cluster.deployment(ns, "db")
    d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "V", "value": "2"})
    cluster.store.update(DEPLOYMENTS, d, manager="test")
    assert most_running_until(lambda: cluster.rolled_out(ns, "db") and len(cluster.pods(ns)) == 1) == 1
