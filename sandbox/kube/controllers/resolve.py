"""What the API holds for a Pod and Docker does not: its :class:`~sandbox.kube.resolved.ResolvedPod`.

Pure functions over the objects of the pod's namespace, rebuilt before every ``Kubelet.sync_pod``:

- environment from ``envFrom`` and ``env`` (``value``, ``configMapKeyRef``, ``secretKeyRef``,
  ``fieldRef`` to ``metadata.*``/``spec.*``, ``resourceFieldRef``), failing with the kubelet's own
  messages (``configmap "x" not found``, ``couldn't find key K in ConfigMap ns/x``) that become
  ``CreateContainerConfigError``; ``optional`` sources are skipped as the kubelet skips them;
- files of ``configMap``/``secret``/``projected``/``downwardAPI`` volumes, or the ``FailedMount`` message;
- bound claims -> their Docker volumes (``volumes.py`` names them);
- the DNS names of the Services selecting the pod (Docker network aliases), so the backend reaches
  ``db-core`` as it would through cluster DNS.

Neighbours: ``pods.py`` calls :func:`resolve_pod`; the kubelet (``kubelet/``) consumes the result.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..resolved import ConfigError, ResolvedPod
from .objects import Obj, labels_of, map_selector_matches, meta, name_of, ns_of, parse_quantity


def secret_values(secret: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    # stringData is write-only on a real API server; a store that kept it is honoured all the same.
    out.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def configmap_values(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


# The two kinds env can read from: the word the kubelet's messages use for each, and how to decode it.
_SOURCES: dict[str, tuple[str, str, Callable[[Obj], dict[str, bytes]]]] = {
    "configMap": ("configmap", "ConfigMap", configmap_values),
    "secret": ("secret", "Secret", secret_values),
}


def _source_values(kind: str, ref: Mapping[str, Any], objects: Mapping[str, Obj]) -> dict[str, bytes] | None:
    """The referenced object's values; None when it is absent but optional, else a config error."""
    word, _, values = _SOURCES[kind]
    name = str(ref.get("name", ""))
    obj = objects.get(name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{word} "{name}" not found')
    return values(obj)


def _key_value(kind: str, ref: Mapping[str, Any], objects: Mapping[str, Obj], ns: str) -> bytes | None:
    """One key of the referenced object (``configMapKeyRef``/``secretKeyRef``), with the same rules."""
    data = _source_values(kind, ref, objects)
    if data is None:
        return None
    key = str(ref.get("key", ""))
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {_SOURCES[kind][1]} {ns}/{ref.get('name', '')}")
    return data[key]


def _field_value(pod: Obj, path: str) -> str | None:
    """``fieldRef`` values the API knows; None for ``status.*`` ones, which the kubelet fills."""
    m = meta(pod)
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": m.get("name"),
        "metadata.namespace": m.get("namespace"),
        "metadata.uid": m.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, source in (
        ("metadata.labels", m.get("labels")),
        ("metadata.annotations", m.get("annotations")),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((source or {}).get(path[len(prefix) + 2 : -2], ""))
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted((source or {}).items()))
    return None


def _resource_value(container: Obj, ref: Mapping[str, Any], node: Obj) -> str:
    """``resourceFieldRef``: a limit falls back to the node's allocatable; rounded up to the divisor."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name)
    if value is None:
        value = ((node.get("status") or {}).get("allocatable") or {}).get(name, "0")
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


def _env_for(
    pod: Obj,
    container: Obj,
    configmaps: Mapping[str, Obj],
    secrets: Mapping[str, Obj],
    node: Obj,
) -> dict[str, str]:
    ns = ns_of(pod)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if "configMapRef" in source:
            raw = _source_values("configMap", source["configMapRef"], configmaps)
        elif "secretRef" in source:
            raw = _source_values("secret", source["secretRef"], secrets)
        else:
            continue
        for k, v in (raw or {}).items():
            env[prefix + k] = v.decode(errors="replace")
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" not in var:
            env[name] = str(var.get("value") or "")
            continue
        value_from = var["valueFrom"] or {}
        if "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            kind = "configMap" if "configMapKeyRef" in value_from else "secret"
            raw_value = _key_value(
                kind, value_from[f"{kind}KeyRef"], configmaps if kind == "configMap" else secrets, ns
            )
            if raw_value is not None:
                env[name] = raw_value.decode(errors="replace")
        elif "fieldRef" in value_from:
            value = _field_value(pod, str(value_from["fieldRef"].get("fieldPath", "")))
            if value is not None:
                env[name] = value
        elif "resourceFieldRef" in value_from:
            env[name] = _resource_value(container, value_from["resourceFieldRef"], node)
    return env


def _project(
    values: Mapping[str, bytes], items: list[Obj] | None, kind: str, optional: bool
) -> tuple[dict[str, bytes], str | None]:
    if not items:
        return dict(values), None
    files: dict[str, bytes] = {}
    for item in items:
        key = item.get("key", "")
        if key not in values:
            if optional:
                continue
            return {}, f"{kind} references non-existent config key: {key}"
        files[item.get("path") or key] = values[key]
    return files, None


def _volume_files(
    pod: Obj, volume: Obj, configmaps: Mapping[str, Obj], secrets: Mapping[str, Obj]
) -> tuple[dict[str, bytes] | None, str | None]:
    """Files of one volume, or the reason it cannot be mounted; (None, None) for other volume types."""

    def from_configmap(src: Obj) -> tuple[dict[str, bytes], str | None]:
        cm = configmaps.get(src.get("name", ""))
        if cm is None:
            return {}, None if src.get("optional") else f'configmap "{src.get("name", "")}" not found'
        return _project(configmap_values(cm), src.get("items"), "configmap", bool(src.get("optional")))

    def from_secret(src: Obj, name_key: str) -> tuple[dict[str, bytes], str | None]:
        secret = secrets.get(src.get(name_key, ""))
        if secret is None:
            return {}, None if src.get("optional") else f'secret "{src.get(name_key, "")}" not found'
        return _project(secret_values(secret), src.get("items"), "secret", bool(src.get("optional")))

    def from_downward(src: Obj) -> tuple[dict[str, bytes], str | None]:
        files = {}
        for item in src.get("items") or []:
            value = _field_value(pod, str((item.get("fieldRef") or {}).get("fieldPath", "")))
            if value is not None:
                files[item.get("path", "")] = value.encode()
        return files, None

    handlers: dict[str, Callable[[Obj], tuple[dict[str, bytes], str | None]]] = {
        "configMap": from_configmap,
        "secret": lambda src: from_secret(src, "secretName"),
        "downwardAPI": from_downward,
    }
    for kind, handler in handlers.items():
        if kind in volume:
            return handler(volume[kind] or {})
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for source in (volume["projected"] or {}).get("sources") or []:
            if "configMap" in source:
                got, error = from_configmap(source["configMap"] or {})
            elif "secret" in source:
                got, error = from_secret(source["secret"] or {}, "name")
            elif "downwardAPI" in source:
                got, error = from_downward(source["downwardAPI"] or {})
            else:
                # serviceAccountToken and clusterTrustBundle: nothing the sandbox can issue.
                continue
            if error is not None:
                return None, error
            files.update(got)
        return files, None
    return None, None


def service_aliases(pod: Obj, services: list[Obj]) -> tuple[str, ...]:
    """The names cluster DNS would give the pod's Services (short, namespaced and fully qualified)."""
    ns = ns_of(pod)
    names: list[str] = []
    for svc in sorted(services, key=name_of):
        if map_selector_matches((svc.get("spec") or {}).get("selector"), labels_of(pod)):
            n = name_of(svc)
            names += [n, f"{n}.{ns}", f"{n}.{ns}.svc", f"{n}.{ns}.svc.cluster.local"]
    return tuple(names)


def resolve_pod(
    pod: Obj,
    *,
    configmaps: Mapping[str, Obj],
    secrets: Mapping[str, Obj],
    claim_volumes: Mapping[str, str],
    services: list[Obj],
    node: Obj,
) -> ResolvedPod:
    """The :class:`ResolvedPod` for ``pod``; ``claim_volumes``: bound claim name -> Docker volume."""
    spec = pod.get("spec") or {}
    env: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        try:
            env[container["name"]] = _env_for(pod, container, configmaps, secrets, node)
        except ConfigError as e:
            errors[container["name"]] = str(e)
    volumes: dict[str, str] = {}
    files: dict[str, dict[str, bytes]] = {}
    volume_errors: dict[str, str] = {}
    for volume in spec.get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None:
            if claim in claim_volumes:
                volumes[claim] = claim_volumes[claim]
            continue
        got, error = _volume_files(pod, volume, configmaps, secrets)
        if error is not None:
            volume_errors[volume["name"]] = (
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : {error}'
            )
        elif got is not None:
            files[volume["name"]] = got
    return ResolvedPod(
        env=env,
        config_errors=errors,
        volumes=volumes,
        volume_files=files,
        volume_errors=volume_errors,
        service_aliases=service_aliases(pod, services),
    )
