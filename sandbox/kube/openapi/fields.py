"""Known fields: which paths of an object its kind's schema (the client's models) does not declare.

``apiserver/`` rejects them (``fieldValidation=Strict``), warns of them, or drops them as decoding into
the typed object does. Uses ``models.py``; custom resources are stored as they come.
"""

from __future__ import annotations

import re
from typing import Any

from ..discovery import GVR, info_for
from .models import DICT_TYPE, LIST_TYPE, client_models, model_for


def _check(model_type: str, value: Any, path: str, out: list[str]) -> None:
    m = LIST_TYPE.match(model_type)
    if m:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(m.group(1), item, f"{path}[{i}]", out)
        return
    m = DICT_TYPE.match(model_type)
    if m:
        if isinstance(value, dict):
            inner = m.group(1) or m.group(2)
            for k, v in value.items():
                _check(inner, v, f"{path}.{k}", out)
        return
    model = (
        getattr(client_models(), model_type, None) if model_type.startswith(("V", "Core", "Events")) else None
    )
    if model is None or not isinstance(value, dict):
        return
    fields = {v: k for k, v in model.attribute_map.items()}
    for key, child in value.items():
        if key not in fields:
            out.append(f"{path}.{key}" if path else key)
            continue
        _check(model.openapi_types[fields[key]], child, f"{path}.{key}" if path else key, out)


def unknown_fields(gvr: GVR, obj: dict[str, Any]) -> list[str]:
    """Paths (``spec.template.spec.containers[0].foo``) of fields the kind's schema does not declare."""
    info = info_for(gvr)
    model = model_for(info)
    if model is None:
        return []
    out: list[str] = []
    _check(model.__name__, obj, "", out)
    return out


def drop_unknown(gvr: GVR, obj: dict[str, Any], paths: list[str]) -> None:
    """Remove the unknown fields (what decoding into the typed object does when validation is not Strict)."""
    for path in paths:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        node: Any = obj
        for part in parts[:-1]:
            if part.startswith("["):
                index = int(part[1:-1])
                node = node[index] if isinstance(node, list) and index < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(parts[-1], None)
