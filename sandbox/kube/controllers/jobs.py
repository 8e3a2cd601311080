"""The Job controller: runs a Job's pods to completion and reports it, as kube-controller-manager's ``job``.

The subset a migration Job (one pod, ``restartPolicy: Never``) needs: pods named ``<job>-<5 chars>``
with the template's labels plus ``job-name``/``batch.kubernetes.io/job-name`` and ``controller-uid``, a
controller ``ownerReference`` (deleting the Job deletes them); a failed pod is replaced until
``backoffLimit`` failures (default 6); ``completions`` successes (default 1) make the Job ``Complete``,
too many failures ``Failed`` with reason ``BackoffLimitExceeded``, and ``activeDeadlineSeconds`` ends it
with ``DeadlineExceeded``. ``status`` counts ``active``, ``succeeded`` and ``failed`` pods and carries
``startTime`` and ``completionTime``. Not served: parallelism above 1, indexed Jobs, pod failure
policies, ``ttlSecondsAfterFinished``.

Neighbours: ``manager.py`` runs :meth:`JobController.sync_all`; ``pods.py`` schedules and runs the pods
created here (the kubelet reports ``Succeeded``/``Failed`` for pods that do not restart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..store.kinds import JOBS, PODS
from .events import EventRecorder
from .objects import (
    MANAGER,
    Obj,
    controller_of,
    controller_ref,
    deepcopy,
    deleting,
    fmt_time,
    get_condition,
    name_of,
    ns_of,
    parse_time,
    random_suffix,
    uid_of,
    utcnow,
)
from .replicaset import qos_class

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.jobs")

COMPONENT = "job-controller"


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def finished(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions")
    return any(
        (get_condition(conditions, kind) or {}).get("status") == "True" for kind in ("Complete", "Failed")
    )


def pod_for(job: Obj) -> Obj:
    """A pod of the Job's template (``GetPodFromTemplate``), labelled and owned as the controller does."""
    template = deepcopy((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    name = name_of(job)
    labels = {
        **(tmeta.get("labels") or {}),
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid_of(job),
        "batch.kubernetes.io/controller-uid": uid_of(job),
    }
    pod_meta: Obj = {
        "name": f"{name}-{random_suffix()}",
        "generateName": f"{name}-",
        "namespace": ns_of(job),
        "labels": labels,
        "ownerReferences": [controller_ref(job, "batch/v1", "Job")],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }


def _condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


class JobController:
    def __init__(self, store: Store, events: EventRecorder, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.events = events
        self.clock = clock

    def sync_all(self) -> None:
        jobs, _ = self.store.list(JOBS)
        if not jobs:
            return
        pods, _ = self.store.list(PODS)
        for job in jobs:
            owned = [p for p in pods if (controller_of(p) or {}).get("uid") == uid_of(job)]
            try:
                self.sync(job, owned)
            except Exception:
                log.exception("syncing job %s/%s", ns_of(job), name_of(job))

    def sync(self, job: Obj, pods: list[Obj]) -> None:
        if deleting(job) or finished(job):
            return
        spec = job.get("spec") or {}
        now = self.clock()
        stamp = fmt_time(now)
        status = deepcopy(job.get("status") or {})
        status.setdefault("startTime", stamp)
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed") and not deleting(p)]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        completions = int(spec.get("completions") or 1)
        backoff_limit = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status["startTime"]) or now
        conditions = list(status.get("conditions") or [])
        if succeeded >= completions:
            conditions.append(
                {"type": "Complete", "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp}
            )
            status["completionTime"] = stamp
            self.events.record(job, "Normal", "Completed", "Job completed", component=COMPONENT)
        elif failed > backoff_limit:
            message = "Job has reached the specified backoff limit"
            conditions.append(_condition("Failed", "BackoffLimitExceeded", message, stamp))
            self.events.record(job, "Warning", "BackoffLimitExceeded", message, component=COMPONENT)
        elif deadline is not None and (now - started).total_seconds() > int(deadline):
            message = "Job was active longer than specified deadline"
            conditions.append(_condition("Failed", "DeadlineExceeded", message, stamp))
            self.events.record(job, "Warning", "DeadlineExceeded", message, component=COMPONENT)
            for pod in active:
                self.store.delete(PODS, ns_of(pod), name_of(pod))
            active = []
        elif not active:
            created = self.store.create(PODS, pod_for(job), manager=MANAGER)
            self.events.record(
                job, "Normal", "SuccessfulCreate", f"Created pod: {name_of(created)}", component=COMPONENT
            )
            active = [created]
        status.update(active=len(active), succeeded=succeeded, failed=failed)
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                status.pop(key)
        if conditions:
            status["conditions"] = conditions
        if status != (job.get("status") or {}):
            updated = deepcopy(job)
            updated["status"] = status
            try:
                self.store.update(JOBS, updated, manager=MANAGER, subresource="status")
            except Exception as e:  # stale: the next pass recomputes from fresh objects
                log.debug("status of job %s: %s", name_of(job), e)
