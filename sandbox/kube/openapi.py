"""What the sandbox API servers know about the shape of built-in kinds: OpenAPI, defaults, validation.

- The OpenAPI v3 documents (``/openapi/v3`` and one per group-version): paths for every resource, each
  PATCH operation tagged with ``x-kubernetes-group-version-kind`` and declaring the ``fieldValidation``
  query parameter. That is what kubectl 1.27+ looks for before it leaves field validation to the server
  (``fieldValidation=Strict``) instead of downloading schemas to validate client-side. The PATCH
  operations declare no request body, so ``kubectl apply`` (client-side) computes its strategic merge
  patches from its compiled-in types, as it does when a server publishes no schema.
- Known fields (:func:`unknown_fields`) come from the models of the official Python client, which mirror
  the Kubernetes OpenAPI schema; custom resources are stored as they come.
- Defaulting (:func:`apply_defaults`) of what rollout logic and kubectl rely on (Deployment replicas,
  strategy, progressDeadlineSeconds, revisionHistoryLimit, pod template defaults, Service type and
  ports, Namespace phase, Secret type), and validation (:func:`validate`) of names, labels and the
  required fields of the main kinds, returning causes in the API's format.

Neighbours: ``apiserver.py`` runs these as its admission chain; Service IP and nodePort allocation, which
need the store, stay there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from .discovery import GVR, ResourceInfo, groups, info_for, resources_of

Cause = tuple[str, str, str]  # (reason, field, message) as in Status.details.causes

# ---- OpenAPI v3 ------------------------------------------------------------------------------------------


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
        "components": {"schemas": _schemas(group, version)},
    }


@functools.cache
def _schemas(group: str, version: str) -> dict[str, Any]:
    """Component schemas of the group-version's built-in kinds, for ``kubectl explain``."""
    out: dict[str, Any] = {}
    for r in resources_of(group, version):
        model = _model_for(r)
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
    m = _LIST.match(model_type)
    if m:
        return {"type": "array", "items": _type_schema(m.group(1), out)}
    m = _DICT.match(model_type)
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
    if getattr(_client_models(), model_type, None) is None:
        return {"type": "object"}
    _component(model_type, out)
    return {"allOf": [{"$ref": f"#/components/schemas/{_schema_name(model_type)}"}]}


def _component(model_name: str, out: dict[str, Any]) -> None:
    name = _schema_name(model_name)
    if name in out:
        return
    model = getattr(_client_models(), model_name)
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


# ---- known fields (from the official client's models) --------------------------------------------------

_MODEL_NAMES = {
    ("", "Event"): "CoreV1Event",
    ("events.k8s.io", "Event"): "EventsV1Event",
    ("", "EndpointPort"): "CoreV1EndpointPort",
}


@functools.cache
def _client_models() -> Any:  # the official client's models mirror the Kubernetes OpenAPI schema
    import kubernetes.client

    return kubernetes.client


def _model_for(info: ResourceInfo) -> Any:
    if not info.builtin:
        return None
    models = _client_models()
    name = _MODEL_NAMES.get((info.group, info.kind)) or info.version.capitalize() + info.kind
    return getattr(models, name, None)


_LIST = re.compile(r"^list\[(.+)\]$", re.IGNORECASE)
_DICT = re.compile(r"^dict\(str, (.+)\)$|^dict\[str, (.+)\]$", re.IGNORECASE)


def _check(model_type: str, value: Any, path: str, out: list[str]) -> None:
    m = _LIST.match(model_type)
    if m:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(m.group(1), item, f"{path}[{i}]", out)
        return
    m = _DICT.match(model_type)
    if m:
        if isinstance(value, dict):
            inner = m.group(1) or m.group(2)
            for k, v in value.items():
                _check(inner, v, f"{path}.{k}", out)
        return
    model = (
        getattr(_client_models(), model_type, None)
        if model_type.startswith(("V", "Core", "Events"))
        else None
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
    model = _model_for(info)
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


# ---- defaulting -----------------------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged image (digest pins aside), else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if isinstance(c.get("image"), str):
        c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(name))
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def _default_template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


def apply_defaults(gvr: GVR, obj: dict[str, Any]) -> None:
    """Set the defaults kube-apiserver sets for this kind (in place)."""
    info = info_for(gvr)
    kind = info.kind if info.builtin else ""
    spec = obj.get("spec")
    if kind == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_template(spec)
    elif kind in ("ReplicaSet", "StatefulSet", "DaemonSet") and isinstance(spec, dict):
        if kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
            spec.setdefault("revisionHistoryLimit", 10)
        _default_template(spec)
    elif kind == "Job" and isinstance(spec, dict):
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        _default_template(spec)
    elif kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        meta = obj.setdefault("metadata", {})
        labels = meta.get("labels") or {}
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
        meta["labels"] = labels
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    elif kind == "Ingress" and isinstance(spec, dict):
        for rule in spec.get("rules") or []:
            for path in ((rule or {}).get("http") or {}).get("paths") or []:
                if isinstance(path, dict) and "path" not in path and path.get("pathType") == "Prefix":
                    path["path"] = "/"


def initial_status(gvr: GVR, obj: dict[str, Any]) -> None:
    """The status a new object starts with (what a create's status is replaced by)."""
    info = info_for(gvr)
    if not info.builtin or "status" not in info.subresources:
        return
    status: dict[str, Any] = {}
    if info.kind == "Pod":
        status = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    elif info.kind == "Namespace":
        status = {"phase": "Active"}
    elif info.kind == "PersistentVolumeClaim":
        status = {"phase": "Pending"}
    elif info.kind in ("Service", "Ingress"):
        status = {"loadBalancer": {}}
    if status:
        obj["status"] = status
    else:
        obj.pop("status", None)


def _qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(requests, limits, strict=True)
    )
    return "Guaranteed" if guaranteed else "Burstable"


# ---- validation -----------------------------------------------------------------------------------------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

_LABEL_NAMES = {"Namespace", "Service"}


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return (
            "map[string]string{" + ", ".join(f"{json.dumps(k)}:{_go_repr(v)}" for k, v in value.items()) + "}"
        )
    return json.dumps(value)


def _name_causes(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind in _LABEL_NAMES:
        pattern, what, regex = (
            (_DNS1035_LABEL, "RFC 1035 label", "[a-z]([-a-z0-9]*[a-z0-9])?")
            if kind == "Service"
            else (_DNS1123_LABEL, "RFC 1123 label", "[a-z0-9]([-a-z0-9]*[a-z0-9])?")
        )
        if len(name) > 63 or not pattern.match(name):
            return [
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: {json.dumps(name)}: a lowercase {what} must consist of lower case "
                    f"alphanumeric characters or '-', and must start and end with an alphanumeric character "
                    f"(regex used for validation is '{regex}')",
                )
            ]
        return []
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            (
                "FieldValueInvalid",
                field,
                f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def _labels_causes(labels: Any, field: str) -> list[Cause]:
    out: list[Cause] = []
    if labels is None:
        return out
    if not isinstance(labels, dict):
        return [("FieldValueInvalid", field, "Invalid value: must be a map of strings")]
    for key, value in labels.items():
        name = str(key).rsplit("/", 1)[-1]
        prefix = str(key)[: -len(name) - 1] if "/" in str(key) else ""
        if (
            not name
            or len(name) > 63
            or not _QUALIFIED_NAME.match(name)
            or (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
        ):
            out.append(
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: {json.dumps(key)}: name part must consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(
                (
                    "FieldValueInvalid",
                    f"{field}",
                    f"Invalid value: {json.dumps(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    return out


def _required(value: Any, field: str) -> list[Cause]:
    if value in (None, "", [], {}):
        return [("FieldValueRequired", field, "Required value")]
    return []


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
            elif not isinstance(name, str) or not _DNS1123_LABEL.match(name) or len(name) > 63:
                out.extend(_name_causes("Namespace", str(name), f"{at}.name"))
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
                elif not _ENV_NAME.match(str(env_name)):
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
                    f"Invalid value: {_go_repr(labels or {})}: `selector` does not match template `labels`",
                )
            )
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            out.append(
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    f"Invalid value: {_go_repr(selector)}: field is immutable",
                )
            )
    out.extend(_labels_causes(labels, "spec.template.metadata.labels"))
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
        out.extend(_name_causes(info.kind, name))
    elif not _DNS1123_SUBDOMAIN.match(name) and info.kind != "Event":
        out.extend(_name_causes("", name))
    out.extend(_labels_causes(meta.get("labels"), "metadata.labels"))
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
                if not _CONFIG_KEY.match(str(key)) or len(str(key)) > 253:
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
        out.extend(_required(spec.get("accessModes"), "spec.accessModes"))
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        out.extend(_required(storage, "spec.resources[storage]"))
    return out


def _without_images(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for key in ("containers", "initContainers"):
        if key in out:
            out[key] = [{k: v for k, v in c.items() if k != "image"} for c in out[key] if isinstance(c, dict)]
    return out
