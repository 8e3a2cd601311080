"""The schema pass: each rendered object against the Kubernetes OpenAPI schemas, offline and strict.

The schemas are those bundled by the ``kubernetes-validate`` package, the only module of the pipeline that
imports it, and only when a check runs (it loads jsonschema and hundreds of schema files, which
``invoke --list`` must not pay for). Unknown fields and wrong types are errors; a kind it has no schema for
is a ``no-schema`` warning when it is a CRD, an error when it claims a built-in API group (a removed or
misspelled apiVersion). The package's ``__init__`` calls :func:`check_version` once and
:func:`check_schema` per object; :mod:`.index` names the object.
"""

from __future__ import annotations

from ..base import Obj
from ..errors import ConfigError
from .findings import Finding
from .index import resource_of


def _builtin_group(group: str) -> bool:
    """API groups served by Kubernetes itself (a missing schema there means a removed or misspelled API)."""
    return group in ("", "apps", "batch", "autoscaling", "policy", "extensions") or group.endswith(".k8s.io")


def check_schema(target: str, obj: Obj, kubernetes_version: str) -> Finding | None:
    """Validate one object against the bundled OpenAPI schema of ``kubernetes_version`` (strict)."""
    import kubernetes_validate  # Heavy (jsonschema, 600 schema files): loaded only when validating.

    resource = resource_of(obj)
    if not obj.get("apiVersion") or not obj.get("kind"):
        return Finding(
            target, resource.ref, "schema", f"{resource.ref}: apiVersion or kind is missing. Add both"
        )
    try:
        kubernetes_validate.validate(dict(obj), kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(top level)"
        return Finding(
            target,
            resource.ref,
            "schema",
            f"{resource.ref}: {path}: {e.message} (Kubernetes {e.version} schema). Fix the field",
        )
    except kubernetes_validate.SchemaNotFoundError:
        api_version = obj.get("apiVersion")
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
