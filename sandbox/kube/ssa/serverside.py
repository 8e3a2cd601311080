"""Server-side apply: the applied configuration merged into the live object, with conflicts and pruning.

:func:`apply` merges (associative lists by key, sets by value, maps key by key), raises
:class:`~.errors.ApplyConflict` for fields another manager owns and this apply changes (unless forced,
when ownership moves), removes fields this manager applied before and omits now unless another manager
owns them, and writes the manager's ``operation: Apply`` entry. Called by ``apiserver/``; uses
``schema.py``, ``fieldsets.py``, ``managed.py`` and ``paths.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..discovery import GVR, ResourceInfo, info_for
from .errors import ApplyConflict, PatchError
from .fieldsets import compare, fieldset, tracked
from .managed import entries_of, new_entry, same_entry, sorted_entries, strip
from .paths import Ctx, FieldSet, Path, from_fields_v1
from .schema import KEY_DEFAULTS, dict_type, item_element, list_type


def _merge(info: ResourceInfo, live: Any, applied: Any, ctx: Ctx) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and dict_type(info, ctx) != "atomic":
        out = dict(live)
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
            elif key in live:
                out[key] = _merge(info, live[key], value, (*ctx, key))
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        ltype, keys = list_type(info, ctx)
        if ltype == "set":
            return list(live) + [v for v in applied if v not in live]
        if ltype == "assoc":
            return _merge_assoc(info, live, applied, keys, ctx)
    return copy.deepcopy(applied)


def _merge_assoc(
    info: ResourceInfo, live: list[Any], applied: list[Any], keys: tuple[str, ...], ctx: Ctx
) -> Any:
    """Items merged by key; live-only items keep their place, applied ones follow the applied order."""
    live_by = {item_element(i, keys, ctx): i for i in live}
    applied_els = [item_element(i, keys, ctx) for i in applied]
    if len(set(applied_els)) != len(applied_els):
        raise PatchError(f".{'.'.join(c for c in ctx if c != '[]')}: duplicate entries for key")
    pending = list(zip(applied_els, applied, strict=True))
    out: list[Any] = []

    def emit_until(el: str | None) -> None:
        while pending:
            a_el, a_item = pending.pop(0)
            base = live_by.get(a_el)
            out.append(
                _merge(info, base, a_item, (*ctx, "[]")) if base is not None else copy.deepcopy(a_item)
            )
            if a_el == el:
                return

    applied_set = set(applied_els)
    for item in live:
        el = item_element(item, keys, ctx)
        if el not in applied_set:
            out.append(item)
        elif any(p[0] == el for p in pending):
            emit_until(el)
    emit_until(None)
    return out


def _has_under(paths: FieldSet, prefix: Path) -> bool:
    n = len(prefix)
    return any(len(p) > n and p[:n] == prefix for p in paths)


def _remove_path(info: ResourceInfo, obj: Any, path: Path) -> bool:
    """Delete the node at ``path``; True if something was removed."""
    if not path:
        return False
    parent = obj
    for el in path[:-1]:
        parent = _child(parent, el)
        if parent is None:
            return False
    last = path[-1]
    kind, _, rest = last.partition(":")
    if kind == "f" and isinstance(parent, dict) and rest in parent:
        del parent[rest]
        return True
    if kind in ("k", "v") and isinstance(parent, list):
        for i, item in enumerate(parent):
            if _matches(item, last):
                del parent[i]
                return True
    return False


def _child(node: Any, el: str) -> Any:
    kind, _, rest = el.partition(":")
    if kind == "f":
        return node.get(rest) if isinstance(node, dict) else None
    if isinstance(node, list):
        for item in node:
            if _matches(item, el):
                return item
    return None


def _matches(item: Any, el: str) -> bool:
    kind, _, rest = el.partition(":")
    if kind == "v":
        return bool(json.loads(rest) == item)
    if kind == "k" and isinstance(item, dict):
        keys = json.loads(rest)
        return all(item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in keys.items())
    return False


def _prune(info: ResourceInfo, obj: dict[str, Any], remove: FieldSet, owned: FieldSet) -> None:
    for path in sorted(remove, key=len):
        if _has_under(owned, path) or path in owned:
            continue
        _remove_path(info, obj, path)
        # A structure this manager applied that is left empty and that nobody owns goes with it.
        parent = path[:-1]
        while parent and not _has_under(owned, parent) and parent not in owned:
            node = obj
            for el in parent:
                node = _child(node, el)
                if node is None:
                    break
            if node is None or (isinstance(node, dict | list) and len(node) > 0):
                break
            _remove_path(info, obj, parent)
            parent = parent[:-1]


def apply(
    gvr: GVR,
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    now: str,
    subresource: str | None = None,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: create), managedFields included.

    Raises :class:`ApplyConflict` when another manager owns a field this apply changes and ``force`` is
    false; with ``force`` the field changes owner. Fields this manager applied before and omits now are
    removed unless another manager owns them.
    """
    info = info_for(gvr)
    if not manager:
        raise PatchError("fieldManager is required for apply requests", invalid=False)
    api_version = str(applied.get("apiVersion") or info.api_version)
    applied_tracked = tracked(info, applied, subresource)
    applied_set = fieldset(info, applied_tracked)
    applied_set.discard(())
    base = copy.deepcopy(live) if live is not None else {}
    # Identity fields come from the URL and the live object; the rest of the applied config merges in.
    to_merge = dict(applied_tracked)
    merged = _merge(info, base, to_merge, ()) if base else copy.deepcopy(to_merge)
    merged["apiVersion"] = api_version if live is None else live.get("apiVersion", api_version)
    merged["kind"] = applied.get("kind") or info.kind
    meta = merged.setdefault("metadata", {})
    for key in ("name", "namespace", "generateName"):
        if key in (applied.get("metadata") or {}) and live is None:
            meta[key] = applied["metadata"][key]

    entries = entries_of(live)
    changed: FieldSet = set()
    removed: FieldSet = set()
    compare(
        info, tracked(info, live, subresource), tracked(info, merged, subresource), (), (), changed, removed
    )
    mine = next((e for e in entries if same_entry(e, manager, "Apply", api_version, subresource)), None)
    conflicts: list[tuple[dict[str, Any], Path]] = []
    for e in entries:
        if e is mine:
            continue
        if (e.get("subresource") or None) != (subresource or None):
            continue
        for path in sorted(from_fields_v1(e.get("fieldsV1") or {}) & changed):
            conflicts.append((e, path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    strip(entries, {p for _, p in conflicts}, keep=mine)

    previous = from_fields_v1(mine.get("fieldsV1") or {}) if mine else set()
    others: FieldSet = set()
    for e in entries:
        if e is not mine and (e.get("subresource") or None) == (subresource or None):
            others |= from_fields_v1(e.get("fieldsV1") or {})
    _prune(info, merged, previous - applied_set, others | applied_set)

    if mine is not None:
        entries.remove(mine)
    if applied_set or mine is not None:
        entry = new_entry(manager, "Apply", api_version, now, applied_set, subresource)
        if mine is not None and from_fields_v1(mine.get("fieldsV1") or {}) == applied_set:
            entry["time"] = mine.get("time", now)
        entries.append(entry)
    merged["metadata"]["managedFields"] = sorted_entries(entries)
    return merged
