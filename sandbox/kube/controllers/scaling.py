"""The rolling-update planner: how far each ReplicaSet of a Deployment grows or shrinks now.

Mirrors ``NewRSNewReplicas``, ``reconcileOldReplicaSets``, the proportional ``scale`` on a scaling event,
``cleanupDeployment`` and Recreate's ``oldPodsRunning``. Pure: it returns :class:`Scale` plans that
``deployment.py`` applies through the store. Uses ``specs.py`` and ``revisions.py``; ``rolloutstatus.py``
sums ReplicaSets with its helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .objects import Obj, creation_key, go_round, name_of
from .revisions import DESIRED_REPLICAS, MAX_REPLICAS, revision
from .specs import (
    is_rolling,
    max_surge,
    max_unavailable,
    revision_history_limit,
    spec_replicas,
    status_int,
)


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
