"""Core v1 Events, written as client-go's event recorder writes them.

Every controller of this package (and the kubelet's :meth:`~sandbox.kube.kubelet.Kubelet.drain_events`,
relayed by ``pods.py``) reports through one :class:`EventRecorder`. As with client-go's
``EventCorrelator``, a repeat of the same event (same source, object, type, reason and message) does not
make a new object: the existing one gets ``count + 1`` and a new ``lastTimestamp``, which is what
``kubectl describe`` shows as ``(x5 over 2m)``. Events live for an hour (kube-apiserver's ``--event-ttl``).

Neighbours: the store (``store/``) holds the objects; the pipeline reads them in its rollout diagnosis.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store.kinds import EVENTS
from .objects import MANAGER, Obj, fmt_time, meta, parse_time, seconds, utcnow

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.events")

EVENT_TTL_SECONDS = 3600

# Which apiVersion an Event's involvedObject names for each kind the controllers report on.
_API_VERSIONS = {
    "Pod": "v1",
    "Node": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Ingress": "networking.k8s.io/v1",
}


def involved_object(obj: Mapping[str, Any], field_path: str = "") -> Obj:
    m = meta(obj)
    kind = str(obj.get("kind") or "")
    ref: Obj = {
        "kind": kind,
        "namespace": m.get("namespace"),
        "name": m.get("name"),
        "uid": m.get("uid"),
        "apiVersion": obj.get("apiVersion") or _API_VERSIONS.get(kind, "v1"),
        "resourceVersion": m.get("resourceVersion"),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


def _key(
    component: str, host: str, ref: Obj, namespace: str, type_: str, reason: str, message: str
) -> tuple[str, ...]:
    """What makes two events "the same" for client-go's correlator."""
    return (
        component,
        host,
        str(ref.get("kind", "")),
        namespace,
        str(ref.get("name", "")),
        str(ref.get("uid", "")),
        str(ref.get("fieldPath", "")),
        type_,
        reason,
        message,
    )


def _key_of(event: Obj) -> tuple[str, ...]:
    source = event.get("source") or {}
    return _key(
        str(source.get("component", "")),
        str(source.get("host", "")),
        event.get("involvedObject") or {},
        str(meta(event).get("namespace", "")),
        str(event.get("type", "")),
        str(event.get("reason", "")),
        str(event.get("message", "")),
    )


class EventRecorder:
    """Creates or bumps Event objects; thread-safe (controllers run in worker threads)."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        # Correlation key -> Event name, so a repeat finds its object without listing every event.
        self._names: dict[tuple[str, ...], str] = {}
        self._loaded: set[str] = set()

    def record(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
        when: datetime | None = None,
    ) -> None:
        """Report ``reason``/``message`` about ``obj`` (a Pod, ReplicaSet, ...) from ``component``."""
        ref = involved_object(obj, field_path)
        namespace = ref.get("namespace") or "default"
        key = _key(component, host, ref, namespace, type_, reason, message)
        t = when or self.clock()
        with self._lock:
            try:
                if self._bump(key, namespace, t):
                    return
                self._create(key, ref, namespace, type_, reason, message, component, host, t)
            except Exception:
                # An event that cannot be written must never stop a controller (client-go drops them too).
                log.exception("recording event %s %s for %s", reason, message, ref.get("name"))

    def _load(self, namespace: str) -> None:
        """Learn the events a namespace already has (recorded before the daemon restarted), once."""
        if namespace in self._loaded:
            return
        self._loaded.add(namespace)
        for event in self.store.list(EVENTS, namespace)[0]:
            self._names.setdefault(_key_of(event), str(meta(event).get("name")))

    def _bump(self, key: tuple[str, ...], namespace: str, t: datetime) -> bool:
        self._load(namespace)
        name = self._names.get(key)
        if name is None:
            return False
        existing = self.store.get(EVENTS, namespace, name)
        if existing is None:
            self._names.pop(key, None)
            return False
        existing["count"] = int(existing.get("count") or 1) + 1
        existing["lastTimestamp"] = fmt_time(t)
        self.store.update(EVENTS, existing, manager=MANAGER)
        return True

    def _create(
        self,
        key: tuple[str, ...],
        ref: Obj,
        namespace: str,
        type_: str,
        reason: str,
        message: str,
        component: str,
        host: str,
        t: datetime,
    ) -> None:
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        # client-go names events "<object>.<hex nanoseconds>"; the counter keeps names unique within a tick.
        stamp = int(t.timestamp() * 1e9) + len(self._names)
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{stamp:x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": fmt_time(t),
            "lastTimestamp": fmt_time(t),
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        created = self.store.create(EVENTS, event, manager=MANAGER)
        self._names[key] = str(created["metadata"]["name"])

    def expire(self) -> None:
        """Delete events whose last occurrence is older than the TTL."""
        cutoff = self.clock() - seconds(EVENT_TTL_SECONDS)
        events, _ = self.store.list(EVENTS)
        for event in events:
            last = parse_time(event.get("lastTimestamp") or meta(event).get("creationTimestamp"))
            if last is not None and last < cutoff:
                self.store.delete(EVENTS, meta(event).get("namespace"), str(meta(event).get("name")))
        with self._lock:
            if len(self._names) > 10000:
                self._names.clear()
                self._loaded.clear()
