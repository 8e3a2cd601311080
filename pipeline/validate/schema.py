"""The schema pass: each rendered object against its OpenAPI schema, offline and strict.

Built-in kinds are checked against the Kubernetes schemas bundled by the ``kubernetes-validate`` package,
the only module of the pipeline that imports it. GKE's own kinds (``ManagedCertificate``,
``BackendConfig``, ``FrontendConfig``) have no schema there; theirs ship with the pipeline in ``crds/``,
one JSON file per kind holding the structural schema a CRD would carry (``openAPIV3Schema``), written from
GKE's documentation of each API, and are checked with ``jsonschema``. Both libraries load hundreds of files
or modules, so they are imported only when a check runs (``invoke --list`` must not pay for them).

Unknown fields and wrong types are errors in both, as the API server's strict field validation makes them;
any other kind is a ``no-schema`` warning when it is a CRD, an error when it claims a built-in API group
(a removed or misspelled apiVersion). The package's ``__init__`` calls :func:`check_version` once and
:func:`check_schema` per object; :mod:`.index` names the object.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from typing import Any

from ..base import Obj
from ..errors import ConfigError
from .findings import Finding
from .index import Resource, resource_of

# The directory of this package that holds the schemas of GKE's kinds (package data, see pyproject).
CRD_SCHEMAS = "crds"


def _builtin_group(group: str) -> bool:
    """API groups served by Kubernetes itself (a missing schema there means a removed or misspelled API)."""
    return group in ("", "apps", "batch", "autoscaling", "policy", "extensions") or group.endswith(".k8s.io")


def check_schema(target: str, obj: Obj, kubernetes_version: str) -> Finding | None:
    """Validate one object against its schema: one bundled here for GKE's kinds, else Kubernetes' (strict)."""
    resource = resource_of(obj)
    if not obj.get("apiVersion") or not obj.get("kind"):
        return Finding(
            target, resource.ref, "schema", f"{resource.ref}: apiVersion or kind is missing. Add both"
        )
    schema = bundled_schemas().get((str(obj["apiVersion"]), resource.kind))
    if schema is not None:
        return _check_bundled(target, resource, schema)
    return _check_builtin(target, resource, kubernetes_version)


def _check_bundled(target: str, resource: Resource, schema: Obj) -> Finding | None:
    import jsonschema  # Loaded only when an object of a bundled kind is checked.

    # OpenAPI v3.0 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*), which draft 4 ignores.
    errors = jsonschema.Draft4Validator(schema).iter_errors(resource.body)
    # A misspelt required field is both unknown and missing: name the unknown one, it says what to fix.
    relevance = jsonschema.exceptions.by_relevance(strong=frozenset({"additionalProperties"}))
    error = jsonschema.exceptions.best_match(errors, key=relevance)
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return Finding(
        target,
        resource.ref,
        "schema",
        f"{resource.ref}: {path}: {error.message} ({resource.body['apiVersion']} {resource.kind} schema "
        "shipped with the pipeline). Fix the field",
    )


def _check_builtin(target: str, resource: Resource, kubernetes_version: str) -> Finding | None:
    import kubernetes_validate  # Heavy (jsonschema, 600 schema files): loaded only when validating.

    try:
        kubernetes_validate.validate(dict(resource.body), kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(top level)"
        return Finding(
            target,
            resource.ref,
            "schema",
            f"{resource.ref}: {path}: {e.message} (Kubernetes {e.version} schema). Fix the field",
        )
    except kubernetes_validate.SchemaNotFoundError:
        api_version = resource.body.get("apiVersion")
        if _builtin_group(resource.group):
            return Finding(
                target,
                resource.ref,
                "schema",
                f"{resource.ref}: Kubernetes {kubernetes_version} serves no {resource.kind} in {api_version} "
                f"(removed or misspelled). Use the current apiVersion (`kubectl explain {resource.kind}`)",
            )
        return Finding(
            target,
            resource.ref,
            "no-schema",
            f"{resource.ref}: no schema for {api_version} {resource.kind} (a CRD), not checked",
            "warning",
        )
    return None


@functools.cache
def bundled_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> the strict schema of each kind whose schema ships in ``crds/``."""
    schemas: dict[tuple[str, str], Obj] = {}
    directory = importlib.resources.files(__name__.rpartition(".")[0]).joinpath(CRD_SCHEMAS)
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            schemas[(document["apiVersion"], document["kind"])] = strict(document["openAPIV3Schema"])
    return schemas


def strict(schema: Mapping[str, Any]) -> Obj:
    """A copy of a structural schema in which every object with declared properties refuses other fields.

    A CRD's schema alone prunes unknown fields silently; kubectl's default ``--validate=strict`` rejects
    them, and so do we. Objects that say otherwise (``additionalProperties``,
    ``x-kubernetes-preserve-unknown-fields``) and objects without properties (``metadata``) stay open.
    """
    copy: Obj = {key: _strict_value(key, value) for key, value in schema.items()}
    open_by_choice = "additionalProperties" in copy or copy.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in copy and not open_by_choice:
        copy["additionalProperties"] = False
    return copy


def _strict_value(key: str, value: Any) -> Any:
    if key == "properties" and isinstance(value, Mapping):
        return {name: strict(sub) for name, sub in value.items()}
    if key in ("items", "additionalProperties") and isinstance(value, Mapping):
        return strict(value)
    if key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
        return [strict(sub) for sub in value]
    return value


def check_version(kubernetes_version: str) -> None:
    """Raise ConfigError unless ``kubernetes-validate`` bundles schemas for ``kubernetes_version``."""
    import kubernetes_validate.utils

    known = kubernetes_validate.utils.all_versions()
    minor = kubernetes_validate.utils.major_minor(kubernetes_version.removeprefix("v"))
    if minor not in {kubernetes_validate.utils.major_minor(v) for v in known}:
        raise ConfigError(
            f"validating against Kubernetes {kubernetes_version}: no bundled schemas for it",
            f"Use one of {known[0]}..{known[-1]} (kubernetes-validate {kubernetes_validate.__version__})",
        )
