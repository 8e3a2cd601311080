"""The node's own object: created if missing, its conditions' heartbeats kept fresh as a kubelet does.

The kubelet posts node status every 10 seconds (``nodeStatusUpdateFrequency``); a stale ``Ready``
heartbeat is what makes a real node ``NotReady``. Capacity and allocatable default to this machine's CPUs,
memory and disk, so the scheduler (``scheduling.py``) checks requests against real numbers.

Neighbours: ``pods.py`` reads the node for scheduling; the API server serves it to ``kubectl get nodes``.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..store.kinds import NODES
from .objects import MANAGER, Obj, deepcopy, fmt_time, name_of, parse_time, utcnow

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.node")

HEARTBEAT_SECONDS = 10
_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def _memory_ki() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 4 * 1024 * 1024


def machine_resources(root: str = "/") -> dict[str, str]:
    """This machine as a node's ``capacity``: CPUs, memory in Ki, disk in bytes, 110 pods (the default)."""
    return {
        "cpu": str(os.cpu_count() or 1),
        "ephemeral-storage": str(shutil.disk_usage(root).total),
        "memory": f"{_memory_ki()}Ki",
        "pods": "110",
    }


def default_node(name: str, ip: str, *, cluster: str = "", runtime: str = "docker://20.10") -> Obj:
    """A Node as GKE shows one, with ``ip`` as both InternalIP and ExternalIP."""
    resources = machine_resources()
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "sandbox",
        "topology.kubernetes.io/region": "local",
        "topology.kubernetes.io/zone": "local-a",
    }
    if cluster:
        labels["cloud.google.com/gke-nodepool"] = "default-pool"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "ExternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "capacity": resources,
            "allocatable": dict(resources),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "sandbox (Docker)",
                "kernelVersion": platform.release(),
                "containerRuntimeVersion": runtime,
                "kubeletVersion": "v1.30.0-sandbox",
                "kubeProxyVersion": "v1.30.0-sandbox",
            },
        },
    }


def heartbeat_conditions(existing: list[Obj] | None, now: datetime) -> list[Obj]:
    """The node conditions with a fresh ``lastHeartbeatTime``; transition times kept while status holds."""
    by_type = {c.get("type"): c for c in existing or []}
    out = []
    for ctype, status, reason, message in _CONDITIONS:
        current = by_type.get(ctype) or {}
        transition = current.get("lastTransitionTime") if current.get("status") == status else None
        out.append(
            {
                "type": ctype,
                "status": status,
                "lastHeartbeatTime": fmt_time(now),
                "lastTransitionTime": transition or fmt_time(now),
                "reason": reason,
                "message": message,
            }
        )
    return out


class NodeHeartbeat:
    def __init__(self, store: Store, node: Obj, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.node = node
        self.clock = clock

    def sync(self) -> None:
        name = name_of(self.node)
        current = self.store.get(NODES, None, name)
        if current is None:
            current = self.store.create(NODES, self.node, manager=MANAGER)
        now = self.clock()
        status = deepcopy(current.get("status") or {})
        for key in ("addresses", "capacity", "allocatable", "nodeInfo"):
            if not status.get(key) and (self.node.get("status") or {}).get(key):
                status[key] = deepcopy(self.node["status"][key])
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        beat = parse_time((ready or {}).get("lastHeartbeatTime"))
        fresh = beat is not None and (now - beat).total_seconds() < HEARTBEAT_SECONDS
        if fresh and status == (current.get("status") or {}):
            return
        status["conditions"] = heartbeat_conditions(status.get("conditions"), now)
        current["status"] = status
        try:
            self.store.update(NODES, current, manager=MANAGER, subresource="status")
        except Exception as e:  # the next beat retries
            log.debug("node heartbeat: %s", e)
