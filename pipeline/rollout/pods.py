"""Which pods belong to a workload's new revision, and which of their states do not heal by themselves.

:func:`pod_problem` is a pure function of a pod: an image that cannot be pulled, a container that cannot
be configured, one that keeps crashing, or a pod that stays unschedulable past a short grace is a
:class:`PodProblem` (with the container, exit code, restarts and which logs tell the story); anything
else may still become ready. :func:`new_replicaset` finds a Deployment's new ReplicaSet (its pods carry
its pod-template-hash); :func:`selector_string` turns a LabelSelector into a query. Unit-tested on dicts.

Neighbours: ``rollout.waiter`` judges the pods it watches with these; ``rollout.diagnosis`` explains a
:class:`PodProblem`; ``rollout`` re-exports the public names. It uses ``rollout.status`` for counts.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..base import Obj
from .status import as_int

# Waiting reasons that do not heal by themselves (or only after a fix elsewhere): fail at once.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)
# A container restarted this often during a rollout is crashing, even between back-offs.
CRASH_RESTARTS = 2
# How long a pod may stay unschedulable before we call it (a node may be on its way).
UNSCHEDULABLE_GRACE_SECONDS = 30.0
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class PodProblem:
    pod: str
    reason: str
    message: str
    container: str = ""
    exit_code: int | None = None
    restarts: int = 0
    # Which logs tell the story: the crashed instance's ("previous"), the current one's, or none.
    logs: Literal["previous", "current", "none"] = "none"


def parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def pod_problem(
    pod: Obj,
    *,
    now: datetime.datetime,
    unschedulable_grace: float = UNSCHEDULABLE_GRACE_SECONDS,
    seen_since: datetime.datetime | None = None,
) -> PodProblem | None:
    """Why this pod of a new ReplicaSet will not become ready by itself, or None while it still may."""
    name = str((pod.get("metadata") or {}).get("name", "?"))
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for cs in statuses:
        container = str(cs.get("name", ""))
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = as_int(cs.get("restartCount"))
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        exit_code = last.get("exitCode") if last else None
        if reason in FATAL_WAITING:
            crashed = reason in ("CrashLoopBackOff", "RunContainerError")
            return PodProblem(
                pod=name,
                reason=reason,
                message=str(waiting.get("message") or ""),
                container=container,
                exit_code=exit_code if crashed else None,
                restarts=restarts,
                logs="previous" if crashed and last else "none",
            )
        if restarts >= CRASH_RESTARTS and last:
            return PodProblem(
                pod=name,
                reason=str(last.get("reason") or "Restarting"),
                # describe() already says "N restarts"; only the runtime's own words add to it.
                message=str(last.get("message") or ""),
                container=container,
                exit_code=exit_code,
                restarts=restarts,
                logs="previous",
            )
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        since = parse_time(scheduled.get("lastTransitionTime")) or seen_since or now
        if (now - since).total_seconds() >= unschedulable_grace:
            return PodProblem(pod=name, reason="Unschedulable", message=str(scheduled.get("message") or ""))
    return None


def _template_without_hash(template: Obj | None) -> Obj:
    out = json.loads(json.dumps(template or {}))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return dict(out)


def new_replicaset(deployment: Obj, replicasets: Iterable[Obj]) -> Obj | None:
    """The Deployment's new ReplicaSet: the one it owns whose pod template is the Deployment's.

    Falls back to the revision annotation the deployment controller keeps equal on both.
    """
    uid = (deployment.get("metadata") or {}).get("uid")
    owned = [
        dict(rs)
        for rs in replicasets
        if not uid
        or any(o.get("uid") == uid for o in (rs.get("metadata") or {}).get("ownerReferences") or [])
    ]
    wanted = _template_without_hash((deployment.get("spec") or {}).get("template"))
    for rs in owned:
        if _template_without_hash((rs.get("spec") or {}).get("template")) == wanted:
            return rs
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    revision = (meta.get("annotations") or {}).get(REVISION)
    if revision and as_int(status.get("observedGeneration")) >= as_int(meta.get("generation")):
        for rs in owned:
            if ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) == revision:
                return rs
    return None


def selector_string(selector: Obj | None) -> str:
    """A LabelSelector as the ``labelSelector`` query parameter."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
