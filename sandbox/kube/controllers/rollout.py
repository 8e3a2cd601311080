"""The Deployment controller's arithmetic, as pure functions on plain dicts.

Everything here mirrors ``pkg/controller/deployment`` and its ``util`` package in kube-controller-manager,
because the pipeline (and ``kubectl rollout status``) judge a rollout by the exact numbers and conditions
that code writes:

- ``maxSurge``/``maxUnavailable`` are ints or percentages of ``spec.replicas``; the surge rounds up, the
  unavailability rounds down, and when both resolve to 0 the unavailability becomes 1
  (``ResolveFenceposts``; validation rejects both being 0 before it comes to that).
- the new ReplicaSet grows within ``replicas + maxSurge`` (``NewRSNewReplicas``); old ones shrink first by
  their unavailable pods, then only while ``replicas - maxUnavailable`` pods stay available
  (``reconcileOldReplicaSets``);
- a scaling event during a rollout is spread proportionally over the active ReplicaSets (``scale``);
- status and conditions are computed as ``calculateStatus`` and ``syncRolloutStatus`` do, including
  ``ProgressDeadlineExceeded`` once ``progressDeadlineSeconds`` pass without progress.

``deployment.py`` applies the results through the store; the tests feed these functions dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .objects import (
    Obj,
    creation_key,
    fmt_time,
    get_condition,
    go_round,
    name_of,
    parse_time,
    prune_empty,
    safe_encode,
    seconds,
    semantic_equal,
)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations the controller owns on ReplicaSets, never copied from the Deployment.
_SKIP_COPY = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS}
# The controller's limit on the revision-history annotation (its --deployment-controller flag default).
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

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


class InvalidIntOrPercent(ValueError):
    """A ``maxSurge``/``maxUnavailable`` that is neither an int nor ``"<int>%"``."""


# --- spec accessors with the API defaults --------------------------------------------------------------


def spec_replicas(obj: Obj) -> int:
    """``spec.replicas``, defaulted to 1 as the API server does for Deployments and ReplicaSets."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, key: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(key) or 0)


def strategy_type(d: Obj) -> str:
    return str(((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate")


def is_rolling(d: Obj) -> bool:
    return strategy_type(d) == "RollingUpdate"


def _rolling_params(d: Obj) -> tuple[int | str, int | str]:
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    surge = ru.get("maxSurge")
    unavailable = ru.get("maxUnavailable")
    return ("25%" if surge is None else surge), ("25%" if unavailable is None else unavailable)


def progress_deadline(d: Obj) -> int | None:
    """Seconds, or None when the Deployment has no deadline (``HasProgressDeadline`` is false)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
    if value is None or int(value) == MAX_INT32:
        return None
    return int(value)


def revision_history_limit(d: Obj) -> int | None:
    value = (d.get("spec") or {}).get("revisionHistoryLimit", 10)
    return None if value is None else int(value)


def min_ready_seconds(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("minReadySeconds") or 0)


def paused(d: Obj) -> bool:
    return bool((d.get("spec") or {}).get("paused"))


# --- maxSurge / maxUnavailable -------------------------------------------------------------------------


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` (floats as Go computes them, then ceil or floor)."""
    if isinstance(value, bool):
        raise InvalidIntOrPercent(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise InvalidIntOrPercent(
            "invalid value for IntOrString: invalid type: string is not a percentage: " + value
        )
    try:
        percent = int(value[:-1])
    except ValueError as e:
        raise InvalidIntOrPercent(f"invalid value {value!r}: {e}") from e
    exact = float(percent) * float(total) / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(surge: int | str, unavailable: int | str, desired: int) -> tuple[int, int]:
    """``ResolveFenceposts``: both zero would never make progress, so unavailability becomes 1."""
    s = scaled_value(surge, desired, True)
    u = scaled_value(unavailable, desired, False)
    if s == 0 and u == 0:
        u = 1
    return s, u


_PERCENT_HINT = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)


def validate_rolling_update(d: Obj) -> list[str]:
    """What the API server's validation says of a Deployment's rolling-update parameters (empty if valid).

    Offered to the API server so that an invalid strategy is refused on create/update as on a real
    cluster; the controller itself falls back to ``ResolveFenceposts`` and never fails on it.
    """
    if not is_rolling(d):
        ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate")
        if ru:
            return [
                "spec.strategy.rollingUpdate: Forbidden: "
                "may not be specified when strategy `type` is 'Recreate'"
            ]
        return []
    errors: list[str] = []
    surge, unavailable = _rolling_params(d)
    values: dict[str, int] = {}
    for field, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
        path = f"spec.strategy.rollingUpdate.{field}"
        shown = json.dumps(value)
        try:
            values[field] = scaled_value(value, 100, True)
        except InvalidIntOrPercent:
            errors.append(f"{path}: Invalid value: {shown}: {_PERCENT_HINT}")
            continue
        if values[field] < 0:
            errors.append(f"{path}: Invalid value: {shown}: must be greater than or equal to 0")
        if isinstance(value, str) and values[field] > 100:
            errors.append(f"{path}: Invalid value: {shown}: must not be greater than 100%")
    if values.get("maxSurge") == 0 and values.get("maxUnavailable") == 0:
        errors.append(
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "
            f"{json.dumps(unavailable)}: may not be 0 when `maxSurge` is 0"
        )
    return errors


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, unavailable = _rolling_params(d)
    return resolve_fenceposts(surge, unavailable, spec_replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    """``MaxUnavailable``: never more than ``spec.replicas``; 0 for Recreate and for 0 replicas."""
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    surge, unavailable = _rolling_params(d)
    return min(resolve_fenceposts(surge, unavailable, replicas)[1], replicas)


# --- pod-template-hash and revisions -------------------------------------------------------------------


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """``controller.ComputeHash``: FNV-32a of the template (and the collision count), safely encoded.

    Go hashes a ``spew`` dump of the struct, which cannot be reproduced outside Go; canonical JSON of the
    semantically-pruned template keeps the properties that matter: deterministic, equal for equal templates,
    and different once ``status.collisionCount`` is bumped.
    """
    data = json.dumps(prune_empty(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode(str(_fnv32a(data)))


def _without_hash(template: Obj | None) -> Obj:
    t: Obj = json.loads(json.dumps(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """``EqualIgnoreHash``: templates equal once the pod-template-hash label is removed from both."""
    return semantic_equal(_without_hash(a), _without_hash(b))


def revision(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def find_new_rs(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """``FindNewReplicaSet``: the oldest ReplicaSet whose template equals the Deployment's."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rss, key=creation_key):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def _annotations(obj: Obj) -> dict[str, str]:
    md = obj.setdefault("metadata", {})
    if md.get("annotations") is None:
        md["annotations"] = {}
    ann: dict[str, str] = md["annotations"]
    return ann


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = _annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = (rs.get("metadata") or {}).get("annotations") or {}
    return bool(ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum))


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """``SetNewReplicaSetAnnotations``: copy the Deployment's annotations, move the revision forward.

    A ReplicaSet that already had a revision and gets a newer one is a rollback to it: its old revision
    joins ``deployment.kubernetes.io/revision-history``, as ``kubectl rollout history`` expects.
    """
    ann = _annotations(rs)
    changed = False
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in _SKIP_COPY or (key in ann and ann[key] == value):
            continue
        ann[key] = value
        changed = True
    had_revision = REVISION in ann
    old = revision(rs)
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if had_revision:
            history = ann.get(REVISION_HISTORY, "")
            if not history:
                ann[REVISION_HISTORY] = str(old)
            else:
                parts = history.split(",")
                total = len(history) + len(str(old)) + 1
                start = 0
                while total > MAX_REV_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], str(old)])
    if not exists:
        replicas = spec_replicas(d)
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)):
            changed = True
    return changed


# --- scaling -------------------------------------------------------------------------------------------


def sum_spec(rss: Iterable[Obj | None]) -> int:
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def sum_status(rss: Iterable[Obj | None], key: str) -> int:
    return sum(status_int(rs, key) for rs in rss if rs is not None)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """``FilterActiveReplicaSets``: those that want pods."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """``NewRSNewReplicas``: how far the new ReplicaSet may grow now."""
    replicas = spec_replicas(d)
    if not is_rolling(d):
        return replicas
    current = sum_spec(all_rss)
    max_total = replicas + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


@dataclass(frozen=True)
class Scale:
    """One ReplicaSet resize the controller should make (and record as a ``ScalingReplicaSet`` event)."""

    name: str
    old: int
    new: int
    # Part of a proportional resize (``scaleReplicaSet``): written even when only annotations change.
    proportional: bool = False

    @property
    def direction(self) -> str:
        return "up" if self.new > self.old else "down"


def plan_old_scale_down(d: Obj, old_rss: Sequence[Obj], new_rs: Obj | None) -> list[Scale]:
    """``reconcileOldReplicaSets``: shrink old ReplicaSets without dropping below the minimum available.

    First the old pods that are not available anyway (``cleanupUnhealthyReplicas``), then available ones
    only while more than ``replicas - maxUnavailable`` pods are available across all ReplicaSets
    (``scaleDownOldReplicaSetsForRollingUpdate``); both oldest ReplicaSet first.
    """
    old_active = active(old_rss)
    if sum_spec(old_active) == 0:
        return []
    sizes = {name_of(rs): spec_replicas(rs) for rs in old_active}
    new_size = spec_replicas(new_rs) if new_rs is not None else 0
    all_pods = sum(sizes.values()) + new_size
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = new_size - status_int(new_rs, "availableReplicas")
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    plan: list[Scale] = []
    ordered = sorted(old_active, key=creation_key)
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        size, available = sizes[name_of(rs)], status_int(rs, "availableReplicas")
        if size == 0 or size == available:
            continue
        down = min(max_scaled_down - cleaned, size - available)
        sizes[name_of(rs)] = size - down
        plan.append(Scale(name_of(rs), size, size - down))
        cleaned += down
    available_pods = sum_status([*old_active, new_rs], "availableReplicas")
    if available_pods > min_available:
        budget = available_pods - min_available
        done = 0
        for rs in ordered:
            if done >= budget:
                break
            size = sizes[name_of(rs)]
            if size == 0:
                continue
            down = min(size, budget - done)
            sizes[name_of(rs)] = size - down
            plan.append(Scale(name_of(rs), size, size - down))
            done += down
    return plan


def _by_size(rss: Sequence[Obj], newer_first: bool) -> list[Obj]:
    """``ReplicaSetsBySizeNewer``/``ReplicaSetsBySizeOlder``: largest first, ties by age."""
    by_age = sorted(rss, key=creation_key, reverse=newer_first)
    return sorted(by_age, key=spec_replicas, reverse=True)


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
    try:
        desired_n = int(desired) if desired is not None else None
    except ValueError:
        return False
    replicas = spec_replicas(d)
    return bool(
        spec_replicas(rs) == replicas
        and desired_n == replicas
        and status_int(rs, "availableReplicas") == replicas
    )


def _fraction(rs: Obj, d: Obj) -> int:
    """``getReplicaSetFraction``: the share of a scaling event this ReplicaSet takes."""
    replicas = spec_replicas(d)
    if replicas == 0:
        return -spec_replicas(rs)
    d_max = replicas + max_surge(d)
    annotated_text = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS)
    try:
        annotated = int(annotated_text) if annotated_text is not None else 0
    except ValueError:
        annotated = 0
    if annotated == 0:
        # No annotation (a hand-edited ReplicaSet): fall back to the Deployment's current size.
        annotated = status_int(d, "replicas")
        if annotated == 0:
            return 0
    return go_round(spec_replicas(rs) * d_max / annotated) - spec_replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """``FindActiveOrLatest``: the one active ReplicaSet, or the newest when none is active."""
    if new_rs is None and not old_rss:
        return None
    newest_old = sorted(old_rss, key=creation_key, reverse=True)
    act = active([*newest_old, new_rs])
    if not act:
        return new_rs if new_rs is not None else newest_old[0]
    return act[0] if len(act) == 1 else None


def plan_scale(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> list[Scale]:
    """``scale``: resize ReplicaSets on a scaling event (or while paused), proportionally during a rollout.

    Returns every ReplicaSet to write, including those whose size stays but whose desired/max annotations
    must follow the Deployment (a ``Scale`` with ``old == new``).
    """
    replicas = spec_replicas(d)
    only = find_active_or_latest(new_rs, old_rss)
    if only is not None:
        if spec_replicas(only) == replicas:
            return []
        return [Scale(name_of(only), spec_replicas(only), replicas)]
    if is_saturated(d, new_rs):
        return [Scale(name_of(rs), spec_replicas(rs), 0) for rs in active(old_rss)]
    if not is_rolling(d):
        return []
    all_active = active([*old_rss, new_rs])
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - sum_spec(all_active)
    # Equal sizes: scaling up grows the newer ReplicaSet first, scaling down shrinks the older first.
    ordered = _by_size(all_active, newer_first=to_add > 0)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        if to_add != 0:
            p = _proportion(rs, d, to_add, added)
            sizes[name_of(rs)] = spec_replicas(rs) + p
            added += p
        else:
            sizes[name_of(rs)] = spec_replicas(rs)
    plan: list[Scale] = []
    for i, rs in enumerate(ordered):
        if i == 0 and to_add != 0:
            # Leftovers of the rounding go to the largest ReplicaSet.
            sizes[name_of(rs)] = max(0, sizes[name_of(rs)] + to_add - added)
        plan.append(Scale(name_of(rs), spec_replicas(rs), sizes[name_of(rs)], proportional=True))
    return plan


def cleanup_candidates(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """``cleanupDeployment``: the oldest revisions beyond ``revisionHistoryLimit`` that hold no pods."""
    limit = revision_history_limit(d)
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not (rs.get("metadata") or {}).get("deletionTimestamp")]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    by_revision = sorted(alive, key=lambda rs: (revision(rs), creation_key(rs)))
    out = []
    for rs in by_revision[:diff]:
        generation = int((rs.get("metadata") or {}).get("generation") or 0)
        if (
            status_int(rs, "replicas") != 0
            or spec_replicas(rs) != 0
            or generation > status_int(rs, "observedGeneration")
        ):
            continue
        out.append(rs)
    return out


# --- status --------------------------------------------------------------------------------------------


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


def status_only(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None, now: datetime) -> Obj:
    """``syncDeploymentStatus`` (scaling and paused paths): counts and ``Available`` only."""
    return calculate_status(all_rss, new_rs, d, now)


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


def is_scaling_event(d: Obj, all_rss: Sequence[Obj | None]) -> bool:
    """``isScalingEvent``: an active ReplicaSet was sized for a different ``spec.replicas``."""
    for rs in active(all_rss):
        desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
        try:
            if desired is not None and int(desired) != spec_replicas(d):
                return True
        except ValueError:
            continue
    return False


def old_pods_running(
    new_rs: Obj | None, old_rss: Sequence[Obj], pods_by_rs_uid: dict[str, list[Obj]]
) -> bool:
    """``oldPodsRunning`` (Recreate): old pods exist, terminating or not, unless they have finished."""
    if sum_status(old_rss, "replicas") > 0:
        return True
    new_uid = ((new_rs or {}).get("metadata") or {}).get("uid")
    for uid, pods in pods_by_rs_uid.items():
        if new_uid is not None and uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False
