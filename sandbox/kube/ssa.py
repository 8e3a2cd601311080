"""Server-side apply, managedFields, and the other patch types of the API server.

What kube-apiserver's field manager (structured-merge-diff) does, for the kinds the sandbox serves:

- **Field sets** in the wire format of ``managedFields[].fieldsV1``: ``f:<field>``, ``k:{"name":"app"}`` for
  an item of an associative list, ``v:"x"`` for an item of a set, ``.`` when a node is owned itself and
  has owned children. Which lists are associative (and by which keys), sets or atomic, and which objects
  are maps (every key a field of its own) or atomic, comes from :func:`list_type` and :func:`dict_type`:
  the list-map keys of the Kubernetes OpenAPI schema for built-in kinds (containers by ``name``, container
  ports by ``containerPort``+``protocol``, Service ports by ``port``+``protocol``, volumeMounts by
  ``mountPath``, ...), every list atomic for custom resources (stored without a schema, as a schemaless
  CRD).
- **Apply** (:func:`apply`): the applied configuration is merged into the live object; fields another
  manager owns and this apply changes are conflicts (:class:`ApplyConflict`, a 409 on the wire) unless
  forced, in which case ownership moves; fields this manager applied before and omits now are removed
  unless another manager owns them.
- **Update** (:func:`update_managed_fields`): a PUT or a non-apply PATCH gives its manager the fields it
  changed and takes them from the others, as an ``operation: Update`` entry.
- **Patches**: JSON merge patch (RFC 7386), strategic merge patch for the common directives kubectl sends
  (merge keys, ``$patch``, ``$setElementOrder``, ``$retainKeys``, ``$deleteFromPrimitiveList``), and JSON
  patch (RFC 6902).

The store (``store.py``) calls :func:`update_managed_fields` on every write; the API server
(``apiserver.py``) calls the rest and turns :class:`ApplyConflict` and :class:`PatchError` into Status
objects. Nothing here does I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from .discovery import GVR, ResourceInfo, info_for

Path = tuple[str, ...]  # fieldsV1 elements: "f:spec", 'k:{"name":"app"}', 'v:"x"'
FieldSet = set[Path]
Ctx = tuple[str, ...]  # field names from the root, "[]" for a list item


class PatchError(ValueError):
    """A patch or applied configuration that cannot be used (400 BadRequest, or 422 when ``invalid``)."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


class ApplyConflict(Exception):
    """Fields owned by other managers that an apply would change: ``(manager entry, path)`` pairs."""

    def __init__(self, conflicts: list[tuple[dict[str, Any], Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(self.message())

    def message(self) -> str:
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return (
                f"Apply failed with 1 conflict: conflict with {describe_manager(entry)}: {path_string(path)}"
            )
        by_manager: dict[str, list[Path]] = {}
        for entry, path in self.conflicts:
            by_manager.setdefault(describe_manager(entry), []).append(path)
        lines = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[manager])
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [
            {
                "type": "FieldManagerConflict",
                "message": f"conflict with {describe_manager(entry)}",
                "field": path_string(path),
            }
            for entry, path in self.conflicts
        ]


def describe_manager(entry: dict[str, Any]) -> str:
    """How kube-apiserver names a manager in conflict messages."""
    text = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        text += f" with subresource {json.dumps(entry['subresource'])}"
    if entry.get("operation") == "Update":
        text += f" using {entry.get('apiVersion', '')}"
        if entry.get("time"):
            text += f" at {entry['time']}"
    return text


# ---- schema: which lists merge by key, which objects are maps ----------------------------------------

_POD_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}
_NAME_KEYED = {
    "containers",
    "initContainers",
    "ephemeralContainers",
    "volumes",
    "imagePullSecrets",
    "env",
    "resourceClaims",
    "schedulingGates",
}
_MAP_FIELDS = {
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "parameters",
    "hard",
    "used",
    "matchLabels",
}
_ATOMIC_OBJECTS = {"labelSelector", "namespaceSelector", "podSelector"}
# Defaults that list keys take when the item omits them (the OpenAPI schema's "default").
_KEY_DEFAULTS = {"protocol": "TCP"}


def list_type(info: ResourceInfo, ctx: Ctx) -> tuple[str, tuple[str, ...]]:
    """("assoc", keys), ("set", ()) or ("atomic", ()) for the list at ``ctx``."""
    if not ctx:
        return ("atomic", ())
    name = ctx[-1]
    if ctx == ("metadata", "ownerReferences"):
        return ("assoc", ("uid",))
    if ctx == ("metadata", "finalizers"):
        return ("set", ())
    if ctx == ("metadata", "managedFields"):
        return ("atomic", ())
    if not info.builtin:
        return ("atomic", ())
    if name in _NAME_KEYED:
        return ("assoc", ("name",))
    if name == "volumeMounts":
        return ("assoc", ("mountPath",))
    if name == "volumeDevices":
        return ("assoc", ("devicePath",))
    if name == "ports":
        if len(ctx) >= 3 and ctx[-2] == "[]" and ctx[-3] in _POD_CONTAINER_LISTS:
            return ("assoc", ("containerPort", "protocol"))
        if info.kind == "Service" and ctx == ("spec", "ports"):
            return ("assoc", ("port", "protocol"))
        return ("atomic", ())
    if name == "hostAliases":
        return ("assoc", ("ip",))
    if name == "topologySpreadConstraints":
        return ("assoc", ("topologyKey", "whenUnsatisfiable"))
    if name == "conditions" and ctx[0] == "status":
        return ("assoc", ("type",))
    return ("atomic", ())


def dict_type(info: ResourceInfo, ctx: Ctx) -> str:
    """ "struct" (fields of a schema), "map" (every key its own field) or "atomic" for the object at ctx."""
    if not ctx:
        return "struct"
    name = ctx[-1]
    if name in ("labels", "annotations") and len(ctx) >= 2 and ctx[-2] == "metadata":
        return "map"
    if not info.builtin:
        return "struct" if ctx == ("metadata",) else "map"
    if name == "selector":
        if info.kind == "Service" and ctx == ("spec", "selector"):
            return "map"
        return "atomic"
    if name in _ATOMIC_OBJECTS:
        return "atomic"
    if name in _MAP_FIELDS:
        return "map"
    return "struct"


def _key_values(item: Any, keys: tuple[str, ...], ctx: Ctx) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise PatchError(f".{'.'.join(ctx)}: associative list with keys has an element that is not a map")
    out = {}
    for k in keys:
        if k in item and item[k] is not None:
            out[k] = item[k]
        elif k in _KEY_DEFAULTS:
            out[k] = _KEY_DEFAULTS[k]
        else:
            raise PatchError(
                f".{'.'.join(c for c in ctx if c != '[]')}: associative list with keys has an element that "
                f'omits key field "{k}" (and doesn\'t have default value)'
            )
    return out


def item_element(item: Any, keys: tuple[str, ...], ctx: Ctx) -> str:
    return "k:" + json.dumps(_key_values(item, keys, ctx), sort_keys=True, separators=(",", ":"))


def set_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def path_string(path: Path) -> str:
    """``.spec.template.spec.containers[name="app"].image``, as conflict messages print a path."""
    out = []
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        elif kind == "v":
            out.append("[=" + rest + "]")
        else:
            out.append("[" + rest + "]")
    return "".join(out)


# ---- field sets ------------------------------------------------------------------------------------------


def fieldset(info: ResourceInfo, value: Any, *, update: bool = False) -> FieldSet:
    """Every field path of ``value``: what an applier owns (``update``: what a creator owns)."""
    out: FieldSet = set()
    _walk(info, value, (), (), out, update)
    return out


def _walk(info: ResourceInfo, value: Any, ctx: Ctx, prefix: Path, out: FieldSet, update: bool) -> None:
    if isinstance(value, dict):
        kind = dict_type(info, ctx)
        if kind == "atomic":
            out.add(prefix)
            return
        if update and prefix and (kind == "map" or not value):
            out.add(prefix)
        for key, child in value.items():
            path = (*prefix, "f:" + key)
            _walk(info, child, (*ctx, key), path, out, update)
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
                _walk(info, item, (*ctx, "[]"), path, out, update)
                out.add(path)
    else:
        out.add(prefix)


def _compare(
    info: ResourceInfo, old: Any, new: Any, ctx: Ctx, prefix: Path, changed: FieldSet, removed: FieldSet
) -> None:
    """Paths added or modified from ``old`` to ``new`` (into ``changed``) and removed (``removed``)."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and dict_type(info, ctx) != "atomic":
        for key, child in new.items():
            path = (*prefix, "f:" + key)
            if key in old:
                _compare(info, old[key], child, (*ctx, key), path, changed, removed)
            else:
                sub: FieldSet = set()
                _walk(info, child, (*ctx, key), path, sub, True)
                changed.update(sub)
                changed.add(path)
        for key in old:
            if key not in new:
                path = (*prefix, "f:" + key)
                _walk(info, old[key], (*ctx, key), path, removed, True)
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
                    _compare(info, old_items[el], item, (*ctx, "[]"), path, changed, removed)
                else:
                    _walk(info, item, (*ctx, "[]"), path, changed, True)
                    changed.add(path)
            for el, item in old_items.items():
                if el not in new_items:
                    path = (*prefix, el)
                    _walk(info, item, (*ctx, "[]"), path, removed, True)
                    removed.add(path)
            return
    changed.add(prefix)
    if isinstance(new, dict | list):
        _walk(info, new, ctx, prefix, changed, True)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """A field set in the ``fieldsV1`` JSON form."""
    members = set(paths)
    root: dict[str, Any] = {}
    for path in members:
        node = root
        for el in path:
            node = node.setdefault(el, {})
    for path in members:
        if not path:
            continue
        node = root
        for el in path:
            node = node[el]
        if node:
            node["."] = {}

    def ordered(node: dict[str, Any]) -> dict[str, Any]:
        return {k: ordered(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}

    return ordered(root)


def from_fields_v1(fields: dict[str, Any]) -> FieldSet:
    out: FieldSet = set()

    def walk(node: dict[str, Any], prefix: Path) -> None:
        for key, child in node.items():
            if key == ".":
                out.add(prefix)
            elif not child:
                out.add((*prefix, key))
            else:
                walk(child, (*prefix, key))

    walk(fields, ())
    return out


# ---- managedFields entries --------------------------------------------------------------------------

_SERVER_META = (
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
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_META}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out


def _entries(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    return copy.deepcopy(list(((obj or {}).get("metadata") or {}).get("managedFields") or []))


def _same_entry(
    e: dict[str, Any], manager: str, operation: str, api_version: str, subresource: str | None
) -> bool:
    return (
        e.get("manager") == manager
        and e.get("operation") == operation
        and (operation == "Apply" or e.get("apiVersion") == api_version)
        and (e.get("subresource") or None) == (subresource or None)
    )


def _entry(
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


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _strip(entries: list[dict[str, Any]], paths: FieldSet, keep: dict[str, Any] | None = None) -> None:
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
    entries = _entries(old) if old is not None else []
    changed: FieldSet = set()
    removed: FieldSet = set()
    if old is None:
        _walk(info, tracked(info, new, subresource), (), (), changed, True)
    else:
        _compare(
            info, tracked(info, old, subresource), tracked(info, new, subresource), (), (), changed, removed
        )
    changed.discard(())
    if not changed and not removed:
        return entries
    api_version = str(new.get("apiVersion") or info.api_version)
    _strip(entries, changed | removed)
    if manager and changed:
        mine = next((e for e in entries if _same_entry(e, manager, "Update", api_version, subresource)), None)
        if mine is None:
            entries.append(_entry(manager, "Update", api_version, now, changed, subresource))
        else:
            mine["fieldsV1"] = to_fields_v1(from_fields_v1(mine.get("fieldsV1") or {}) | changed)
            mine["time"] = now
    return _sorted(entries)


# ---- apply ----------------------------------------------------------------------------------------------


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
        return all(item.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in keys.items())
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

    entries = _entries(live)
    changed: FieldSet = set()
    removed: FieldSet = set()
    _compare(
        info, tracked(info, live, subresource), tracked(info, merged, subresource), (), (), changed, removed
    )
    mine = next((e for e in entries if _same_entry(e, manager, "Apply", api_version, subresource)), None)
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
    _strip(entries, {p for _, p in conflicts}, keep=mine)

    previous = from_fields_v1(mine.get("fieldsV1") or {}) if mine else set()
    others: FieldSet = set()
    for e in entries:
        if e is not mine and (e.get("subresource") or None) == (subresource or None):
            others |= from_fields_v1(e.get("fieldsV1") or {})
    _prune(info, merged, previous - applied_set, others | applied_set)

    if mine is not None:
        entries.remove(mine)
    if applied_set or mine is not None:
        entry = _entry(manager, "Apply", api_version, now, applied_set, subresource)
        if mine is not None and from_fields_v1(mine.get("fieldsV1") or {}) == applied_set:
            entry["time"] = mine.get("time", now)
        entries.append(entry)
    merged["metadata"]["managedFields"] = _sorted(entries)
    return merged


# ---- other patch types ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_DELETE = object()


def strategic_merge_patch(gvr: GVR, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Kubernetes' strategic merge patch for the directives kubectl sends."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    out = _smp(info_for(gvr), target, patch, ())
    if out is _DELETE or not isinstance(out, dict):
        raise PatchError("a strategic merge patch cannot delete the whole object")
    return out


def _smp_key(info: ResourceInfo, ctx: Ctx) -> str | None:
    ltype, keys = list_type(info, ctx)
    return keys[0] if ltype == "assoc" else None


def _clean(value: Any) -> Any:
    """A patch value stored as is: directives removed."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _smp(info: ResourceInfo, target: Any, patch: dict[str, Any], ctx: Ctx) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _clean(patch)
    out = dict(target) if isinstance(target, dict) else {}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and dict_type(info, (*ctx, key)) != "atomic":
            merged = _smp(info, out.get(key), value, (*ctx, key))
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _smp_list(info, out.get(key), value, (*ctx, key))
        else:
            out[key] = _clean(value)
    if "$retainKeys" in patch:
        retain = set(patch["$retainKeys"] or [])
        out = {k: v for k, v in out.items() if k in retain}
    for field, order in orders.items():
        merge_key = _smp_key(info, (*ctx, field))
        if merge_key and isinstance(out.get(field), list):
            rank = {
                json.dumps(o.get(merge_key) if isinstance(o, dict) else o): i for i, o in enumerate(order)
            }
            out[field] = sorted(
                out[field],
                key=lambda item: rank.get(
                    json.dumps(item.get(merge_key) if isinstance(item, dict) else item), len(rank)
                ),
            )
    return out


def _smp_list(info: ResourceInfo, target: Any, patch: list[Any], ctx: Ctx) -> list[Any]:
    current = list(target) if isinstance(target, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_clean(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    ltype, _ = list_type(info, ctx)
    if ltype == "set":
        return current + [v for v in patch if v not in current]
    key = _smp_key(info, ctx)
    if key is None:
        return [_clean(p) for p in patch]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f".{'.'.join(ctx)}: a list merged by {key!r} needs objects")
        index = next(
            (i for i, c in enumerate(current) if isinstance(c, dict) and c.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del current[index]
            continue
        if index is None:
            current.append(_clean(item))
        else:
            current[index] = _smp(info, current[index], item, (*ctx, "[]"))
    return current


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise PatchError(f"jsonpatch: path /{'/'.join(parts)} not found", invalid=True)
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"jsonpatch: index {last} out of range", invalid=True)
    else:
        raise PatchError(f"jsonpatch: cannot add at /{'/'.join(parts)}", invalid=True)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("jsonpatch: cannot remove the whole document", invalid=True)
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    value = _resolve(parent, [last])
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return value


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid json patch operation {op!r}")
        kind = op["op"]
        parts = _pointer(str(op.get("path", "")))
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _resolve(doc, parts)
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(str(op.get("from", "")))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_resolve(doc, source))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _resolve(doc, parts) != op.get("value"):
                raise PatchError(f"jsonpatch: test failed at {op.get('path')}", invalid=True)
        else:
            raise PatchError(f"unknown json patch operation {kind!r}")
    return doc
