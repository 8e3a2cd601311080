"""``managedFields`` entries, and the ownership an Update operation (create, PUT, non-apply PATCH) moves.

:func:`update_managed_fields` is what the store (``store/core.py``) calls on every write; the entry
helpers (:func:`entries_of`, :func:`same_entry`, :func:`new_entry`, :func:`sorted_entries`,
:func:`strip`) are shared with
server-side apply (``serverside.py``). Uses ``fieldsets.py`` to see what changed and ``paths.py`` for the
``fieldsV1`` form.
"""

from __future__ import annotations

import copy
from typing import Any

from ..discovery import GVR, info_for
from .fieldsets import compare, tracked, walk
from .paths import FieldSet, from_fields_v1, to_fields_v1


def entries_of(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    return copy.deepcopy(list(((obj or {}).get("metadata") or {}).get("managedFields") or []))


def same_entry(
    e: dict[str, Any], manager: str, operation: str, api_version: str, subresource: str | None
) -> bool:
    return (
        e.get("manager") == manager
        and e.get("operation") == operation
        and (operation == "Apply" or e.get("apiVersion") == api_version)
        and (e.get("subresource") or None) == (subresource or None)
    )


def new_entry(
    manager: str, operation: str, api_version: str, now: str, fields: FieldSet, subresource: str | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(fields),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def sorted_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kube-apiserver's order: Apply before Update, then by time, manager, apiVersion, subresource."""
    return sorted(
        entries,
        key=lambda e: (
            e.get("operation", ""),
            e.get("time", ""),
            e.get("manager", ""),
            e.get("apiVersion", ""),
            e.get("subresource", ""),
        ),
    )


def strip(entries: list[dict[str, Any]], paths: FieldSet, keep: dict[str, Any] | None = None) -> None:
    """Remove ``paths`` from every entry but ``keep``; entries left empty are dropped."""
    for e in list(entries):
        if e is keep:
            continue
        owned = from_fields_v1(e.get("fieldsV1") or {})
        if owned & paths:
            owned -= paths
            if owned:
                e["fieldsV1"] = to_fields_v1(owned)
            else:
                entries.remove(e)


def update_managed_fields(
    gvr: GVR,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    now: str,
    *,
    subresource: str | None,
) -> list[dict[str, Any]]:
    """The managedFields of ``new`` after an Update operation (create, PUT, non-apply PATCH) by ``manager``.

    The manager takes every field it added or changed (from whoever owned it); removed fields leave every
    entry. Without a manager (an internal write) ownership only shrinks.
    """
    info = info_for(gvr)
    entries = entries_of(old) if old is not None else []
    changed: FieldSet = set()
    removed: FieldSet = set()
    if old is None:
        walk(info, tracked(info, new, subresource), (), (), changed, True)
    else:
        compare(
            info, tracked(info, old, subresource), tracked(info, new, subresource), (), (), changed, removed
        )
    changed.discard(())
    if not changed and not removed:
        return entries
    api_version = str(new.get("apiVersion") or info.api_version)
    strip(entries, changed | removed)
    if manager and changed:
        mine = next((e for e in entries if same_entry(e, manager, "Update", api_version, subresource)), None)
        if mine is None:
            entries.append(new_entry(manager, "Update", api_version, now, changed, subresource))
        else:
            mine["fieldsV1"] = to_fields_v1(from_fields_v1(mine.get("fieldsV1") or {}) | changed)
            mine["time"] = now
    return sorted_entries(entries)
