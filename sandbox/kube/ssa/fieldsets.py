"""The field sets of objects: what a value owns, and what changed between two versions of an object.

:func:`fieldset` lists every field path of a value (what an applier owns), :func:`compare` the paths added
or modified and those removed from one version to the next (what an Update takes), :func:`tracked` the
part of an object whose fields are owned at all. Used by ``managed.py`` and ``serverside.py``; uses
``schema.py`` for list and map types and ``paths.py`` for the path types.
"""

from __future__ import annotations

from typing import Any

from ..discovery import ResourceInfo
from .paths import Ctx, FieldSet, Path
from .schema import dict_type, item_element, list_type, set_element


def fieldset(info: ResourceInfo, value: Any, *, update: bool = False) -> FieldSet:
    """Every field path of ``value``: what an applier owns (``update``: what a creator owns)."""
    out: FieldSet = set()
    walk(info, value, (), (), out, update)
    return out


def walk(info: ResourceInfo, value: Any, ctx: Ctx, prefix: Path, out: FieldSet, update: bool) -> None:
    if isinstance(value, dict):
        kind = dict_type(info, ctx)
        if kind == "atomic":
            out.add(prefix)
            return
        if update and prefix and (kind == "map" or not value):
            out.add(prefix)
        for key, child in value.items():
            path = (*prefix, "f:" + key)
            walk(info, child, (*ctx, key), path, out, update)
            if child is None or child == {} or kind == "map":
                out.add(path)
    elif isinstance(value, list):
        ltype, keys = list_type(info, ctx)
        if ltype == "atomic":
            out.add(prefix)
        elif ltype == "set":
            if update:
                out.add(prefix)
            out.update((*prefix, set_element(v)) for v in value)
        else:
            if update:
                out.add(prefix)
            for item in value:
                path = (*prefix, item_element(item, keys, ctx))
                walk(info, item, (*ctx, "[]"), path, out, update)
                out.add(path)
    else:
        out.add(prefix)


def compare(
    info: ResourceInfo, old: Any, new: Any, ctx: Ctx, prefix: Path, changed: FieldSet, removed: FieldSet
) -> None:
    """Paths added or modified from ``old`` to ``new`` (into ``changed``) and removed (``removed``)."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and dict_type(info, ctx) != "atomic":
        for key, child in new.items():
            path = (*prefix, "f:" + key)
            if key in old:
                compare(info, old[key], child, (*ctx, key), path, changed, removed)
            else:
                sub: FieldSet = set()
                walk(info, child, (*ctx, key), path, sub, True)
                changed.update(sub)
                changed.add(path)
        for key in old:
            if key not in new:
                path = (*prefix, "f:" + key)
                walk(info, old[key], (*ctx, key), path, removed, True)
                removed.add(path)
        return
    if isinstance(old, list) and isinstance(new, list):
        ltype, keys = list_type(info, ctx)
        if ltype == "set":
            olds = {set_element(v) for v in old}
            news = {set_element(v) for v in new}
            changed.update((*prefix, e) for e in news - olds)
            removed.update((*prefix, e) for e in olds - news)
            return
        if ltype == "assoc":
            old_items = {item_element(i, keys, ctx): i for i in old}
            new_items = {item_element(i, keys, ctx): i for i in new}
            for el, item in new_items.items():
                path = (*prefix, el)
                if el in old_items:
                    compare(info, old_items[el], item, (*ctx, "[]"), path, changed, removed)
                else:
                    walk(info, item, (*ctx, "[]"), path, changed, True)
                    changed.add(path)
            for el, item in old_items.items():
                if el not in new_items:
                    path = (*prefix, el)
                    walk(info, item, (*ctx, "[]"), path, removed, True)
                    removed.add(path)
            return
    changed.add(prefix)
    if isinstance(new, dict | list):
        walk(info, new, ctx, prefix, changed, True)


SERVER_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)


def tracked(info: ResourceInfo, obj: dict[str, Any] | None, subresource: str | None) -> dict[str, Any]:
    """The part of an object whose fields are owned: no identity fields, status only via /status."""
    if not obj:
        return {}
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if "status" in info.subresources:
        out.pop("status", None)
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_META}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out
