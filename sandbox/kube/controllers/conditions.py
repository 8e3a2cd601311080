"""A Deployment's conditions, spelled and updated as ``deploymentutil`` does.

The condition types and reasons, ``SetDeploymentCondition``'s rules, the ``ReplicaFailure`` copied from
ReplicaSets and the ``Progressing`` a pause writes. Uses ``specs.py``; ``rolloutstatus.py`` decides
which conditions to write, and ``deployment.py`` (through ``rollout.py``) writes a few itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .objects import Obj, fmt_time, get_condition
from .specs import paused, progress_deadline

# Condition types and reasons, spelled as in deploymentutil.
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"


def new_condition(ctype: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    t = fmt_time(now)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": t,
        "lastTransitionTime": t,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: same status and reason changes nothing; the transition time stays while
    the status does; a changed condition moves to the end of the list."""
    conditions: list[Obj] = status.get("conditions") or []
    current = get_condition(conditions, condition["type"])
    if (
        current is not None
        and current["status"] == condition["status"]
        and current.get("reason") == condition.get("reason")
    ):
        return
    condition = dict(condition)
    if current is not None and current["status"] == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [c for c in conditions if c.get("type") != condition["type"]] + [condition]


def remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def replica_failures(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """``getReplicaFailures``: the new ReplicaSet's ``ReplicaFailure`` first, else any old one's."""

    def of(rs: Obj) -> list[Obj]:
        out = []
        for c in (rs.get("status") or {}).get("conditions") or []:
            if c.get("type") == REPLICA_FAILURE:
                t = c.get("lastTransitionTime")
                out.append(
                    {
                        "type": REPLICA_FAILURE,
                        "status": c.get("status"),
                        "lastUpdateTime": t,
                        "lastTransitionTime": t,
                        "reason": c.get("reason"),
                        "message": c.get("message"),
                    }
                )
        return out

    if new_rs is not None and (found := of(new_rs)):
        return found
    return [c for rs in all_rss if rs is not None for c in of(rs)]


def paused_condition(d: Obj, now: datetime) -> Obj | None:
    """``checkPausedConditions``: an Unknown ``Progressing`` while paused, so a resume does not time out."""
    if progress_deadline(d) is None:
        return None
    cond = get_condition((d.get("status") or {}).get("conditions"), PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return None
    paused_exists = cond is not None and cond.get("reason") == PAUSED
    if paused(d) and not paused_exists:
        return new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    if not paused(d) and paused_exists:
        return new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now)
    return None
