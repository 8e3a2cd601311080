"""Pod lifecycle: the scheduler and the API side of the kubelet, for the cluster's single node.

One pass (:meth:`PodController.sync_all`) over every Pod:

- **schedule** pods without ``spec.nodeName``: bind the ones that fit (``Scheduled`` event, condition
  ``PodScheduled=True``, WaitForFirstConsumer claims provisioned), leave the others Pending with
  ``PodScheduled=False``/``Unschedulable`` and a ``FailedScheduling`` event (``scheduling.py``);
- **run** the node's pods: build the :class:`~sandbox.kube.resolved.ResolvedPod` (``resolve.py``), call
  ``Kubelet.sync_pod`` (which never blocks), write the returned status through the status subresource only
  when it changed, and turn ``Kubelet.drain_events`` into Event objects (``events.py``);
- **stop** pods that are being deleted or are gone from the API: ``Kubelet.kill_pod`` with the grace period
  (``deletionGracePeriodSeconds``, else ``terminationGracePeriodSeconds``, default 30 s), in a thread per
  pod; a pod marked for deletion is removed from the API once its containers are gone. Until then the
  pod counts as terminating for its owner (:meth:`PodController.terminating`), which the Deployment
  controller's Recreate strategy waits for.

The sandbox's store removes a Pod at once on DELETE (there is no graceful deletion in the API), so a
deleted pod's containers are stopped after the object is gone rather than before; ``kubectl get pods``
therefore never shows ``Terminating``. A pod whose claim is still mounted by a pod being stopped waits
until that one's containers are gone (:func:`claims_of` says why). Everything else about the pod is as the
kubelet reports it.

Neighbours: ``replicaset.py`` creates and deletes the pods; ``services.py`` reads their IPs and readiness.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..store.kinds import CONFIGMAPS, NODES, PODS, PVCS, SECRETS, SERVICES
from .events import EventRecorder
from .objects import (
    MANAGER,
    Obj,
    controller_of,
    deepcopy,
    deleting,
    fmt_time,
    get_condition,
    meta,
    name_of,
    ns_of,
    parse_time,
    uid_of,
    utcnow,
)
from .resolve import resolve_pod
from .scheduling import fit
from .volumes import ClaimBinder, is_immediate

if TYPE_CHECKING:
    from ..kubelet import Kubelet
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.pods")

SCHEDULER = "default-scheduler"
KUBELET = "kubelet"
# kube-scheduler's per-pod back-off after a failed attempt: 1 s doubling up to 10 s. An unschedulable pod is
# retried after its back-off when something it may depend on changed, and at the latest after a minute.
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
RETRY_UNSCHEDULABLE_SECONDS = 60.0

Key = tuple[str, str]


@dataclass(frozen=True)
class _Namespace:
    """What a pass read once per namespace to resolve its pods."""

    configmaps: dict[str, Obj]
    secrets: dict[str, Obj]
    claims: dict[str, str]
    services: list[Obj]


def grace_seconds(pod: Obj) -> int:
    m = meta(pod)
    if m.get("deletionGracePeriodSeconds"):
        return int(m["deletionGracePeriodSeconds"])
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if value is None else int(value)


def claims_of(pod: Obj) -> set[str]:
    """The claims a pod mounts.

    A pod's containers start only once no pod being stopped mounts one of its claims. A real node would
    start them at once (ReadWriteOnce is per node), but here two PostgreSQL servers on one data folder in
    separate PID namespaces cannot see each other's lock, so the replacement of a deleted database pod
    waits for the old server to exit.
    """
    return {
        str(v["persistentVolumeClaim"].get("claimName"))
        for v in (pod.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    }


def merge_status(kubelet_status: Obj, stored: Obj) -> Obj:
    """The kubelet's status, keeping the scheduler's ``PodScheduled`` condition (and its transition time)."""
    status = deepcopy(kubelet_status)
    scheduled = get_condition(stored.get("conditions"), "PodScheduled")
    if scheduled is not None:
        status["conditions"] = [
            scheduled if c.get("type") == "PodScheduled" else c for c in status.get("conditions") or []
        ]
    return status


class PodController:
    """Schedules, runs and stops the pods of one node; thread-safe, one pass at a time."""

    def __init__(
        self,
        store: Store,
        kubelet: Kubelet,
        events: EventRecorder,
        binder: ClaimBinder,
        node_name: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.kubelet = kubelet
        self.events = events
        self.binder = binder
        self.node_name = node_name
        self.clock = clock
        self._lock = threading.Lock()
        # Pods handed to the kubelet (key -> last object seen), so one that vanishes is stopped.
        self._running: dict[Key, Obj] = {}
        # Pods whose containers are being stopped: key -> the pod as last seen.
        self._killing: dict[Key, Obj] = {}
        self._kill_threads: list[threading.Thread] = []
        # Pod uid -> (last scheduling attempt, attempts so far, changes seen at that attempt).
        self._last_attempt: dict[str, tuple[datetime, int, int]] = {}
        # Bumped (by the manager) on every change that may make an unschedulable pod fit.
        self.changes = 0

    # --- for the Deployment controller ---

    def terminating(self) -> dict[str, int]:
        """Owner uid -> pods whose containers are still stopping."""
        with self._lock:
            out: dict[str, int] = {}
            for pod in self._killing.values():
                owner = str((controller_of(pod) or {}).get("uid") or "")
                if owner:
                    out[owner] = out.get(owner, 0) + 1
            return out

    # --- the pass ---

    def sync_all(self) -> None:
        node = self.store.get(NODES, None, self.node_name) or {"metadata": {"name": self.node_name}}
        pods, _ = self.store.list(PODS)
        live = {(ns_of(p), name_of(p)) for p in pods}
        with self._lock:
            vanished = [(key, pod) for key, pod in self._running.items() if key not in live]
        for key, pod in vanished:
            self._kill(key, pod, remove=False)
        namespaces: dict[str, _Namespace] = {}
        uids = {uid_of(p) for p in pods}
        self._last_attempt = {k: v for k, v in self._last_attempt.items() if k in uids}
        for pod in pods:
            try:
                node_name = (pod.get("spec") or {}).get("nodeName")
                if deleting(pod):
                    if node_name == self.node_name or not node_name:
                        self._kill((ns_of(pod), name_of(pod)), pod, remove=True)
                    continue
                if not node_name:
                    self._schedule(pod, node, pods)
                elif node_name == self.node_name:
                    self._run(pod, node, namespaces)
            except Exception:
                log.exception("syncing pod %s/%s", ns_of(pod), name_of(pod))

    def _schedule(self, pod: Obj, node: Obj, pods: list[Obj]) -> None:
        uid = uid_of(pod)
        now = self.clock()
        changes = self.changes
        last, attempts, seen = self._last_attempt.get(uid, (None, 0, 0))
        if last is not None:
            elapsed = (now - last).total_seconds()
            backoff = min(BACKOFF_INITIAL_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)
            if elapsed < backoff or (changes == seen and elapsed < RETRY_UNSCHEDULABLE_SECONDS):
                return
        self._last_attempt[uid] = (now, attempts + 1, changes)
        ns = ns_of(pod)
        claims = {name_of(c): c for c in self.store.list(PVCS, ns)[0]}
        classes = self.binder.classes()
        immediate = {name: is_immediate(c, classes) for name, c in claims.items()}
        bound = [
            p
            for p in pods
            if (p.get("spec") or {}).get("nodeName") == self.node_name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        problem = fit(pod, node, bound, claims, immediate)
        if problem is not None:
            status = deepcopy(pod.get("status") or {})
            current = get_condition(status.get("conditions"), "PodScheduled")
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": (current or {}).get("lastTransitionTime") or fmt_time(now),
                "reason": "Unschedulable",
                "message": problem,
            }
            status["phase"] = "Pending"
            status["conditions"] = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            status["conditions"].append(cond)
            self._write_status(pod, status)
            self.events.record(pod, "Warning", "FailedScheduling", problem, component=SCHEDULER)
            return
        self.binder.bind_for_pod(pod)
        placed = deepcopy(pod)
        placed["spec"]["nodeName"] = self.node_name
        try:
            placed = self.store.update(PODS, placed, manager=MANAGER)
        except Exception as e:  # changed meanwhile: the next pass tries again
            log.debug("binding pod %s: %s", name_of(pod), e)
            return
        self._last_attempt.pop(uid, None)
        status = deepcopy(placed.get("status") or {})
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        status["conditions"].append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": fmt_time(now),
            }
        )
        self._write_status(placed, status)
        self.events.record(
            placed,
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns_of(pod)}/{name_of(pod)} to {self.node_name}",
            component=SCHEDULER,
        )

    def _run(self, pod: Obj, node: Obj, cache: dict[str, _Namespace]) -> None:
        ns = ns_of(pod)
        if ns not in cache:
            cache[ns] = _Namespace(
                configmaps={name_of(o): o for o in self.store.list(CONFIGMAPS, ns)[0]},
                secrets={name_of(o): o for o in self.store.list(SECRETS, ns)[0]},
                claims=self.binder.claim_volumes(ns),
                services=self.store.list(SERVICES, ns)[0],
            )
        objs = cache[ns]
        resolved = resolve_pod(
            pod,
            configmaps=objs.configmaps,
            secrets=objs.secrets,
            claim_volumes=objs.claims,
            services=objs.services,
            node=node,
        )
        key = (ns, name_of(pod))
        with self._lock:
            if key in self._killing:
                return  # being stopped: syncing it now would start its containers again
            if key not in self._running and self._claims_in_use(pod):
                return  # waits for the claim; see claims_of
            previous = self._running.get(key)
            if previous is not None and uid_of(previous) != uid_of(pod):
                # Same name, new pod (a StatefulSet-like recreate): the old one's events are done with.
                self._flush_events(previous)
            self._running[key] = pod
        status = merge_status(self.kubelet.sync_pod(pod, resolved), pod.get("status") or {})
        self._flush_events(pod)
        if status != (pod.get("status") or {}):
            self._write_status(pod, status)

    def _write_status(self, pod: Obj, status: Obj) -> None:
        if status == (pod.get("status") or {}):
            return
        changed = deepcopy(pod)
        changed["status"] = status
        try:
            self.store.update(PODS, changed, manager=MANAGER, subresource="status")
        except Exception as e:  # stale or gone: the next pass writes from a fresh copy
            log.debug("status of pod %s: %s", name_of(pod), e)

    def _flush_events(self, pod: Obj) -> None:
        for event in self.kubelet.drain_events(ns_of(pod), name_of(pod)):
            self.events.record(
                pod,
                event.get("type", "Normal"),
                event.get("reason", ""),
                event.get("message", ""),
                component=KUBELET,
                host=self.node_name,
                field_path=event.get("fieldPath", ""),
                when=parse_time(event.get("time")),
            )

    def _claims_in_use(self, pod: Obj) -> bool:
        """Whether a pod being stopped still mounts one of ``pod``'s claims (caller holds the lock)."""
        mine = claims_of(pod)
        return bool(mine) and any(
            ns_of(other) == ns_of(pod) and claims_of(other) & mine for other in self._killing.values()
        )

    # --- stopping ---

    def stop_pod(self, pod: Obj) -> None:
        """Start stopping a pod's containers now (its controller is about to delete the object)."""
        self._kill((ns_of(pod), name_of(pod)), pod, remove=False)

    def _kill(self, key: Key, pod: Obj, *, remove: bool) -> None:
        with self._lock:
            if key in self._killing:
                return
            self._killing[key] = pod
            self._running.pop(key, None)
        thread = threading.Thread(
            target=self._kill_worker, args=(key, pod, remove), daemon=True, name=f"kill-{key[0]}/{key[1]}"
        )
        with self._lock:
            self._kill_threads = [t for t in self._kill_threads if t.is_alive()] + [thread]
        thread.start()

    def _kill_worker(self, key: Key, pod: Obj, remove: bool) -> None:
        try:
            self.kubelet.kill_pod(key[0], key[1], grace_seconds(pod))
            self._flush_events(pod)
            if remove:
                current = self.store.get(PODS, key[0], key[1])
                if (
                    current is not None
                    and uid_of(current) == uid_of(pod)
                    and not meta(current).get("finalizers")
                ):
                    self.store.delete(PODS, key[0], key[1])
        except Exception:
            log.exception("stopping pod %s/%s", *key)
        finally:
            with self._lock:
                self._killing.pop(key, None)

    def wait_for_kills(self, timeout: float) -> None:
        """Wait (at most ``timeout`` in all) for the pods being stopped."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._kill_threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
