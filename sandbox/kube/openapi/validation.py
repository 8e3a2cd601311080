"""Validation of the main kinds as kube-apiserver does it, returning causes in the API's format.

Workloads (replicas, selector matching the template, immutable selector, strategy), pod specs
(containers, ports, env names, volume mounts, restart policy), Services, Ingresses, Pod updates,
ConfigMap/Secret keys and immutability, PersistentVolumeClaims. Uses ``names.py``; ``apiserver/`` runs
:func:`validate` after ``defaults.py`` (Service IP and nodePort allocation, which need the store, stay there).
"""

from __future__ import annotations

import json
from typing import Any

from ..discovery import GVR, info_for
from .names import (
    CONFIG_KEY,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ENV_NAME,
    Cause,
    go_repr,
    labels_causes,
    name_causes,
    required,
)


def _pod_spec_causes(spec: Any, field: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", field, "Required value")]
    out: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{field}.containers", "Required value")]
    seen: set[str] = set()
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            at = f"{field}.{key}[{i}]"
            if not isinstance(c, dict):
                out.append(("FieldValueInvalid", at, "Invalid value: must be an object"))
                continue
            name = c.get("name")
            if not name:
                out.append(("FieldValueRequired", f"{at}.name", "Required value"))
            elif not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
                out.extend(name_causes("Namespace", str(name), f"{at}.name"))
            elif name in seen:
                out.append(("FieldValueDuplicate", f"{at}.name", f"Duplicate value: {json.dumps(name)}"))
            else:
                seen.add(name)
            if not c.get("image"):
                out.append(("FieldValueRequired", f"{at}.image", "Required value"))
            for j, port in enumerate(c.get("ports") or []):
                cp = port.get("containerPort") if isinstance(port, dict) else None
                if not isinstance(cp, int) or not 0 < cp < 65536:
                    out.append(
                        (
                            "FieldValueInvalid",
                            f"{at}.ports[{j}].containerPort",
                            f"Invalid value: {json.dumps(cp)}: must be between 1 and 65535, inclusive",
                        )
                    )
            for j, env in enumerate(c.get("env") or []):
                env_name = env.get("name") if isinstance(env, dict) else None
                if not env_name:
                    out.append(("FieldValueRequired", f"{at}.env[{j}].name", "Required value"))
                elif not ENV_NAME.match(str(env_name)):
                    out.append(
                        (
                            "FieldValueInvalid",
                            f"{at}.env[{j}].name",
                            f"Invalid value: {json.dumps(env_name)}: a valid environment variable name "
                            "must consist of alphabetic characters, digits, '_', '-', or '.', and must not "
                            "start with a digit",
                        )
                    )
            for j, mount in enumerate(c.get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    out.append(
                        (
                            "FieldValueNotFound",
                            f"{at}.volumeMounts[{j}].name",
                            f"Not found: {json.dumps(mount.get('name'))}",
                        )
                    )
                if isinstance(mount, dict) and not mount.get("mountPath"):
                    out.append(("FieldValueRequired", f"{at}.volumeMounts[{j}].mountPath", "Required value"))
    restart = spec.get("restartPolicy")
    if restart not in (None, "Always", "OnFailure", "Never"):
        out.append(
            (
                "FieldValueNotSupported",
                f"{field}.restartPolicy",
                f'Unsupported value: {json.dumps(restart)}: supported values: "Always", "OnFailure", "Never"',
            )
        )
    return out


def _selector_matches(selector: Any, labels: Any) -> bool:
    if not isinstance(selector, dict):
        return False
    labels = labels if isinstance(labels, dict) else {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _workload_causes(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    out: list[Cause] = []
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        out.append(
            (
                "FieldValueInvalid",
                "spec.replicas",
                f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
            )
        )
    selector = spec.get("selector")
    template: dict[str, Any] = spec["template"] if isinstance(spec.get("template"), dict) else {}
    labels = (template.get("metadata") or {}).get("labels")
    if kind != "Job":
        if not selector:
            out.append(("FieldValueRequired", "spec.selector", "Required value"))
        elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
            out.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]"
                    "v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
                )
            )
        elif not _selector_matches(selector, labels):
            out.append(
                (
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"Invalid value: {go_repr(labels or {})}: `selector` does not match template `labels`",
                )
            )
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            out.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    f"Invalid value: {go_repr(selector)}: field is immutable",
                )
            )
    out.extend(labels_causes(labels, "spec.template.metadata.labels"))
    out.extend(_pod_spec_causes(template.get("spec"), "spec.template.spec"))
    strategy = spec.get("strategy") or {}
    if kind == "Deployment" and strategy.get("type") not in (None, "RollingUpdate", "Recreate"):
        out.append(
            (
                "FieldValueNotSupported",
                "spec.strategy.type",
                f"Unsupported value: {json.dumps(strategy.get('type'))}: "
                'supported values: "Recreate", "RollingUpdate"',
            )
        )
    if kind == "Deployment" and strategy.get("type") == "Recreate" and strategy.get("rollingUpdate"):
        out.append(
            (
                "FieldValueForbidden",
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        )
    return out


def _service_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    out: list[Cause] = []
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        out.append(
            (
                "FieldValueNotSupported",
                "spec.type",
                f'Unsupported value: {json.dumps(stype)}: supported values: "ClusterIP", "ExternalName", '
                '"LoadBalancer", "NodePort"',
            )
        )
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        out.append(("FieldValueRequired", "spec.ports", "Required value"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        p = port.get("port")
        if not isinstance(p, int) or not 0 < p < 65536:
            out.append(
                (
                    "FieldValueInvalid",
                    f"spec.ports[{i}].port",
                    f"Invalid value: {json.dumps(p)}: must be between 1 and 65535, inclusive",
                )
            )
        if len(ports) > 1 and not port.get("name"):
            out.append(("FieldValueRequired", f"spec.ports[{i}].name", "Required value"))
        if port.get("name"):
            if port["name"] in names:
                out.append(
                    (
                        "FieldValueDuplicate",
                        f"spec.ports[{i}].name",
                        f"Duplicate value: {json.dumps(port['name'])}",
                    )
                )
            names.add(port["name"])
        node_port = port.get("nodePort")
        if node_port is not None:
            if stype not in ("NodePort", "LoadBalancer"):
                out.append(
                    (
                        "FieldValueForbidden",
                        f"spec.ports[{i}].nodePort",
                        "Forbidden: may not be used when `type` is 'ClusterIP'",
                    )
                )
            elif not isinstance(node_port, int) or not 30000 <= node_port <= 32767:
                out.append(
                    (
                        "FieldValueInvalid",
                        f"spec.ports[{i}].nodePort",
                        f"Invalid value: {json.dumps(node_port)}: provided port is not in the valid range. "
                        "The range of valid ports is 30000-32767",
                    )
                )
    if old is not None:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = spec.get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip:
            out.append(
                (
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    f"Invalid value: []string{{{json.dumps(new_ip)}}}: may not change once set",
                )
            )
    return out


def _ingress_causes(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("FieldValueRequired", "spec", "Required value")]
    out: list[Cause] = []
    for i, rule in enumerate(spec.get("rules") or []):
        for j, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
            at = f"spec.rules[{i}].http.paths[{j}]"
            if path.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                out.append(
                    ("FieldValueRequired", f"{at}.pathType", "Required value: pathType must be specified")
                    if "pathType" not in path
                    else (
                        "FieldValueNotSupported",
                        f"{at}.pathType",
                        f'Unsupported value: {json.dumps(path.get("pathType"))}: supported values: "Exact", '
                        '"ImplementationSpecific", "Prefix"',
                    )
                )
            if path.get("pathType") in ("Exact", "Prefix") and not str(path.get("path", "")).startswith("/"):
                out.append(
                    (
                        "FieldValueInvalid",
                        f"{at}.path",
                        f"Invalid value: {json.dumps(path.get('path', ''))}: must be an absolute path",
                    )
                )
            backend = path.get("backend") or {}
            if not backend.get("service") and not backend.get("resource"):
                out.append(
                    ("FieldValueRequired", f"{at}.backend", "Required value: one backend must be specified")
                )
    if not spec.get("rules") and not spec.get("defaultBackend"):
        out.append(
            (
                "FieldValueInvalid",
                "spec",
                "Invalid value: either `defaultBackend` or `rules` must be specified",
            )
        )
    return out


def validate(gvr: GVR, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """What kube-apiserver's validation would reject, as (reason, field, message) causes."""
    info = info_for(gvr)
    meta = obj.get("metadata") or {}
    out: list[Cause] = []
    name = str(meta.get("name") or "")
    if info.builtin and info.kind not in ("Event",):
        out.extend(name_causes(info.kind, name))
    elif not DNS1123_SUBDOMAIN.match(name) and info.kind != "Event":
        out.extend(name_causes("", name))
    out.extend(labels_causes(meta.get("labels"), "metadata.labels"))
    if not info.builtin:
        return out
    kind = info.kind
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        out.extend(_workload_causes(kind, obj, old))
    elif kind == "Pod":
        out.extend(_pod_spec_causes(obj.get("spec"), "spec"))
        if old is not None:
            old_spec = dict(old.get("spec") or {})
            new_spec = dict(obj.get("spec") or {})
            for mutable in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
                old_spec.pop(mutable, None)
                new_spec.pop(mutable, None)
            if _without_images(old_spec) != _without_images(new_spec):
                out.append(
                    (
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                        "tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                        "it was previously negative)",
                    )
                )
    elif kind == "Service":
        out.extend(_service_causes(obj, old))
    elif kind == "Ingress":
        out.extend(_ingress_causes(obj))
    elif kind in ("ConfigMap", "Secret"):
        for field in ("data", "binaryData", "stringData"):
            for key in obj.get(field) or {}:
                if not CONFIG_KEY.match(str(key)) or len(str(key)) > 253:
                    out.append(
                        (
                            "FieldValueInvalid",
                            f"{field}[{key}]",
                            f"Invalid value: {json.dumps(key)}: a valid config key must consist of "
                            "alphanumeric characters, '-', '_' or '.'",
                        )
                    )
        if (
            old is not None
            and old.get("immutable")
            and (old.get("data") != obj.get("data") or old.get("binaryData") != obj.get("binaryData"))
        ):
            out.append(
                ("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")
            )
    elif kind == "PersistentVolumeClaim":
        spec = obj.get("spec") or {}
        out.extend(required(spec.get("accessModes"), "spec.accessModes"))
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        out.extend(required(storage, "spec.resources[storage]"))
    return out


def _without_images(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for key in ("containers", "initContainers"):
        if key in out:
            out[key] = [{k: v for k, v in c.items() if k != "image"} for c in out[key] if isinstance(c, dict)]
    return out
