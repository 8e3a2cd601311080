"""A Deployment's status as ``calculateStatus`` and ``syncRolloutStatus`` compute it.

Counts summed over the ReplicaSets, ``Available``, and the ``Progressing`` condition with its
``ProgressDeadlineExceeded`` once ``progressDeadlineSeconds`` pass without progress; what the pipeline
and ``kubectl rollout status`` judge a rollout by. Uses ``specs.py``, ``scaling.py`` (the sums) and
``conditions.py``; ``deployment.py`` (through ``rollout.py``) writes the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .conditions import (
    AVAILABLE,
    MIN_AVAILABLE,
    MIN_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    PROGRESSING,
    REPLICA_FAILURE,
    RS_UPDATED,
    TIMED_OUT,
    new_condition,
    remove_condition,
    replica_failures,
    set_condition,
)
from .objects import Obj, get_condition, name_of, parse_time, seconds
from .scaling import sum_spec, sum_status
from .specs import max_unavailable, progress_deadline, spec_replicas

# Deployment status fields are all ``omitempty``: zeros are not written.
_STATUS_ORDER = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "conditions",
    "collisionCount",
)


def wire_status(status: Obj) -> Obj:
    """The status as the API writes it: fields in Go's order, zero counts and empty lists left out."""
    out: Obj = {}
    for key in _STATUS_ORDER:
        value = status.get(key)
        if key == "collisionCount":
            if value is not None:
                out[key] = value
        elif value:
            out[key] = value
    return out


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    """``calculateStatus``: counts from the ReplicaSets, plus the ``Available`` condition."""
    old_status: Obj = d.get("status") or {}
    available = sum_status(all_rss, "availableReplicas")
    total = sum_spec(all_rss)
    status: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": sum_status(all_rss, "replicas"),
        "updatedReplicas": sum_status([new_rs], "replicas"),
        "readyReplicas": sum_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
        "conditions": [dict(c) for c in old_status.get("conditions") or []],
        "collisionCount": old_status.get("collisionCount"),
    }
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(
            status,
            new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now),
        )
    else:
        set_condition(
            status,
            new_condition(
                AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.", now
            ),
        )
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = spec_replicas(d)
    return bool(
        int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("observedGeneration") or 0)
        >= int((d.get("metadata") or {}).get("generation") or 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    """``DeploymentProgressing``: more updated/ready/available pods, or fewer old ones, than last written."""
    old = d.get("status") or {}

    def n(s: Obj, key: str) -> int:
        return int(s.get(key) or 0)

    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(status, "replicas") - n(status, "updatedReplicas")
    return (
        n(status, "updatedReplicas") > n(old, "updatedReplicas")
        or new_old < old_old
        or n(status, "readyReplicas") > n(old, "readyReplicas")
        or n(status, "availableReplicas") > n(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    """``DeploymentTimedOut``: no progress noted for ``progressDeadlineSeconds`` since ``lastUpdateTime``."""
    deadline = progress_deadline(d)
    if deadline is None:
        return False
    cond = get_condition(status.get("conditions"), PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + seconds(deadline) < now


def rollout_status(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None, now: datetime) -> Obj:
    """``syncRolloutStatus``: the status to write, with ``Progressing`` and ``ReplicaFailure`` decided."""
    status = calculate_status(all_rss, new_rs, d, now)
    deadline = progress_deadline(d)
    if deadline is None:
        remove_condition(status, PROGRESSING)
    current = get_condition((d.get("status") or {}).get("conditions"), PROGRESSING)
    complete_already = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if deadline is not None and not complete_already:
        rs_name = name_of(new_rs) if new_rs is not None else None
        if deployment_complete(d, status):
            msg = (
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if rs_name
                else f'Deployment "{name_of(d)}" has successfully progressed.'
            )
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif deployment_progressing(d, status):
            msg = (
                f'ReplicaSet "{rs_name}" is progressing.'
                if rs_name
                else f'Deployment "{name_of(d)}" is progressing.'
            )
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now)
            # Unlike set_condition, progress with the same reason must still refresh lastUpdateTime
            # (that is what the deadline is measured from); the transition time stays while True.
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = (
                f'ReplicaSet "{rs_name}" has timed out progressing.'
                if rs_name
                else f'Deployment "{name_of(d)}" has timed out progressing.'
            )
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failures = replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def status_only(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None, now: datetime) -> Obj:
    """``syncDeploymentStatus`` (scaling and paused paths): counts and ``Available`` only."""
    return calculate_status(all_rss, new_rs, d, now)
