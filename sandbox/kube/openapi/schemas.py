"""OpenAPI v3 component schemas of the built-in kinds, built from the client's models for ``kubectl explain``.

Each model becomes an ``io.k8s.api.<group><version>.<Kind>`` schema with its fields' types and
descriptions, references to the models it nests, and ``x-kubernetes-group-version-kind`` on the kinds.
Uses ``models.py`` and ``discovery.py``; ``documents.py`` puts the schemas into the documents.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..discovery import resources_of
from .models import DICT_TYPE, LIST_TYPE, client_models, model_for


@functools.cache
def component_schemas(group: str, version: str) -> dict[str, Any]:
    """Component schemas of the group-version's built-in kinds, for ``kubectl explain``."""
    out: dict[str, Any] = {}
    for r in resources_of(group, version):
        model = model_for(r)
        if model is None:
            continue
        _component(model.__name__, out)
        out[_schema_name(model.__name__)]["x-kubernetes-group-version-kind"] = [
            {"group": r.group, "version": r.version, "kind": r.kind}
        ]
    return out


_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int32"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytearray": {"type": "string", "format": "byte"},
}
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_MODEL_PREFIX = re.compile(r"^([A-Z][a-z]+)?V\d+((alpha|beta)\d+)?(?=[A-Z])")


def _schema_name(model_name: str) -> str:
    """``V1ContainerPort`` -> ``io.k8s.api.v1.ContainerPort``: kubectl explain shows the last part."""
    m = _MODEL_PREFIX.match(model_name)
    if m is None:
        return model_name
    return f"io.k8s.api.{m.group(0).lower()}.{model_name[m.end() :]}"


def _type_schema(model_type: str, out: dict[str, Any]) -> dict[str, Any]:
    m = LIST_TYPE.match(model_type)
    if m:
        return {"type": "array", "items": _type_schema(m.group(1), out)}
    m = DICT_TYPE.match(model_type)
    if m:
        return {"type": "object", "additionalProperties": _type_schema(m.group(1) or m.group(2), out)}
    if model_type in _SCALARS:
        return dict(_SCALARS[model_type])
    if model_type == "object":  # the client's type for IntOrString fields
        out.setdefault(
            _INT_OR_STRING,
            {
                "type": "string",
                "format": "int-or-string",
                "description": "IntOrString is a type that can hold an int32 or a string.",
            },
        )
        return {"allOf": [{"$ref": f"#/components/schemas/{_INT_OR_STRING}"}]}
    if getattr(client_models(), model_type, None) is None:
        return {"type": "object"}
    _component(model_type, out)
    return {"allOf": [{"$ref": f"#/components/schemas/{_schema_name(model_type)}"}]}


def _component(model_name: str, out: dict[str, Any]) -> None:
    name = _schema_name(model_name)
    if name in out:
        return
    model = getattr(client_models(), model_name)
    out[name] = {}
    fields = getattr(model, "model_fields", {})
    properties = {}
    for attr, json_name in model.attribute_map.items():
        prop = _type_schema(model.openapi_types[attr], out)
        description = getattr(fields.get(attr), "description", None)
        if description:
            prop["description"] = description
        properties[json_name] = prop
    doc = (model.__doc__ or "").strip().split("\n\n", 1)[0].strip()
    out[name] = {"type": "object", "description": " ".join(doc.split()), "properties": properties}
