"""Deletion semantics: finalizers, garbage collection of dependents, and namespace termination.

What kube-apiserver's registry and kube-controller-manager's garbage collector and namespace controller
do when an object is deleted: an object with finalizers is only marked (``deletionTimestamp``) until the
last one is removed (the update that removes it completes the deletion, in ``core.py``); objects whose
ownerReferences name the deleted one are deleted after it (Background), before it (Foreground) or
released (Orphan); a Namespace turns Terminating and goes, with what it contains, shortly after.

:class:`Deletion` sits between :class:`~.base.StoreBase` (the state and the commit primitives) and
:class:`~.core.Store`; callers hold the store's lock through the public methods.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from ..discovery import GVR
from .base import HISTORY, StoreBase
from .errors import conflict
from .kinds import NAMESPACES, Key
from .metadata import marked_for_deletion

# How soon a deleted namespace's content goes (the namespace controller is about as quick when it is idle).
NAMESPACE_CLEANUP_SECONDS = 0.5

Dependents = list[tuple[GVR, Key, dict[str, Any]]]


class Deletion(StoreBase):
    """``delete`` with finalizers, propagation and namespace termination, over the store's state."""

    def __init__(self, state_dir: Path | None = None, *, history: int = HISTORY) -> None:
        super().__init__(state_dir, history=history)
        self._cleanups: list[threading.Timer] = []
        self._closed = False
        # A namespace that was Terminating when the daemon stopped finishes going now.
        for (_, name), ns in self._objects.get(NAMESPACES, {}).items():
            if ns["metadata"].get("deletionTimestamp"):
                self._schedule_namespace_cleanup(name)

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
                marked = marked_for_deletion(old)
                self._commit("MODIFIED", gvr, key, marked)
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

    def terminating(self, namespace: str) -> bool:
        """True while a namespace is being deleted (kube-apiserver then refuses new objects in it)."""
        with self._lock:
            ns = self._objects.get(NAMESPACES, {}).get(("", namespace))
            return bool(ns and ns["metadata"].get("deletionTimestamp"))

    # -- namespaces --

    def _terminate_namespace(self, key: Key, old: dict[str, Any]) -> dict[str, Any]:
        """Mark the namespace Terminating; its content and then itself go shortly after, as the namespace
        controller does (deletes of objects inside still succeed meanwhile; creates are refused)."""
        if old["metadata"].get("deletionTimestamp"):
            return copy.deepcopy(old)
        marked = marked_for_deletion(old)
        marked.setdefault("status", {})["phase"] = "Terminating"
        self._commit("MODIFIED", NAMESPACES, key, marked)
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

    # -- owners and dependents --

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
            self._commit("MODIFIED", gvr, key, changed)
