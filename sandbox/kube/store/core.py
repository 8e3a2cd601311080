"""The store proper: reads, creates and updates, with the metadata Kubernetes maintains.

:class:`Store` is what the API server and the controllers hold, one per cluster. It builds on
:class:`~.deletion.Deletion` (delete, finalizers, garbage collection, namespaces) and
:class:`~.base.StoreBase` (state, resourceVersion, watch fan-out, persistence); the metadata rules are
the pure functions of ``metadata.py``, selectors those of ``selectors.py``, and ``managedFields`` of
Update operations come from ``ssa/`` (:func:`~sandbox.kube.ssa.update_managed_fields`).
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable
from typing import Any

from .. import ssa
from ..discovery import GVR, info_for
from .deletion import Deletion
from .errors import already_exists, conflict, not_found
from .kinds import Objects
from .metadata import (
    carry_over,
    meta_of,
    new_object,
    now_rfc3339,
    set_creation_fields,
    with_status_rule,
    without_volatile,
)
from .selectors import parse_field_selector, parse_label_selector


class Store(Deletion):
    """One cluster's objects. ``state_dir`` None keeps everything in memory (tests)."""

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
        obj = new_object(gvr, info, obj)
        meta = obj["metadata"]
        name = meta["name"]
        now = now_rfc3339()
        with self._lock:
            key = (meta.get("namespace", ""), name)
            if key in self._objects.get(gvr, {}):
                raise already_exists(gvr, name)
            set_creation_fields(info, meta, now)
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
            self._commit("ADDED", gvr, key, obj)
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
        meta = meta_of(new)
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
            new = with_status_rule(info, old, new, subresource)
            meta = new["metadata"]
            carry_over(info, old, new, namespace)
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
            if without_volatile(new) == without_volatile(old):
                return copy.deepcopy(old)
            if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
                # The last finalizer is gone: the deletion that waited for it completes now.
                if dry_run:
                    return new
                self._remove(gvr, (namespace, name), new)
                return copy.deepcopy(new)
            if dry_run:
                return new
            self._commit("MODIFIED", gvr, (namespace, name), new)
            return copy.deepcopy(new)

    # -- lifecycle --

    def close(self) -> None:
        """Cancel the pending write, write the state, and end every subscription."""
        with self._lock:
            self._closed = True
            if self._state is not None:
                self._state.cancel()
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
