"""Admission: what every write goes through before it reaches the store.

In order: the object's identity against its URL (:func:`check_identity`), unknown fields as
``fieldValidation`` says (:func:`field_validation`: Strict refuses, Warn drops and warns, Ignore drops),
then :func:`admit`: the namespace must exist and not be terminating, initial status and defaults
(``openapi/``), Secret ``stringData`` folded into ``data``, the default StorageClass for new PVCs,
validation, and for Services the allocation of a clusterIP in :data:`SERVICE_CIDR` and of nodePorts in
:data:`NODE_PORTS`, refusing ones already taken as kube-apiserver does.

Neighbours: ``writes.py`` calls it for create, update, patch and apply; it reads the store (``store/``)
for namespaces, StorageClasses and the Services already allocated.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from typing import Any

from .. import discovery, openapi
from ..store import NAMESPACES, SERVICES, STORAGECLASSES, BadRequest, Forbidden, Store, invalid, not_found
from .target import Target

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
NODE_PORTS = range(30000, 32768)

Cause = tuple[str, str, str]  # reason, field, message


def check_identity(t: Target, obj: Any, *, require_name: bool) -> dict[str, Any]:
    """``obj`` with the apiVersion, kind, namespace and name of its URL; a 400 when they disagree."""
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version and api_version != t.info.api_version:
        raise BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({t.info.api_version})"
        )
    if kind and kind != t.info.kind:
        raise BadRequest(f"the kind in the data ({kind}) does not match the expected kind ({t.info.kind})")
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    if t.namespace is not None:
        if meta.get("namespace") and meta["namespace"] != t.namespace:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = t.namespace
    if t.name is not None:
        if meta.get("name") and meta["name"] != t.name:
            raise BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})"
            )
        meta["name"] = t.name
    elif require_name and not meta.get("name") and not meta.get("generateName"):
        raise invalid(
            t.info.gvr,
            "",
            [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
        )
    obj["apiVersion"], obj["kind"] = t.info.api_version, t.info.kind
    return obj


def field_validation(mode: str, t: Target, obj: dict[str, Any]) -> list[str]:
    """Unknown fields under ``fieldValidation=mode``: dropped from ``obj``; the warnings to send."""
    if mode not in ("Ignore", "Warn", "Strict"):
        raise BadRequest(f'fieldValidation: Invalid value: "{mode}": must be one of Ignore, Warn or Strict')
    unknown = openapi.unknown_fields(t.info.gvr, obj)
    if not unknown:
        return []
    if mode == "Strict":
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise BadRequest(
            f'{t.info.kind} in version "{t.info.version}" cannot be handled as a {t.info.kind}: '
            f"strict decoding error: {fields}"
        )
    openapi.drop_unknown(t.info.gvr, obj, unknown)
    return [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []


def _check_namespace(store: Store, info: discovery.ResourceInfo, meta: dict[str, Any]) -> None:
    namespace = meta.get("namespace")
    if store.get(NAMESPACES, None, str(namespace)) is None:
        raise not_found(NAMESPACES, str(namespace))
    if store.terminating(str(namespace)):
        raise Forbidden(
            f'{info.qualified} "{meta.get("name") or meta.get("generateName") or ""}" is forbidden: '
            f"unable to create new content in namespace {namespace} because it is being terminated",
            details={
                "name": meta.get("name", ""),
                "kind": info.plural,
                "causes": [
                    {
                        "reason": "NamespaceTerminating",
                        "field": "metadata.namespace",
                        "message": f"namespace {namespace} is being terminated",
                    }
                ],
            },
        )


def admit(store: Store, t: Target, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Defaulting, allocation and validation of a write to the main resource (storage form)."""
    gvr = t.gvr
    info = discovery.info_for(gvr)
    meta = obj["metadata"]
    if info.namespaced and old is None:
        _check_namespace(store, info, meta)
    if old is None:
        openapi.initial_status(gvr, obj)
    openapi.apply_defaults(gvr, obj)
    if info.kind == "Secret" and info.builtin and obj.get("stringData"):
        data = dict(obj.get("data") or {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    if info.kind == "PersistentVolumeClaim" and info.builtin and old is None:
        spec = obj.setdefault("spec", {})
        if "storageClassName" not in spec:
            default = default_storage_class(store)
            if default:
                spec["storageClassName"] = default
    causes = openapi.validate(gvr, obj, old)
    if info.kind == "Service" and info.builtin and not causes:
        causes = allocate_service(store, obj, old)
    if causes:
        raise invalid(gvr, str(meta.get("name") or meta.get("generateName") or ""), causes)
    return obj


def default_storage_class(store: Store) -> str | None:
    classes, _ = store.list(STORAGECLASSES)
    for sc in classes:
        annotations = sc["metadata"].get("annotations") or {}
        if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            return str(sc["metadata"]["name"])
    return None


def allocate_service(store: Store, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Give a Service its clusterIP and nodePorts (in place); the causes when the asked ones are taken."""
    spec = obj.setdefault("spec", {})
    services, _ = store.list(SERVICES)
    me = (obj["metadata"].get("namespace"), obj["metadata"].get("name"))
    others = [s for s in services if (s["metadata"].get("namespace"), s["metadata"]["name"]) != me]
    old_spec = (old or {}).get("spec") or {}
    causes: list[Cause] = []
    stype = spec.get("type", "ClusterIP")
    if stype == "ExternalName":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    else:
        causes += _allocate_cluster_ip(spec, old_spec, others)
    if stype in ("NodePort", "LoadBalancer"):
        causes += _allocate_node_ports(spec, old_spec, others)
    else:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    return causes


def _allocate_cluster_ip(
    spec: dict[str, Any], old_spec: dict[str, Any], others: list[dict[str, Any]]
) -> list[Cause]:
    causes: list[Cause] = []
    used = {s.get("spec", {}).get("clusterIP") for s in others}
    ip = spec.get("clusterIP") or old_spec.get("clusterIP")
    if not ip:
        hosts = list(SERVICE_CIDR.hosts())
        free = [str(h) for h in hosts[9:] if str(h) not in used]
        ip = random.choice(free)
    elif ip != "None":
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is None or address not in SERVICE_CIDR:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: the provided '
                    f"IP ({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}",
                )
            )
        elif ip in used and ip != old_spec.get("clusterIP"):
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP '
                    "is already allocated",
                )
            )
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]
    return causes


def _allocate_node_ports(
    spec: dict[str, Any], old_spec: dict[str, Any], others: list[dict[str, Any]]
) -> list[Cause]:
    causes: list[Cause] = []
    used_ports = {
        p.get("nodePort")
        for s in others
        for p in (s.get("spec") or {}).get("ports") or []
        if p.get("nodePort")
    }
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports") or []
    }
    mine: set[int] = set()
    for i, port in enumerate(spec.get("ports") or []):
        wanted = port.get("nodePort")
        if wanted:
            if wanted in used_ports or wanted in mine:
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"spec.ports[{i}].nodePort",
                        f"Invalid value: {wanted}: provided port is already allocated",
                    )
                )
            mine.add(wanted)
            continue
        # An update keeps the nodePort a port had, when nobody else took it meanwhile.
        previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
        if previous and previous not in used_ports and previous not in mine:
            port["nodePort"] = previous
        else:
            free_ports = [p for p in NODE_PORTS if p not in used_ports and p not in mine]
            port["nodePort"] = random.choice(free_ports)
        mine.add(port["nodePort"])
    return causes
