"""The OpenAPI v3 documents the API servers serve: ``/openapi/v3`` and one document per group-version.

Paths for every resource, each PATCH operation tagged with ``x-kubernetes-group-version-kind`` and
declaring the ``fieldValidation`` query parameter, plus the component schemas of ``schemas.py``. Built
once and cached (``service.py`` builds them off the loop at start); ``apiserver/`` serves them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from ..discovery import ResourceInfo, groups, resources_of
from .schemas import component_schemas


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _param(name: str, description: str, *, in_: str = "query", required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": in_,
        "description": description,
        "required": required,
        "schema": {"type": "boolean" if name == "force" else "string", "uniqueItems": True},
    }


_WRITE_PARAMS = [
    _param("dryRun", "When present, indicates that modifications should not be persisted."),
    _param(
        "fieldManager", "fieldManager is a name associated with the actor or entity that is making changes."
    ),
    _param(
        "fieldValidation",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown "
        "or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
    ),
]


def _operations(r: ResourceInfo, *, item: bool) -> dict[str, Any]:
    gvk = {"group": r.group, "version": r.version, "kind": r.kind}
    kind = r.kind

    def op(action: str, verb: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        scope = "Namespaced" if r.namespaced else ""
        return {
            "operationId": f"{verb}{scope}{kind}",
            "parameters": params,
            "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }

    if item:
        return {
            "get": op("get", "read", []),
            "put": op("put", "replace", _WRITE_PARAMS),
            "patch": op(
                "patch",
                "patch",
                [*_WRITE_PARAMS, _param("force", 'Force is going to "force" Apply requests.')],
            ),
            "delete": op("delete", "delete", [_param("dryRun", "dry run"), _param("propagationPolicy", "")]),
        }
    return {
        "get": op(
            "list", "list", [_param("labelSelector", ""), _param("fieldSelector", ""), _param("watch", "")]
        ),
        "post": op("post", "create", _WRITE_PARAMS),
    }


@functools.cache
def v3_document(group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version (paths only; see the module docstring)."""
    found = resources_of(group, version)
    if not found:
        return None
    paths: dict[str, Any] = {}
    prefix = "/" + _gv_path(group, version)
    for r in found:
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        name_param = _param("name", f"name of the {r.kind}", in_="path", required=True)
        ns_param = [_param("namespace", "object name and auth scope", in_="path", required=True)]
        common = ns_param if r.namespaced else []
        paths[base] = {"parameters": common, **_operations(r, item=False)}
        paths[f"{base}/{{name}}"] = {"parameters": [name_param, *common], **_operations(r, item=True)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (sandbox)", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": component_schemas(group, version)},
    }


@functools.cache
def v3_root() -> dict[str, Any]:
    """``GET /openapi/v3``: where each group-version's document is (the documents never change: cached)."""
    entries = [("", "v1")] + [(g, v) for g, vs in groups().items() for v in vs]
    paths = {}
    for group, version in entries:
        doc = json.dumps(v3_document(group, version), sort_keys=True)
        digest = hashlib.sha512(doc.encode()).hexdigest()[:32].upper()
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
