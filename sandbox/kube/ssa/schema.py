"""Which lists merge by key, which are sets or atomic, and which objects are maps: the part of the
Kubernetes OpenAPI schema that server-side apply and strategic merge patch need, for built-in kinds.

Built-in kinds follow the list-map keys of the OpenAPI schema (containers by ``name``, container ports by
``containerPort``+``protocol``, Service ports by ``port``+``protocol``, volumeMounts by ``mountPath``, ...);
custom resources, stored without a schema, have every list atomic, as a schemaless CRD. Also the
``fieldsV1`` element of a list item (:func:`item_element`, :func:`set_element`). Used by ``fieldsets.py``,
``serverside.py`` and ``patches.py``.
"""

from __future__ import annotations

import json
from typing import Any

from ..discovery import ResourceInfo
from .errors import PatchError
from .paths import Ctx

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
KEY_DEFAULTS = {"protocol": "TCP"}


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
        elif k in KEY_DEFAULTS:
            out[k] = KEY_DEFAULTS[k]
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
