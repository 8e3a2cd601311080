"""Pure parts of the pod-side controllers on plain dicts: what the kubelet is told, where a pod fits, which
endpoints a Service has, which pod a ReplicaSet deletes first. Messages are the ones Kubernetes prints."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.kube.controllers.node import heartbeat_conditions
from sandbox.kube.controllers.replicaset import deletion_rank, pods_to_delete, qos_class, rs_status
from sandbox.kube.controllers.resolve import resolve_pod, service_aliases
from sandbox.kube.controllers.scheduling import fit, pod_requests
from sandbox.kube.controllers.services import endpoint_subsets

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NODE = {
    "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux", "pool": "default"}},
    "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}},
}


def ts(delta: float = 0) -> str:
    return (NOW + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str = "app-1", *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "staging",
            "uid": f"{name}-uid",
            "labels": {"app": "backend"},
        },
        "spec": {"containers": list(containers) or [{"name": "app", "image": "x"}], **spec},
    }


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "staging"}, "data": data}


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": name, "namespace": "staging"}, "data": encoded}


def resolve(
    p: dict[str, Any], cms: Sequence[dict[str, Any]] = (), secrets: Sequence[dict[str, Any]] = ()
) -> Any:
    return resolve_pod(
        p,
        configmaps={c["metadata"]["name"]: c for c in cms},
        secrets={s["metadata"]["name"]: s for s in secrets},
        claim_volumes={"data": "sandbox-x-staging-pvc-1"},
        services=[],
        node=NODE,
    )


# --- ResolvedPod ---


def test_environment_from_configmaps_secrets_and_fields() -> None:
    app = {
        "name": "app",
        "image": "x",
        "envFrom": [{"configMapRef": {"name": "config"}}, {"secretRef": {"name": "creds"}, "prefix": "S_"}],
        "env": [
            {"name": "DB_HOST", "value": "db-core"},
            {"name": "MODE", "value": "override"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        "resources": {"limits": {"memory": "256Mi"}},
    }
    resolved = resolve(
        pod("app-1", app), [cm("config", MODE="base", PORT="8080")], [secret("creds", password="pw")]
    )
    assert resolved.config_errors == {}
    assert resolved.env["app"] == {
        "MODE": "override",
        "PORT": "8080",
        "S_password": "pw",
        "DB_HOST": "db-core",
        "DB_PASSWORD": "pw",
        "POD": "app-1",
        "APP": "backend",
        "MEM": "256",
    }
    # status.* fields are the kubelet's to fill.
    assert "IP" not in resolved.env["app"]


def test_missing_sources_give_the_kubelets_messages() -> None:
    def error(
        env: list[dict[str, Any]] | None = None, env_from: list[dict[str, Any]] | None = None
    ) -> str | None:
        c = {"name": "app", "image": "x", "env": env or [], "envFrom": env_from or []}
        return resolve(pod("p", c), [cm("config", A="1")]).error_for("app")  # type: ignore[no-any-return]

    assert error(env_from=[{"configMapRef": {"name": "app-config"}}]) == 'configmap "app-config" not found'
    assert error(env_from=[{"secretRef": {"name": "db"}}]) == 'secret "db" not found'
    missing_key = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "config", "key": "B"}}}]
    assert error(env=missing_key) == "couldn't find key B in ConfigMap staging/config"
    optional = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "B", "optional": True}}}
    ]
    assert error(env=optional) is None
    assert error(env_from=[{"configMapRef": {"name": "nope", "optional": True}}]) is None


def test_volume_files_and_mount_failures() -> None:
    p = pod(
        "p",
        volumes=[
            {"name": "cfg", "configMap": {"name": "config", "items": [{"key": "A", "path": "conf/a.txt"}]}},
            {"name": "tls", "secret": {"secretName": "certs"}},
            {"name": "bad", "configMap": {"name": "config", "items": [{"key": "ZZ", "path": "z"}]}},
            {"name": "gone", "configMap": {"name": "absent"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "unbound", "persistentVolumeClaim": {"claimName": "other"}},
            {
                "name": "both",
                "projected": {"sources": [{"configMap": {"name": "config"}}, {"secret": {"name": "certs"}}]},
            },
        ],
    )
    resolved = resolve(p, [cm("config", A="1")], [secret("certs", **{"tls.crt": "C"})])
    assert resolved.volume_files["cfg"] == {"conf/a.txt": b"1"}
    assert resolved.volume_files["tls"] == {"tls.crt": b"C"}
    assert resolved.volume_files["both"] == {"A": b"1", "tls.crt": b"C"}
    assert resolved.volume_errors == {
        "bad": 'MountVolume.SetUp failed for volume "bad" : configmap references non-existent config key: ZZ',
        "gone": 'MountVolume.SetUp failed for volume "gone" : configmap "absent" not found',
    }
    assert resolved.volumes == {"data": "sandbox-x-staging-pvc-1"}


def test_service_aliases_are_the_cluster_dns_names() -> None:
    services: list[dict[str, Any]] = [
        {"metadata": {"name": "backend"}, "spec": {"selector": {"app": "backend"}}},
        {"metadata": {"name": "db-core"}, "spec": {"selector": {"app": "db"}}},
        {"metadata": {"name": "kubernetes"}, "spec": {}},
    ]
    assert service_aliases(pod(), services) == (
        "backend",
        "backend.staging",
        "backend.staging.svc",
        "backend.staging.svc.cluster.local",
    )


# --- scheduling ---


def test_pod_fits_until_requests_exceed_allocatable() -> None:
    small = pod("a", {"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}})
    assert fit(small, NODE, [], {}, {}) is None
    assert fit(small, NODE, [small, small, small], {}, {}) is None  # exactly full still fits
    cpu_only = pod("c", {"name": "c", "resources": {"requests": {"cpu": "500m"}}})
    assert fit(cpu_only, NODE, [small, small, small, small], {}, {}) == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    huge = pod("b", {"name": "c", "resources": {"limits": {"cpu": "4", "memory": "8Gi"}}})
    assert fit(huge, NODE, [], {}, {}) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


def test_init_containers_count_as_their_maximum() -> None:
    p = pod(
        "p",
        {"name": "c", "resources": {"requests": {"cpu": "100m"}}},
        initContainers=[{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
    )
    assert pod_requests(p)["cpu"] == 1


def test_node_selector_taints_and_claims() -> None:
    selector = pod("p", nodeSelector={"pool": "gpu"})
    assert fit(selector, NODE, [], {}, {}) == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    tainted = {**NODE, "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}
    assert "untolerated taint {dedicated: db}" in (fit(pod(), tainted, [], {}, {}) or "")
    tolerant = pod("p", tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert fit(tolerant, tainted, [], {}, {}) is None
    with_claim = pod("p", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    assert fit(with_claim, NODE, [], {}, {}) == (
        '0/1 nodes are available: persistentvolumeclaim "data" not found. '
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    pending = {"metadata": {"name": "data"}, "status": {"phase": "Pending"}}
    assert "unbound immediate PersistentVolumeClaims" in (
        fit(with_claim, NODE, [], {"data": pending}, {"data": True}) or ""
    )
    assert fit(with_claim, NODE, [], {"data": pending}, {"data": False}) is None  # WaitForFirstConsumer


# --- endpoints ---


def test_endpoints_split_ready_and_not_ready_and_resolve_named_ports() -> None:
    svc = {
        "metadata": {"name": "backend", "namespace": "staging"},
        "spec": {
            "selector": {"app": "backend"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }

    def running(name: str, ip: str, ready: bool) -> dict[str, Any]:
        p = pod(name, {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}, nodeName="node-1")
        p["status"] = {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        return p

    subsets = endpoint_subsets(svc, [running("b", "10.0.0.2", False), running("a", "10.0.0.1", True)])
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "10.0.0.1",
                    "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "staging", "name": "a", "uid": "a-uid"},
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "staging", "name": "b", "uid": "b-uid"},
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]


# --- ReplicaSet helpers ---


def ranked(
    name: str,
    *,
    node: bool = True,
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    created: float = 0,
) -> dict[str, Any]:
    p = pod(name, nodeName="node-1" if node else "")
    p["metadata"]["creationTimestamp"] = ts(created)
    p["status"] = {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(created)}
        ],
        "containerStatuses": [{"restartCount": restarts}],
    }
    return p


def test_scale_down_deletes_the_least_useful_pods_first() -> None:
    pods = [
        ranked("old-ready", created=0),
        ranked("new-ready", created=50),
        ranked("crashing", restarts=5, ready=False, created=10),
        ranked("unscheduled", node=False, phase="Pending", ready=False, created=0),
        ranked("pending", phase="Pending", ready=False, created=0),
    ]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "pending", "crashing", "new-ready", "old-ready"]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, 1)] == ["unscheduled"]


def test_replicaset_status_counts_active_pods() -> None:
    rs = {
        "metadata": {"name": "rs", "generation": 2},
        "spec": {
            "replicas": 3,
            "minReadySeconds": 10,
            "template": {"metadata": {"labels": {"app": "backend"}}},
        },
    }
    young = ranked("young", created=-5)
    old = ranked("old", created=-60)
    finished = ranked("done", phase="Succeeded")
    terminating = ranked("bye")
    terminating["metadata"]["deletionTimestamp"] = ts()
    status = rs_status(rs, [young, old, finished, terminating], NOW)
    assert status == {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 2,
    }
    assert rs_status(rs, [], NOW) == {"replicas": 0, "observedGeneration": 2}


def test_qos_class() -> None:
    assert qos_class({"containers": [{"name": "a"}]}) == "BestEffort"
    limits = {"cpu": "1", "memory": "1Gi"}
    assert qos_class({"containers": [{"name": "a", "resources": {"limits": limits}}]}) == "Guaranteed"
    assert qos_class({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}) == "Burstable"


def test_node_heartbeat_keeps_transition_times() -> None:
    first = heartbeat_conditions(None, NOW)
    assert [c["type"] for c in first] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    later = heartbeat_conditions(first, NOW + timedelta(seconds=10))
    ready = later[-1]
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert ready["lastHeartbeatTime"] == ts(10) and ready["lastTransitionTime"] == ts(0)
