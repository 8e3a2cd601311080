"""Whether a workload has rolled out, judged exactly as ``kubectl rollout status`` judges it.

:func:`judge` is a pure function of the workload object (a Deployment, StatefulSet or DaemonSet): done
when observedGeneration caught up, every replica is updated, old replicas are gone and updated replicas
are available; failed when ``ProgressDeadlineExceeded`` (or paused, or an OnDelete strategy); else
waiting, with kubectl's own message. Unit-tested on plain dicts.

Neighbours: ``rollout.waiter`` judges every workload event with it; ``rollout`` re-exports its names;
``rollout.pods`` and ``rollout.diagnosis`` share :func:`as_int`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import Obj
from ..errors import RolloutError


@dataclass(frozen=True)
class Judgement:
    done: bool
    failed: bool
    message: str
    reason: str = ""


def as_int(value: object) -> int:
    """A count from a status field (absent or not a number: 0)."""
    return int(value) if isinstance(value, int | float) else 0


def _condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def deployment_status(obj: Obj) -> Judgement:
    """``kubectl rollout status deployment/...``: done, failed (deadline exceeded) or waiting, and why."""
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = as_int((obj.get("metadata") or {}).get("generation"))
    if generation > as_int(status.get("observedGeneration")):
        return Judgement(False, False, "Waiting for deployment spec update to be observed...")
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Judgement(
            False, True, f'deployment "{name}" exceeded its progress deadline', "ProgressDeadlineExceeded"
        )
    if spec.get("paused"):
        # kubectl would wait for ever; a paused deployment never finishes on its own.
        return Judgement(False, True, f'deployment "{name}" is paused; resume it to roll out', "Paused")
    replicas = spec.get("replicas")
    updated = as_int(status.get("updatedReplicas"))
    total = as_int(status.get("replicas"))
    available = as_int(status.get("availableReplicas"))
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if replicas is not None and updated < as_int(replicas):
        return Judgement(
            False, False, f"{prefix}{updated} out of {replicas} new replicas have been updated..."
        )
    if total > updated:
        return Judgement(False, False, f"{prefix}{total - updated} old replicas are pending termination...")
    if available < updated:
        return Judgement(False, False, f"{prefix}{available} of {updated} updated replicas are available...")
    return Judgement(True, False, f'deployment "{name}" successfully rolled out')


def statefulset_status(obj: Obj) -> Judgement:
    """``kubectl rollout status statefulset/...``."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return Judgement(
            False, True, "rollout status is only available for RollingUpdate strategy type", "OnDelete"
        )
    generation = as_int((obj.get("metadata") or {}).get("generation"))
    observed = as_int(status.get("observedGeneration"))
    if observed == 0 or generation > observed:
        return Judgement(False, False, "Waiting for statefulset spec update to be observed...")
    replicas = spec.get("replicas")
    if replicas is not None and as_int(status.get("readyReplicas")) < as_int(replicas):
        missing = as_int(replicas) - as_int(status.get("readyReplicas"))
        return Judgement(False, False, f"Waiting for {missing} pods to be ready...")
    rolling = strategy.get("rollingUpdate")
    updated = as_int(status.get("updatedReplicas"))
    if rolling is not None:
        partition = rolling.get("partition")
        if replicas is not None and partition is not None and updated < as_int(replicas) - as_int(partition):
            return Judgement(
                False,
                False,
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {as_int(replicas) - as_int(partition)} new pods have been updated...",
            )
        return Judgement(
            True, False, f"partitioned roll out complete: {updated} new pods have been updated..."
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return Judgement(
            False,
            False,
            "waiting for statefulset rolling update to complete "
            f"{updated} pods at revision {status.get('updateRevision')}...",
        )
    return Judgement(
        True,
        False,
        f"statefulset rolling update complete {as_int(status.get('currentReplicas'))} "
        f"pods at revision {status.get('currentRevision')}...",
    )


def daemonset_status(obj: Obj) -> Judgement:
    """``kubectl rollout status daemonset/...``."""
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return Judgement(
            False, True, "rollout status is only available for RollingUpdate strategy type", "OnDelete"
        )
    generation = as_int((obj.get("metadata") or {}).get("generation"))
    if generation > as_int(status.get("observedGeneration")):
        return Judgement(False, False, "Waiting for daemon set spec update to be observed...")
    desired = as_int(status.get("desiredNumberScheduled"))
    updated = as_int(status.get("updatedNumberScheduled"))
    available = as_int(status.get("numberAvailable"))
    prefix = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return Judgement(False, False, f"{prefix}{updated} out of {desired} new pods have been updated...")
    if available < desired:
        return Judgement(False, False, f"{prefix}{available} of {desired} updated pods are available...")
    return Judgement(True, False, f'daemon set "{name}" successfully rolled out')


def judge(obj: Obj) -> Judgement:
    kind = obj.get("kind")
    if kind == "Deployment":
        return deployment_status(obj)
    if kind == "StatefulSet":
        return statefulset_status(obj)
    if kind == "DaemonSet":
        return daemonset_status(obj)
    raise RolloutError(
        f"cannot judge the rollout of a {kind}", "Only Deployments, StatefulSets and DaemonSets"
    )
