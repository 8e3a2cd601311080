"""The other patch types: JSON merge patch (RFC 7386), strategic merge patch, and JSON patch (RFC 6902).

Strategic merge patch covers the directives kubectl sends (merge keys, ``$patch``, ``$setElementOrder``,
``$retainKeys``, ``$deleteFromPrimitiveList``), with the merge keys of ``schema.py``. Called by
``apiserver/``, which turns :class:`~.errors.PatchError` into a Status. Nothing here does I/O.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..discovery import GVR, ResourceInfo, info_for
from .errors import PatchError
from .paths import Ctx
from .schema import dict_type, list_type


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
