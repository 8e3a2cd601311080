"""The Deployment and ReplicaSet controllers against a real in-memory store, the test playing the kubelet.

Each test drives level-triggered passes (``sync_all``) and marks pods Ready by writing their status as the
kubelet would; ``kubectl_rollout_status`` is ``kubectl rollout status``'s own decision procedure
(``DeploymentStatusViewer``), so "done" means what it means to kubectl.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.kube.controllers.deployment import DeploymentController
from sandbox.kube.controllers.events import EventRecorder
from sandbox.kube.controllers.objects import fmt_time, get_condition
from sandbox.kube.controllers.replicaset import ReplicaSetController
from sandbox.kube.store import Store
from sandbox.kube.store.kinds import DEPLOYMENTS, EVENTS, PODS, REPLICASETS


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, s: float) -> None:
        self.now += timedelta(seconds=s)


class Cluster:
    """A store with the two controllers; ``terminating`` stands for pods.py's still-stopping pods."""

    def __init__(self) -> None:
        self.store = Store(None)
        self.clock = Clock()
        self.events = EventRecorder(self.store, self.clock)
        self.terminating: dict[str, int] = {}
        self.dc = DeploymentController(self.store, self.events, self.clock, lambda: dict(self.terminating))
        self.rc = ReplicaSetController(self.store, self.events, self.clock)

    def settle(self, passes: int = 6) -> None:
        for _ in range(passes):
            self.dc.sync_all()
            self.rc.sync_all()

    def deployment(self, name: str = "web") -> dict[str, Any]:
        d = self.store.get(DEPLOYMENTS, "default", name)
        assert d is not None
        return d

    def rss(self) -> dict[str, dict[str, Any]]:
        return {r["metadata"]["name"]: r for r in self.store.list(REPLICASETS, "default")[0]}

    def pods(self) -> list[dict[str, Any]]:
        return self.store.list(PODS, "default")[0]

    def set_ready(self, pod: dict[str, Any], ready: bool = True) -> None:
        t = fmt_time(self.clock())
        pod = dict(pod)
        pod["spec"] = {**pod["spec"], "nodeName": "node-1"}
        pod = self.store.update(PODS, pod, manager="test")
        value = "True" if ready else "False"
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": value, "lastProbeTime": None, "lastTransitionTime": t},
                {"type": "ContainersReady", "status": value, "lastProbeTime": None, "lastTransitionTime": t},
            ],
        }
        self.store.update(PODS, pod, manager="test", subresource="status")

    def ready_all(self) -> None:
        for pod in self.pods():
            if not is_ready(pod):
                self.set_ready(pod)

    def apply(self, d: dict[str, Any]) -> None:
        existing = self.store.get(DEPLOYMENTS, "default", d["metadata"]["name"])
        if existing is None:
            self.store.create(DEPLOYMENTS, d, manager="kubectl")
        else:
            merged = {**existing, "spec": d["spec"]}
            self.store.update(DEPLOYMENTS, merged, manager="kubectl")


def is_ready(pod: dict[str, Any]) -> bool:
    cond = get_condition(pod.get("status", {}).get("conditions"), "Ready")
    return bool(cond and cond["status"] == "True")


def kubectl_rollout_status(d: dict[str, Any]) -> tuple[bool, str]:
    """``DeploymentStatusViewer.Status`` from kubectl: (done, message); raises on a deadline exceeded."""
    status = d.get("status") or {}
    if d["metadata"].get("generation", 0) <= status.get("observedGeneration", 0):
        cond = get_condition(status.get("conditions"), "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            raise RuntimeError(f'deployment "{d["metadata"]["name"]}" exceeded its progress deadline')
        replicas = d["spec"].get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        if updated < replicas:
            return False, f"{updated} out of {replicas} new replicas have been updated"
        if status.get("replicas", 0) > updated:
            return False, f"{status.get('replicas', 0) - updated} old replicas are pending termination"
        if status.get("availableReplicas", 0) < updated:
            return False, f"{status.get('availableReplicas', 0)} of {updated} updated replicas are available"
        return True, "successfully rolled out"
    return False, "Waiting for deployment spec update to be observed"


def web(image: str = "backend:1", replicas: int = 3, **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        },
    }
    if strategy:
        spec["strategy"] = json.loads(json.dumps(strategy))
    for key in ("progressDeadlineSeconds", "revisionHistoryLimit", "minReadySeconds"):
        if key in strategy:
            spec[key] = spec["strategy"].pop(key)
    if spec.get("strategy") == {}:
        del spec["strategy"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def test_new_deployment_reaches_available_with_kubernetes_status(cluster: Cluster) -> None:
    cluster.apply(web())
    assert kubectl_rollout_status(cluster.deployment()) == (
        False,
        "Waiting for deployment spec update to be observed",
    )
    cluster.settle()
    (rs,) = cluster.rss().values()
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Deployment", "web", True)
    pods = cluster.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
        assert len(pod["metadata"]["name"]) == len(f"web-{pod_hash}-") + 5
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    done, message = kubectl_rollout_status(cluster.deployment())
    assert not done and message == "0 of 3 updated replicas are available"
    cluster.ready_all()
    cluster.settle()
    d = cluster.deployment()
    assert kubectl_rollout_status(d) == (True, "successfully rolled out")
    status = d["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    rs_status = cluster.rss()[f"web-{pod_hash}"]["status"]
    assert rs_status == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    events, _ = cluster.store.list(EVENTS, "default")
    scaling = [e for e in events if e["reason"] == "ScalingReplicaSet"]
    assert [e["message"] for e in scaling] == [f"Scaled up replica set web-{pod_hash} from 0 to 3"]
    assert scaling[0]["source"] == {"component": "deployment-controller"}
    assert scaling[0]["involvedObject"]["kind"] == "Deployment"
    created = [e for e in events if e["reason"] == "SuccessfulCreate"]
    assert len(created) == 3


def test_rolling_update_with_max_unavailable_zero_keeps_old_pods_until_new_are_ready(
    cluster: Cluster,
) -> None:
    strategy: dict[str, Any] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    cluster.apply(web(**strategy))
    cluster.settle()
    cluster.ready_all()
    cluster.settle()
    first = set(cluster.rss())
    cluster.apply(web("backend:2", **strategy))
    steps = 0
    while True:
        cluster.settle()
        pods = cluster.pods()
        assert len(pods) <= 4, "maxSurge 1 allows at most 4 pods"
        assert sum(is_ready(p) for p in pods) >= 3, "maxUnavailable 0 keeps 3 ready pods"
        done, _ = kubectl_rollout_status(cluster.deployment())
        if done:
            break
        # The kubelet makes one new pod ready per step.
        new = [p for p in pods if not is_ready(p)]
        assert new, "a rollout that is not done has a pod starting"
        cluster.set_ready(new[0])
        steps += 1
        assert steps < 10
    assert steps == 3
    rss = cluster.rss()
    (old_name,) = first
    new_name = next(n for n in rss if n != old_name)
    assert rss[old_name]["spec"]["replicas"] == 0
    assert rss[new_name]["spec"]["replicas"] == 3
    assert rss[new_name]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert cluster.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert all(p["metadata"]["labels"]["pod-template-hash"] in new_name for p in cluster.pods())

    # Rolling back to the first template reuses its ReplicaSet, whose revision moves to 3.
    cluster.apply(web(**strategy))
    for _ in range(10):
        cluster.settle()
        cluster.ready_all()
    assert set(cluster.rss()) == {old_name, new_name}
    annotations = cluster.rss()[old_name]["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert kubectl_rollout_status(cluster.deployment()) == (True, "successfully rolled out")


def test_recreate_waits_until_old_pods_are_gone(cluster: Cluster) -> None:
    cluster.apply(web(replicas=1, type="Recreate"))
    cluster.settle()
    cluster.ready_all()
    cluster.settle()
    (old_rs,) = cluster.rss().values()
    old_uid = old_rs["metadata"]["uid"]
    cluster.terminating[old_uid] = 1  # the deleted pod's container is still stopping
    cluster.apply(web("backend:2", replicas=1, type="Recreate"))
    cluster.settle()
    assert cluster.pods() == []
    assert len(cluster.rss()) == 1, "no new ReplicaSet while an old pod still runs"
    cluster.terminating.clear()
    cluster.settle()
    assert len(cluster.rss()) == 2
    (pod,) = cluster.pods()
    assert pod["metadata"]["ownerReferences"][0]["uid"] != old_uid


def test_progress_deadline_exceeded(cluster: Cluster) -> None:
    cluster.apply(web(replicas=1, progressDeadlineSeconds=5))
    cluster.settle()
    cluster.clock.advance(3)
    cluster.settle()
    assert not kubectl_rollout_status(cluster.deployment())[0]
    cluster.clock.advance(3)
    cluster.settle()
    d = cluster.deployment()
    cond = get_condition(d["status"]["conditions"], "Progressing")
    rs_name = next(iter(cluster.rss()))
    assert cond is not None
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{rs_name}" has timed out progressing.',
    )
    with pytest.raises(RuntimeError, match="exceeded its progress deadline"):
        kubectl_rollout_status(d)
    # Progress after the deadline (the pod finally becomes ready) completes the rollout.
    cluster.ready_all()
    cluster.settle()
    assert kubectl_rollout_status(cluster.deployment()) == (True, "successfully rolled out")


def test_min_ready_seconds_delays_availability(cluster: Cluster) -> None:
    cluster.apply(web(replicas=1, minReadySeconds=10))
    cluster.settle()
    cluster.ready_all()
    cluster.settle()
    d = cluster.deployment()
    assert d["status"].get("readyReplicas") == 1 and "availableReplicas" not in d["status"]
    cluster.clock.advance(11)
    cluster.settle()
    assert kubectl_rollout_status(cluster.deployment()) == (True, "successfully rolled out")


def test_revision_history_limit_deletes_old_empty_replicasets(cluster: Cluster) -> None:
    for i in range(4):
        cluster.apply(web(f"backend:{i}", replicas=1, revisionHistoryLimit=1))
        for _ in range(4):
            cluster.settle()
            cluster.ready_all()
    rss = cluster.rss()
    assert len(rss) == 2
    revisions = sorted(
        int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for r in rss.values()
    )
    assert revisions == [3, 4]


def test_scaling_a_deployment_resizes_its_replicaset(cluster: Cluster) -> None:
    cluster.apply(web(replicas=2))
    cluster.settle()
    cluster.ready_all()
    cluster.settle()
    cluster.apply(web(replicas=5))
    cluster.settle()
    (rs,) = cluster.rss().values()
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert len(cluster.pods()) == 5
    messages = [
        e["message"] for e in cluster.store.list(EVENTS, "default")[0] if e["reason"] == "ScalingReplicaSet"
    ]
    assert messages[-1] == f"Scaled up replica set {rs['metadata']['name']} from 2 to 5"


def test_scale_down_deletes_not_ready_pods_first(cluster: Cluster) -> None:
    cluster.apply(web(replicas=3))
    cluster.settle()
    pods = cluster.pods()
    for pod in pods[:2]:
        cluster.set_ready(pod)
    cluster.apply(web(replicas=2))
    cluster.settle()
    remaining = cluster.pods()
    assert len(remaining) == 2 and all(is_ready(p) for p in remaining)
    deleted = [e for e in cluster.store.list(EVENTS, "default")[0] if e["reason"] == "SuccessfulDelete"]
    assert [e["message"] for e in deleted] == [f"Deleted pod: {pods[2]['metadata']['name']}"]


def test_repeated_events_are_counted_not_duplicated(cluster: Cluster) -> None:
    cluster.apply(web())
    obj = cluster.deployment()
    for _ in range(3):
        cluster.events.record(obj, "Warning", "Test", "same message", component="test")
        cluster.clock.advance(1)
    (event,) = [e for e in cluster.store.list(EVENTS, "default")[0] if e["reason"] == "Test"]
    assert event["count"] == 3
    assert event["firstTimestamp"] != event["lastTimestamp"]
    assert event["involvedObject"]["name"] == "web" and event["type"] == "Warning"


def test_a_new_recorder_keeps_counting_events_recorded_before_a_restart(cluster: Cluster) -> None:
    cluster.apply(web())
    obj = cluster.deployment()
    cluster.events.record(obj, "Warning", "Test", "again", component="test")
    restarted = EventRecorder(cluster.store, cluster.clock)
    restarted.record(obj, "Warning", "Test", "again", component="test")
    (event,) = [e for e in cluster.store.list(EVENTS, "default")[0] if e["reason"] == "Test"]
    assert event["count"] == 2
