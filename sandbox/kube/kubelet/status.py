"""The Pod ``status`` the kubelet reports, built from its container records.

What each container shows: ``running``; ``waiting`` with the reason the worker left on the record
(``ContainerCreating``, ``PodInitializing``, ``ErrImagePull``/``ImagePullBackOff``, ``ErrImageNeverPull``,
``CrashLoopBackOff``, ``CreateContainerConfigError``, ``CreateContainerError``); or ``terminated`` with
the exit's reason (``Completed``, ``Error``, ``OOMKilled``, ``StartError``, ``ContainerStatusUnknown``).
While a crashed instance waits to be replaced, ``lastState.terminated`` shows it. On top: the phase
(the kubelet's ``getPhase``), the four conditions with their transition times, the QoS class and the IPs.

Used by the pod worker (``worker.py``, ``containers.py``), which owns the records. Pure; no Docker.
"""

from __future__ import annotations

import time
from typing import Any

from .clock import now
from .cri import Instance
from .record import ContainerRecord


def format_pod(pod: dict[str, Any]) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod.get("metadata", {})
    return f"{meta.get('name')}_{meta.get('namespace', 'default')}({meta.get('uid', '')})"


def terminated(info: Instance | None) -> tuple[dict[str, Any], float]:
    """``state.terminated`` of an exited instance (None: removed behind our back) and when it finished."""
    if info is None:  # Kubernetes reports a vanished container as unknown
        unknown = {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
        }
        return unknown, time.time()
    code = info.exit_code
    if info.oom_killed:
        reason = "OOMKilled"
    elif info.error:
        reason = "StartError"
        code = code or 128
    else:
        reason = "Completed" if code == 0 else "Error"
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": info.started_at or None,
        "finishedAt": info.finished_at or now(),
        "containerID": f"docker://{info.id}",
    }
    if info.error:
        state["message"] = info.error
    return {k: v for k, v in state.items() if v is not None}, info.finished_epoch or time.time()


def container_status(rec: ContainerRecord) -> dict[str, Any]:
    state: dict[str, Any]
    if rec.running:
        state = {"running": {"startedAt": rec.started_at}}
    elif rec.waiting is not None:
        reason, message = rec.waiting
        state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    elif rec.terminated is not None:
        state = {"terminated": rec.terminated}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    # While a crashed instance waits to be replaced, it is what lastState shows.
    last = rec.terminated if (rec.waiting is not None and rec.terminated) else rec.last_terminated
    status: dict[str, Any] = {
        "name": rec.name,
        "image": rec.spec.get("image", ""),
        "imageID": rec.image_id if rec.container_id else "",
        "ready": rec.ready and rec.running,
        "restartCount": rec.restart_count,
        "started": rec.started and rec.running,
        "state": state,
        "lastState": {"terminated": last} if last else {},
    }
    if rec.container_id:
        status["containerID"] = f"docker://{rec.container_id}"
    return status


class Conditions:
    """The pod's conditions; remembers when each last changed value, for ``lastTransitionTime``."""

    def __init__(self) -> None:
        self.changed: dict[str, tuple[str, str]] = {}

    def condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        value = "True" if ok else "False"
        previous = self.changed.get(kind)
        if previous is None or previous[0] != value:
            self.changed[kind] = (value, now())
        cond: dict[str, Any] = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self.changed[kind][1],
        }
        if not ok and reason:
            cond["reason"], cond["message"] = reason, message
        return cond

    def of(self, inits: list[ContainerRecord], apps: list[ContainerRecord]) -> list[dict[str, Any]]:
        unready = [r.name for r in apps if not (r.ready and r.running)]
        incomplete = [r.name for r in inits if not r.completed]
        not_ready = f"containers with unready status: [{' '.join(unready)}]"
        return [
            self.condition(
                "Initialized",
                not incomplete,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            ),
            self.condition("Ready", not unready, "ContainersNotReady", not_ready),
            self.condition("ContainersReady", not unready, "ContainersNotReady", not_ready),
            self.condition("PodScheduled", True),
        ]


def pod_status(
    pod: dict[str, Any],
    inits: list[ContainerRecord],
    apps: list[ContainerRecord],
    conditions: Conditions,
    *,
    node_ip: str,
    pod_ip: str | None,
    start_time: str,
) -> dict[str, Any]:
    """The Pod's ``status``; ``start_time`` "" while the worker has not begun (then no ``startTime``)."""
    restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    status: dict[str, Any] = {
        "phase": phase(inits, apps, restart_policy),
        "conditions": conditions.of(inits, apps),
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        **({"startTime": start_time} if start_time else {}),
        "qosClass": qos_class(pod),
        "containerStatuses": [container_status(r) for r in apps],
    }
    if inits:
        status["initContainerStatuses"] = [container_status(r) for r in inits]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def phase(inits: list[ContainerRecord], apps: list[ContainerRecord], restart_policy: str) -> str:
    """The kubelet's ``getPhase``."""
    for rec in inits:
        if rec.completed:
            continue
        if rec.terminated is not None and restart_policy == "Never":
            return "Failed"
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for rec in apps:
        if rec.running:
            running += 1
        elif rec.terminated is not None and rec.waiting is None:
            stopped += 1
            succeeded += rec.terminated.get("exitCode") == 0
        elif rec.terminated is not None or rec.last_terminated is not None or rec.restart_count > 0:
            running += 1  # restarting after a crash still counts as running
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def qos_class(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_seen = limits_seen = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_seen = requests_seen or bool(requests) or bool(limits)
        limits_seen = limits_seen or bool(limits)
        for kind in ("cpu", "memory"):
            if kind not in limits or str(requests.get(kind, limits[kind])) != str(limits[kind]):
                guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_seen else "Burstable"
