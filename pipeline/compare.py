"""How a live object and a declared one are compared and shown: normalized, Secret values redacted.

Pure functions over dicts. ``apply.diff`` (``invoke plan``) builds its :class:`ObjectDiff` list with them;
they drop what the server changes by itself (status, resourceVersion, managedFields, timestamps) and never
show a Secret's values, only which keys were added, changed or removed.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .base import Obj


@dataclass(frozen=True)
class ObjectDiff:
    kind: str
    namespace: str
    name: str
    # "create", "change", "unchanged", "delete" (pruned), "keep" (would prune, kept) or "unknown" (a
    # Secret whose variables are not set where the plan runs).
    action: str
    # A unified diff of the live object against the server's dry-run result (Secret values redacted).
    diff: str = ""
    # For Secrets: (key, "added" | "changed" | "unchanged" | "removed"); values are never shown.
    secret_keys: tuple[tuple[str, str], ...] = ()
    note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def normalized(obj: Mapping[str, Any] | None) -> Obj:
    """``obj`` without what the server changes on its own (status, versions, timestamps, managedFields)."""
    if not obj:
        return {}
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for name in _VOLATILE_META:
        meta.pop(name, None)
    annotations = meta.get("annotations") or {}
    # Written by the deployment controller on every rollout; not something an apply changes.
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def redacted(obj: Obj) -> Obj:
    """A Secret with its values replaced (and kubectl's last-applied copy of them dropped)."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for name in ("data", "stringData"):
        if isinstance(out.get(name), dict):
            out[name] = dict.fromkeys(out[name], "<redacted>")
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = "<redacted>"
    return out


def secret_key_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """Per key of a Secret: added, changed, unchanged or removed, comparing values without showing them."""
    old = dict((before or {}).get("data") or {})
    new = dict((after or {}).get("data") or {})
    changes: list[tuple[str, str]] = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            changes.append((k, "added"))
        elif k not in new:
            changes.append((k, "removed"))
        else:
            changes.append((k, "unchanged" if old[k] == new[k] else "changed"))
    return changes


def unified(before: Obj, after: Obj, name: str) -> str:
    """A unified diff of two (normalized, redacted) objects as YAML."""

    def lines(obj: Obj) -> list[str]:
        return (
            yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(keepends=True)
            if obj
            else []
        )

    return "".join(difflib.unified_diff(lines(before), lines(after), f"live/{name}", f"overlay/{name}"))
