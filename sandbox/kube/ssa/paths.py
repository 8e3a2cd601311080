"""Field paths and field sets in the wire format of ``managedFields[].fieldsV1``.

A path is a tuple of elements: ``f:<field>``, ``k:{"name":"app"}`` for an item of an associative list,
``v:"x"`` for an item of a set. :func:`to_fields_v1` and :func:`from_fields_v1` convert a set of paths to
and from the nested ``fieldsV1`` form (``.`` marks a node owned itself that has owned children);
:func:`path_string` prints one as conflict messages do. The lowest module of ``ssa/``: every other one
uses these types; nothing here knows a schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

Path = tuple[str, ...]  # fieldsV1 elements: "f:spec", 'k:{"name":"app"}', 'v:"x"'
FieldSet = set[Path]
Ctx = tuple[str, ...]  # field names from the root, "[]" for a list item


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
