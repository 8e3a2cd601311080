"""One cluster's object store: what etcd and the generic registry of kube-apiserver do, in memory.

Objects are plain dicts keyed by ``(gvr, namespace, name)``. The store keeps the metadata Kubernetes
maintains (``uid``, ``creationTimestamp``, a cluster-wide increasing ``resourceVersion``, ``generation``
bumped on changes outside ``metadata`` and ``status``, ``managedFields`` for Update operations), splits
status writes from spec writes for kinds with a ``status`` subresource, honours finalizers and owner
references on delete (garbage collection with background, foreground or orphan propagation), filters by
label and field selectors, fans every change out to subscribers (watches and controllers) and keeps a
bounded history so that a watch from a recent resourceVersion replays what it missed (an older one gets
410 Gone). State is written to ``<home>/kube/<cluster>/objects.json`` atomically, debounced, so that it
survives a restart of the daemon.

Neighbours: ``apiserver.py`` (admission: defaulting, validation, server-side apply through ``ssa.py``)
and the controllers (``controllers/``) both read and write through this interface; every method is
thread-safe, and subscriptions deliver into asyncio queues of the loop that subscribed.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import datetime as dt
import json
import logging
import os
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import ssa
from .discovery import GVR, info_for

log = logging.getLogger("sandbox.kube.store")

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "GVR",
    "INGRESSES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "PVCS",
    "REPLICASETS",
    "SECRETS",
    "SERVICES",
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Gone",
    "Invalid",
    "NotFound",
    "Store",
    "Subscription",
]

NAMESPACES: GVR = ("", "v1", "namespaces")
CONFIGMAPS: GVR = ("", "v1", "configmaps")
SECRETS: GVR = ("", "v1", "secrets")
SERVICES: GVR = ("", "v1", "services")
ENDPOINTS: GVR = ("", "v1", "endpoints")
PODS: GVR = ("", "v1", "pods")
EVENTS: GVR = ("", "v1", "events")
NODES: GVR = ("", "v1", "nodes")
PVCS: GVR = ("", "v1", "persistentvolumeclaims")
PVS: GVR = ("", "v1", "persistentvolumes")
DEPLOYMENTS: GVR = ("apps", "v1", "deployments")
REPLICASETS: GVR = ("apps", "v1", "replicasets")
INGRESSES: GVR = ("networking.k8s.io", "v1", "ingresses")
STORAGECLASSES: GVR = ("storage.k8s.io", "v1", "storageclasses")

# How many changes a watch may lag behind and still resume (kube-apiserver's watch cache holds ~100/type).
HISTORY = 4000
SAVE_DELAY_SECONDS = 0.3
# How soon a deleted namespace's content goes (the namespace controller is about as quick when it is idle).
NAMESPACE_CLEANUP_SECONDS = 0.5


# ---- errors: each becomes a Status object on the wire --------------------------------------------------


class ApiError(Exception):
    """A failure the API reports as a ``Status`` with ``code`` and ``reason``."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(ApiError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    """A resourceVersion older than the history (``reason: Expired``, as kube-apiserver says)."""

    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


def _details(gvr: GVR, name: str) -> dict[str, Any]:
    info = info_for(gvr)
    d: dict[str, Any] = {"name": name, "kind": info.plural}
    if info.group:
        d["group"] = info.group
    return d


def not_found(gvr: GVR, name: str) -> NotFound:
    return NotFound(f'{info_for(gvr).qualified} "{name}" not found', details=_details(gvr, name))


def already_exists(gvr: GVR, name: str) -> AlreadyExists:
    return AlreadyExists(f'{info_for(gvr).qualified} "{name}" already exists', details=_details(gvr, name))


def conflict(gvr: GVR, name: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {info_for(gvr).qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_details(gvr, name),
    )


def invalid(gvr: GVR, name: str, causes: list[tuple[str, str, str]]) -> Invalid:
    """``causes``: (reason like FieldValueRequired, field like spec.replicas, message)."""
    info = info_for(gvr)
    text = "; ".join(f"{field}: {message}" if field else message for _, field, message in causes)
    details = _details(gvr, name)
    details["kind"] = info.kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    return Invalid(f'{info.kind} "{name}" is invalid: {text}', details=details)


# ---- helpers --------------------------------------------------------------------------------------------


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_suffix(length: int = 5) -> str:
    """The random suffix of ``generateName`` (kube-apiserver's alphabet, without vowels)."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


_SELECTOR_OP = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)(?:\s*(==|=|!=)\s*(.*?)|\s+(in|notin)\s+(\(.*\))|)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


Matcher = Callable[[dict[str, Any]], bool]


def parse_label_selector(text: str | None) -> Matcher:
    """``a=b,c!=d,e in (x,y),f notin (z),g,!h`` as kube-apiserver parses ``labelSelector``."""
    if not text or not text.strip():
        return lambda _obj: True
    requirements: list[tuple[str, str, frozenset[str]]] = []  # (operator, key, values)
    for part in _split_top(text):
        m = _SELECTOR_OP.match(part)
        if m is None:
            raise BadRequest(f"unable to parse requirement: invalid label selector: {part!r}")
        neg, key = m.group(1), m.group(2)
        op, value = (m.group(3), m.group(4)) if m.group(3) else (m.group(5) or "", m.group(6) or "")
        if neg and op:
            raise BadRequest(f"unable to parse requirement: {part!r}")
        if op in ("in", "notin"):
            if not (value.startswith("(") and value.endswith(")")):
                raise BadRequest(f"unable to parse requirement: {part!r}: values must be in parentheses")
            values = frozenset(v.strip() for v in value[1:-1].split(",") if v.strip())
        else:
            values = frozenset([value])
        operator = "!exists" if neg else (op or "exists")
        requirements.append(("=" if operator == "==" else operator, key, values))

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        for operator, key, values in requirements:
            present = key in labels
            ok = {
                "exists": present,
                "!exists": not present,
                "=": present and labels[key] in values,
                "in": present and labels[key] in values,
                "!=": not present or labels[key] not in values,
                "notin": not present or labels[key] not in values,
            }[operator]
            if not ok:
                return False
        return True

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field (``status.phase``), "" when absent, as field selectors see it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None) -> Matcher:
    """``metadata.name=x,status.phase!=Running``: equality tests on dotted fields."""
    if not text or not text.strip():
        return lambda _obj: True
    tests: list[tuple[str, bool, str]] = []
    for part in _split_top(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        tests.append((m.group(1), m.group(2) == "!=", m.group(3).replace("\\,", ",")))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) != negate for path, negate, value in tests)

    return match


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _generation_relevant(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """The object compared for no-op detection: resourceVersion and managedFields' times aside."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    fields = meta.get("managedFields")
    if fields:
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in fields]
    out["metadata"] = meta
    return out


# ---- subscriptions --------------------------------------------------------------------------------------

Event = tuple[str, GVR, dict[str, Any]]


class Subscription:
    """Every change of the store after (or replayed from) a resourceVersion, in an asyncio queue.

    ``queue`` yields ``(event_type, gvr, obj)`` with event_type ADDED, MODIFIED or DELETED; ``obj`` is
    shared between subscribers and must not be mutated. ``close()`` stops delivery.
    """

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, gvr: GVR | None) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._store = store
        self._loop = loop
        self._gvr = gvr
        self._thread = threading.get_ident()
        self.closed = False

    def _deliver(self, event: Event) -> None:
        if self.closed or (self._gvr is not None and event[1] != self._gvr):
            return
        if threading.get_ident() == self._thread:
            self.queue.put_nowait(event)
            return
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.closed = True

    def close(self) -> None:
        self.closed = True
        self._store._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the store ------------------------------------------------------------------------------------------

Key = tuple[str, str]  # (namespace or "", name)
Objects = list[dict[str, Any]]
Dependents = list[tuple[GVR, Key, dict[str, Any]]]


class Store:
    """One cluster's objects. ``state_dir`` None keeps everything in memory (tests)."""

    def __init__(self, state_dir: Path | None = None, *, history: int = HISTORY) -> None:
        self._lock = threading.RLock()
        self._objects: dict[GVR, dict[Key, dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[tuple[int, Event]] = deque(maxlen=history)
        self._subs: list[Subscription] = []
        self._state_file = state_dir / "objects.json" if state_dir else None
        self._timer: threading.Timer | None = None
        self._cleanups: list[threading.Timer] = []
        self._closed = False
        self._dirty = False
        if self._state_file is not None:
            self._load()

    # -- reading --

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def get(self, gvr: GVR, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get(gvr, {}).get((namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        gvr: GVR,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[Objects, str]:
        """Matching objects sorted by namespace and name, and the list's resourceVersion."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects.get(gvr, {}).items())
                if (not namespace or ns == namespace) and labels(obj) and fields(obj)
            ]
            return items, str(self._rv)

    def kinds(self) -> builtins.list[GVR]:
        with self._lock:
            return [gvr for gvr, objs in self._objects.items() if objs]

    # -- writing --

    def create(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        *,
        manager: str,
        dry_run: bool = False,
        managed_fields: Objects | None = None,
    ) -> dict[str, Any]:
        """Store a new object; raises AlreadyExists. ``managed_fields`` replaces the computed ones (apply)."""
        info = info_for(gvr)
        obj = copy.deepcopy(obj)
        meta = _meta(obj)
        obj.setdefault("apiVersion", info.api_version)
        obj.setdefault("kind", info.kind)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + generate_suffix()
        name = meta.get("name")
        if not name:
            raise invalid(
                gvr,
                "",
                [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
            )
        if info.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        now = now_rfc3339()
        with self._lock:
            key = (meta.get("namespace", ""), name)
            if key in self._objects.get(gvr, {}):
                raise already_exists(gvr, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now
            meta.pop("deletionTimestamp", None)
            meta.pop("deletionGracePeriodSeconds", None)
            if info.has_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if managed_fields is not None:
                meta["managedFields"] = managed_fields
            else:
                meta.pop("managedFields", None)
                fields = ssa.update_managed_fields(gvr, None, obj, manager, now, subresource=None)
                if fields:
                    meta["managedFields"] = fields
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects.setdefault(gvr, {})[key] = obj
            self._emit("ADDED", gvr, obj)
            return copy.deepcopy(obj)

    def update(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
        managed_fields: Objects | None = None,
    ) -> dict[str, Any]:
        """Replace an object (or only ``.status`` when ``subresource == "status"``).

        Raises Conflict when ``metadata.resourceVersion`` is set and stale, NotFound when absent. The
        status of a kind with a status subresource is kept on main-resource writes, as kube-apiserver
        does; generation is bumped when anything outside metadata and status changed. An update that
        changes nothing returns the stored object without a new resourceVersion.
        """
        info = info_for(gvr)
        new = copy.deepcopy(obj)
        meta = _meta(new)
        name = meta.get("name", "")
        namespace = (meta.get("namespace") or "default") if info.namespaced else ""
        now = now_rfc3339()
        with self._lock:
            old = self._objects.get(gvr, {}).get((namespace, name))
            if old is None:
                raise not_found(gvr, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(gvr, name)
            old_meta = old["metadata"]
            if subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
                meta = new["metadata"]
            elif subresource is None:
                if "status" in info.subresources:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            else:
                raise BadRequest(f"unsupported subresource {subresource!r}")
            new.setdefault("apiVersion", old.get("apiVersion", info.api_version))
            new.setdefault("kind", old.get("kind", info.kind))
            # Fields only the server sets.
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            if namespace:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if info.has_generation:
                generation = int(old_meta.get("generation", 1))
                if _generation_relevant(new) != _generation_relevant(old):
                    generation += 1
                meta["generation"] = generation
            if managed_fields is not None:
                meta["managedFields"] = managed_fields
            else:
                meta["managedFields"] = copy.deepcopy(old_meta.get("managedFields") or [])
                fields = ssa.update_managed_fields(gvr, old, new, manager, now, subresource=subresource)
                if fields:
                    meta["managedFields"] = fields
                else:
                    meta.pop("managedFields", None)
            meta["resourceVersion"] = old_meta["resourceVersion"]
            if _without_volatile(new) == _without_volatile(old):
                return copy.deepcopy(old)
            if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
                # The last finalizer is gone: the deletion that waited for it completes now.
                if dry_run:
                    return new
                self._remove(gvr, (namespace, name), new)
                return copy.deepcopy(new)
            if dry_run:
                return new
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[gvr][(namespace, name)] = new
            self._emit("MODIFIED", gvr, new)
            return copy.deepcopy(new)

    def delete(
        self,
        gvr: GVR,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        dry_run: bool = False,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Delete an object; returns its last state (None if absent).

        An object with finalizers is only marked (``deletionTimestamp``) and goes when the last finalizer
        is removed. Dependents (objects whose ownerReferences name its uid) are deleted after it
        (Background), before it (Foreground) or released (Orphan). A Namespace turns Terminating and
        goes, with what it contains, about :data:`NAMESPACE_CLEANUP_SECONDS` later.
        """
        with self._lock:
            key = (namespace or "", name)
            old = self._objects.get(gvr, {}).get(key)
            if old is None:
                return None
            if uid and old["metadata"].get("uid") != uid:
                raise conflict(gvr, name)
            if resource_version and old["metadata"].get("resourceVersion") != resource_version:
                raise conflict(gvr, name)
            if dry_run:
                return copy.deepcopy(old)
            if gvr == NAMESPACES:
                return self._terminate_namespace(key, old)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return copy.deepcopy(old)
                marked = copy.deepcopy(old)
                marked["metadata"]["deletionTimestamp"] = now_rfc3339()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                self._rv += 1
                marked["metadata"]["resourceVersion"] = str(self._rv)
                self._objects[gvr][key] = marked
                self._emit("MODIFIED", gvr, marked)
                return copy.deepcopy(marked)
            owner_uid = old["metadata"].get("uid")
            if propagation == "Orphan":
                self._orphan(owner_uid)
                self._remove(gvr, key, old)
            elif propagation == "Foreground":
                self._delete_dependents(owner_uid, "Foreground")
                self._remove(gvr, key, old)
            else:
                self._remove(gvr, key, old)
                self._delete_dependents(owner_uid, "Background")
            return copy.deepcopy(old)

    def _terminate_namespace(self, key: Key, old: dict[str, Any]) -> dict[str, Any]:
        """Mark the namespace Terminating; its content and then itself go shortly after, as the namespace
        controller does (deletes of objects inside still succeed meanwhile; creates are refused)."""
        if old["metadata"].get("deletionTimestamp"):
            return copy.deepcopy(old)
        marked = copy.deepcopy(old)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked.setdefault("status", {})["phase"] = "Terminating"
        self._rv += 1
        marked["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[NAMESPACES][key] = marked
        self._emit("MODIFIED", NAMESPACES, marked)
        self._schedule_namespace_cleanup(key[1])
        return copy.deepcopy(marked)

    def _schedule_namespace_cleanup(self, name: str) -> None:
        timer = threading.Timer(NAMESPACE_CLEANUP_SECONDS, self._finish_namespace, args=(name,))
        timer.daemon = True
        self._cleanups.append(timer)
        timer.start()

    def _finish_namespace(self, name: str) -> None:
        with self._lock:
            if self._closed:
                return
            for other, objs in list(self._objects.items()):
                if other == NAMESPACES:
                    continue
                for okey in [k for k in objs if k[0] == name]:
                    self.delete(other, okey[0], okey[1], propagation="Background")
            current = self._objects.get(NAMESPACES, {}).get(("", name))
            if current is not None and current["metadata"].get("deletionTimestamp"):
                self._remove(NAMESPACES, ("", name), current)

    def terminating(self, namespace: str) -> bool:
        """True while a namespace is being deleted (kube-apiserver then refuses new objects in it)."""
        with self._lock:
            ns = self._objects.get(NAMESPACES, {}).get(("", namespace))
            return bool(ns and ns["metadata"].get("deletionTimestamp"))

    def _dependents(self, owner_uid: str | None) -> Dependents:
        if not owner_uid:
            return []
        out = []
        for gvr, objs in self._objects.items():
            for key, obj in objs.items():
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    out.append((gvr, key, obj))
        return out

    def _delete_dependents(self, owner_uid: str | None, propagation: str) -> None:
        for gvr, key, _ in self._dependents(owner_uid):
            self.delete(gvr, key[0] or None, key[1], propagation=propagation)

    def _orphan(self, owner_uid: str | None) -> None:
        for gvr, key, obj in self._dependents(owner_uid):
            changed = copy.deepcopy(obj)
            refs = [r for r in changed["metadata"]["ownerReferences"] if r.get("uid") != owner_uid]
            if refs:
                changed["metadata"]["ownerReferences"] = refs
            else:
                del changed["metadata"]["ownerReferences"]
            self._rv += 1
            changed["metadata"]["resourceVersion"] = str(self._rv)
            self._objects[gvr][key] = changed
            self._emit("MODIFIED", gvr, changed)

    def _remove(self, gvr: GVR, key: Key, last: dict[str, Any]) -> None:
        del self._objects[gvr][key]
        gone = copy.deepcopy(last)
        self._rv += 1
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._emit("DELETED", gvr, gone)

    # -- watching --

    def subscribe(self, gvr: GVR | None = None, since: str | None = None) -> Subscription:
        """Changes from now on (of one ``gvr`` if given), after replaying those newer than ``since``.

        Must be called from the event loop that will read the queue. Raises Gone when ``since`` is
        older than the history kept.
        """
        loop = asyncio.get_running_loop()
        sub = Subscription(self, loop, gvr)
        with self._lock:
            if since not in (None, "", "0"):
                try:
                    since_rv = int(str(since))
                except ValueError:
                    raise BadRequest(f"invalid resource version {since!r}") from None
                oldest = self._history[0][0] if self._history else self._rv + 1
                if since_rv < self._rv and since_rv < oldest - 1:
                    raise Gone(f"too old resource version: {since_rv} ({oldest - 1})")
                for rv, event in self._history:
                    if rv > since_rv:
                        sub._deliver(event)
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def _emit(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        shared = copy.deepcopy(obj)
        event = (event_type, gvr, shared)
        self._history.append((self._rv, event))
        for sub in list(self._subs):
            sub._deliver(event)
        self._schedule_save()

    # -- persistence --

    def _load(self) -> None:
        assert self._state_file is not None
        try:
            data = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return
        self._rv = int(data.get("resourceVersion", 0))
        for entry in data.get("objects", []):
            gvr = tuple(entry["gvr"])
            obj = entry["object"]
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            self._objects.setdefault((gvr[0], gvr[1], gvr[2]), {})[key] = obj
        for (_, name), ns in self._objects.get(NAMESPACES, {}).items():
            if ns["metadata"].get("deletionTimestamp"):
                self._schedule_namespace_cleanup(name)

    def _snapshot(self) -> str:
        with self._lock:
            objects = [
                {"gvr": list(gvr), "object": obj}
                for gvr, objs in sorted(self._objects.items())
                for _, obj in sorted(objs.items())
            ]
            return json.dumps({"resourceVersion": self._rv, "objects": objects}, separators=(",", ":"))

    def _schedule_save(self) -> None:
        if self._state_file is None:
            return
        self._dirty = True
        if self._timer is None:
            self._timer = threading.Timer(SAVE_DELAY_SECONDS, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        """Write the state now (atomically) if it changed since the last write."""
        if self._state_file is None:
            return
        with self._lock:
            self._timer = None
            if not self._dirty:
                return
            self._dirty = False
            text = self._snapshot()
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            tmp.replace(self._state_file)

    def close(self) -> None:
        """Cancel the pending write, write the state, and end every subscription."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for timer in self._cleanups:
                timer.cancel()
            self._cleanups = []
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.closed = True
        self.flush()

    def seed(self, items: Iterable[tuple[GVR, dict[str, Any]]]) -> None:
        """Create each object that does not exist yet (namespaces and nodes of a new cluster)."""
        for gvr, obj in items:
            meta = obj.get("metadata", {})
            if self.get(gvr, meta.get("namespace"), meta["name"]) is None:
                self.create(gvr, obj, manager="sandbox")
