"""The fields of a Kubernetes object: where a live object and a declared one differ, and who owns each field.

Pure functions over dicts. :func:`differences` walks two (normalized) objects and returns the paths where
they differ, with both values; lists of named items (containers, env, volumes, ports with names) are
matched by name, as server-side apply does, and any other list is compared whole. :func:`owners` reads the
object's ``metadata.managedFields`` (the ``FieldsV1`` sets server-side apply keeps) to say which field
managers own a path. ``drift.py`` uses both to tell a hand edit from what a controller owns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A step into an object: a dict key, or the item of a named list, written ``{"name": ...}``.
Step = str | tuple[tuple[str, Any], ...]
FieldPath = tuple[Step, ...]

_MISSING: Any = object()


@dataclass(frozen=True)
class Difference:
    path: FieldPath
    # JSON values; ``None`` with ``live_set``/``declared_set`` False means the field is absent on that side.
    live: Any
    declared: Any
    live_set: bool = True
    declared_set: bool = True

    @property
    def where(self) -> str:
        return dotted(self.path)


def dotted(path: FieldPath) -> str:
    """``spec.template.spec.containers[name=backend].image``: how a path is shown to a person."""
    out = ""
    for step in path:
        if isinstance(step, str):
            out += ("." if out else "") + step
        else:
            out += "[" + ",".join(f"{k}={v}" for k, v in step) + "]"
    return out


def _item_key(item: Any) -> tuple[tuple[str, Any], ...] | None:
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return (("name", item["name"]),)
    return None


def _keyed(items: Sequence[Any]) -> dict[tuple[tuple[str, Any], ...], Any] | None:
    """``items`` by name when every item has a distinct one, else None (the list is compared whole)."""
    out: dict[tuple[tuple[str, Any], ...], Any] = {}
    for item in items:
        k = _item_key(item)
        if k is None or k in out:
            return None
        out[k] = item
    return out


def differences(live: Any, declared: Any, path: FieldPath = ()) -> list[Difference]:
    """Every path under which ``live`` and ``declared`` differ, deepest first where both are containers."""
    return list(_walk(live, declared, path))


def _walk(live: Any, declared: Any, path: FieldPath) -> Iterator[Difference]:
    if live == declared:
        return
    if isinstance(live, Mapping) and isinstance(declared, Mapping):
        for k in sorted(set(live) | set(declared), key=str):
            yield from _walk(live.get(k, _MISSING), declared.get(k, _MISSING), (*path, str(k)))
        return
    if isinstance(live, list) and isinstance(declared, list):
        old, new = _keyed(live), _keyed(declared)
        if old is not None and new is not None:
            for k in [*old, *(k for k in new if k not in old)]:
                yield from _walk(old.get(k, _MISSING), new.get(k, _MISSING), (*path, k))
            return
    yield Difference(
        path,
        None if live is _MISSING else live,
        None if declared is _MISSING else declared,
        live is not _MISSING,
        declared is not _MISSING,
    )


def _child(node: Mapping[str, Any], step: Step) -> Any:
    """The FieldsV1 node for ``step`` under ``node``, or None."""
    if isinstance(step, str):
        return node.get(f"f:{step}")
    wanted = dict(step)
    for name, child in node.items():
        if not name.startswith("k:"):
            continue
        try:
            found = json.loads(name[2:])
        except ValueError:
            continue
        if isinstance(found, dict) and all(found.get(k) == v for k, v in wanted.items()):
            return child
    return None


def owns(fields: Mapping[str, Any], path: FieldPath) -> bool:
    """Whether a FieldsV1 set holds ``path``, the path under one of its atomic fields, or a field below it."""
    node: Any = fields
    for step in path:
        if not isinstance(node, Mapping):
            return False
        if not node or set(node) == {"."}:
            return True  # an atomic field (a whole list or map) that contains the path
        node = _child(node, step)
        if node is None:
            return False
    return isinstance(node, Mapping)


@dataclass(frozen=True)
class Owner:
    manager: str
    operation: str  # Apply or Update
    subresource: str = ""

    def __str__(self) -> str:
        return self.manager + (f" (/{self.subresource})" if self.subresource else "")


def owners(obj: Mapping[str, Any] | None, path: FieldPath) -> list[Owner]:
    """The field managers of ``obj`` that own ``path``, as its ``managedFields`` record them."""
    found: list[Owner] = []
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        fields = entry.get("fieldsV1")
        if isinstance(fields, Mapping) and owns(fields, path):
            owner = Owner(
                str(entry.get("manager", "")),
                str(entry.get("operation", "")),
                str(entry.get("subresource", "")),
            )
            if owner not in found:
                found.append(owner)
    return found
