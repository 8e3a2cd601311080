"""The ReplicaSet controller: keeps ``spec.replicas`` pods per ReplicaSet and reports their state.

As kube-controller-manager's ``replicaset`` controller: pods are named ``<rs>-<5 random characters>``
(``generateName``), carry the template's labels and a controller ``ownerReference``; orphans matching the
selector are adopted and owned pods that stopped matching are released; scaling down deletes the pods that
matter least first (``ActivePodsWithRanks``: unscheduled, pending, not ready, most restarted, newest);
``status`` counts active pods (not terminating, not finished) as ``replicas``, those with every template
label as ``fullyLabeledReplicas``, Ready ones as ``readyReplicas`` and those Ready for ``minReadySeconds``
as ``availableReplicas``.

Neighbours: ``deployment.py`` sizes ReplicaSets; ``pods.py`` schedules and runs the pods created here and
kills the containers of the pods deleted here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store.kinds import PODS, REPLICASETS
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
    labels_of,
    meta,
    name_of,
    ns_of,
    parse_quantity,
    parse_time,
    random_suffix,
    seconds,
    selector_matches,
    uid_of,
    utcnow,
)
from .rollout import spec_replicas

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.replicaset")

COMPONENT = "replicaset-controller"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# kube-controller-manager creates at most this many pods of one ReplicaSet per sync.
BURST_REPLICAS = 500


# --- pure helpers --------------------------------------------------------------------------------------


def is_active(pod: Obj) -> bool:
    """``FilterActivePods``: not finished and not being deleted."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not deleting(pod)


def ready_condition(pod: Obj) -> Obj | None:
    return get_condition((pod.get("status") or {}).get("conditions"), "Ready")


def is_ready(pod: Obj) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """``IsPodAvailable``: Ready, and for longer than ``minReadySeconds``."""
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return False
    if min_ready_seconds == 0:
        return True
    since = parse_time(cond.get("lastTransitionTime"))
    return since is not None and since + seconds(min_ready_seconds) < now


def rs_status(rs: Obj, pods: Iterable[Obj], now: datetime, failure: Obj | None = None) -> Obj:
    """``calculateStatus`` of the ReplicaSet controller, in wire form (``replicas`` always written)."""
    template_labels = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels"
    ) or {}
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    active_pods = [p for p in pods if is_active(p)]
    fully = sum(1 for p in active_pods if all(labels_of(p).get(k) == v for k, v in template_labels.items()))
    ready = sum(1 for p in active_pods if is_ready(p))
    available = sum(1 for p in active_pods if is_available(p, min_ready, now))
    status: Obj = {"replicas": len(active_pods)}
    if fully:
        status["fullyLabeledReplicas"] = fully
    if ready:
        status["readyReplicas"] = ready
    if available:
        status["availableReplicas"] = available
    generation = int(meta(rs).get("generation") or 0)
    if generation:
        status["observedGeneration"] = generation
    conditions = [
        c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"
    ]
    if failure is not None:
        current = get_condition((rs.get("status") or {}).get("conditions"), "ReplicaFailure")
        if current is not None and current.get("reason") == failure.get("reason"):
            failure = current
        conditions.append(failure)
    if conditions:
        status["conditions"] = conditions
    return status


def _max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _epoch(value: str | None) -> float:
    t = parse_time(value)
    return t.timestamp() if t is not None else 0.0


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """``ActivePodsWithRanks.Less`` as a sort key: the pod that sorts first is deleted first."""
    status = pod.get("status") or {}
    ready = is_ready(pod)
    try:
        cost = int((meta(pod).get("annotations") or {}).get(DELETION_COST, "0"))
    except ValueError:
        cost = 0
    ready_since = _epoch((ready_condition(pod) or {}).get("lastTransitionTime")) if ready else 0.0
    created = meta(pod).get("creationTimestamp")
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        _PHASE_ORDER.get(str(status.get("phase")), 0),
        1 if ready else 0,
        cost,
        -ready_since,
        -_max_restarts(pod),
        0 if not created else 1,
        -_epoch(created),
    )


def pods_to_delete(pods: Sequence[Obj], count: int) -> list[Obj]:
    return sorted(pods, key=deletion_rank)[:count]


def qos_class(spec: Obj) -> str:
    """``GetPodQOS``: Guaranteed when every container's requests equal its cpu and memory limits."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        relevant = {k for k in (*limits, *requests) if k in ("cpu", "memory")}
        if relevant:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in limits or parse_quantity(requests.get(res, limits[res])) != parse_quantity(
                limits[res]
            ):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_from_template(rs: Obj) -> Obj:
    """The Pod a ReplicaSet creates (``GetPodFromTemplate``), with the status the API server gives it."""
    template = deepcopy((rs.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    name = name_of(rs)
    pod_meta: Obj = {
        "name": f"{name}-{random_suffix()}",
        "generateName": f"{name}-",
        "namespace": ns_of(rs),
        "labels": dict(tmeta.get("labels") or {}),
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    pod_meta["ownerReferences"] = [controller_ref(rs, "apps/v1", "ReplicaSet")]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }


# --- the controller ------------------------------------------------------------------------------------


class ReplicaSetController:
    """One level-triggered pass over every ReplicaSet: claim pods, create or delete, write status."""

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        clock: Callable[[], datetime] = utcnow,
        before_delete: Callable[[Obj], None] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        # pods.py's stop_pod: the pod counts as terminating before it leaves the API, so a Recreate
        # rollout never sees a gap in which neither the object nor its containers are accounted for.
        self.before_delete = before_delete

    def sync_all(self) -> None:
        rss, _ = self.store.list(REPLICASETS)
        pods_by_ns: dict[str, list[Obj]] = {}
        for rs in rss:
            ns = ns_of(rs)
            if ns not in pods_by_ns:
                pods_by_ns[ns] = self.store.list(PODS, ns)[0]
            try:
                self.sync(rs, pods_by_ns[ns])
            except Exception:
                log.exception("syncing replicaset %s/%s", ns, name_of(rs))

    def _claim(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """``PodControllerRefManager.ClaimPods``: owned pods that match, plus adopted orphans."""
        selector = (rs.get("spec") or {}).get("selector")
        owned: list[Obj] = []
        for pod in pods:
            ref = controller_of(pod)
            matches = selector_matches(selector, labels_of(pod))
            if ref is not None and ref.get("uid") == uid_of(rs):
                if matches or deleting(rs):
                    owned.append(pod)
                else:
                    self._set_owner(pod, None, rs)
            elif ref is None and matches and not deleting(rs) and not deleting(pod):
                adopted = self._set_owner(pod, rs, rs)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    def _set_owner(self, pod: Obj, owner: Obj | None, rs: Obj) -> Obj | None:
        changed = deepcopy(pod)
        refs = [r for r in meta(changed).get("ownerReferences") or [] if r.get("uid") != uid_of(rs)]
        if owner is not None:
            refs.append(controller_ref(owner, "apps/v1", "ReplicaSet"))
        if refs:
            changed["metadata"]["ownerReferences"] = refs
        else:
            changed["metadata"].pop("ownerReferences", None)
        try:
            return self.store.update(PODS, changed, manager=MANAGER)
        except Exception as e:  # Conflict or NotFound: the next pass sees the new state.
            log.debug("claiming pod %s: %s", name_of(pod), e)
            return None

    def sync(self, rs: Obj, ns_pods: list[Obj]) -> None:
        owned = self._claim(rs, ns_pods)
        active_pods = [p for p in owned if is_active(p)]
        failure: Obj | None = None
        if not deleting(rs):
            diff = len(active_pods) - spec_replicas(rs)
            if diff < 0:
                failure = self._create_pods(rs, min(-diff, BURST_REPLICAS))
            elif diff > 0:
                for pod in pods_to_delete(active_pods, diff):
                    if self.before_delete is not None:
                        self.before_delete(pod)
                    self.store.delete(PODS, ns_of(pod), name_of(pod))
                    self.events.record(
                        rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}", component=COMPONENT
                    )
                    owned = [p for p in owned if name_of(p) != name_of(pod)]
        # Count what exists after the changes, as the real controller does on its next (immediate) sync.
        current = [
            p
            for p in self.store.list(PODS, ns_of(rs))[0]
            if (controller_of(p) or {}).get("uid") == uid_of(rs)
        ]
        status = rs_status(rs, current, self.clock(), failure)
        if status != (rs.get("status") or {}):
            updated = deepcopy(rs)
            updated["status"] = status
            try:
                self.store.update(REPLICASETS, updated, manager=MANAGER, subresource="status")
            except Exception as e:  # stale: the next pass recomputes from fresh objects
                log.debug("status of replicaset %s: %s", name_of(rs), e)

    def _create_pods(self, rs: Obj, count: int) -> Obj | None:
        for _ in range(count):
            pod = pod_from_template(rs)
            try:
                created = self.store.create(PODS, pod, manager=MANAGER)
            except Exception as e:
                message = getattr(e, "message", str(e))
                self.events.record(
                    rs, "Warning", "FailedCreate", f"Error creating: {message}", component=COMPONENT
                )
                return {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": fmt_time(self.clock()),
                    "reason": "FailedCreate",
                    "message": message,
                }
            self.events.record(
                rs, "Normal", "SuccessfulCreate", f"Created pod: {name_of(created)}", component=COMPONENT
            )
        return None
