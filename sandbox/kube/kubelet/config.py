"""From a container's spec to what it is created with: environment, command, user, security, limits.

The kubelet's ``generateContainerConfig``: the environment from the
:class:`~sandbox.kube.resolved.ResolvedPod` plus the field references only the node knows (pod and host
IPs, node name), ``$(VAR)`` expansion in env values, ``command`` and ``args``, the security context
(user and groups, ``runAsNonRoot`` checked against the image's user, capabilities, no-new-privileges,
seccomp), resource limits, and the mounts (``volumes.py``). A spec that cannot be honoured raises
:class:`~sandbox.kube.resolved.ConfigError`, whose message the worker (``containers.py``) shows as
``CreateContainerConfigError``. Pure apart from the two lookups it is handed (image user, mounts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.kube.resolved import ConfigError, ResolvedPod

from .cri import ContainerConfig, MountSpec
from .status import format_pod


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, the rest stays as is."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env[name] if name in env else value[i : end + 1])
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``512Mi``, ``500m``, ``1e9``) as a number."""
    text = str(value).strip()
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)", text)
    if not m:
        raise ValueError(f"quantities must match the regular expression of resource.Quantity: {text!r}")
    number, suffix = float(m.group(1)), m.group(2)
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def environment(resolved: ResolvedPod, spec: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    """The container's environment, expanded; ``fields``: the fieldRef paths only the kubelet knows."""
    base = resolved.env.get(spec["name"])
    if base is None:
        base = {e["name"]: str(e.get("value", "")) for e in spec.get("env") or [] if "valueFrom" not in e}
    env = dict(base)
    # Only the kubelet knows these; and $(VAR) refers to names defined earlier in the list.
    for e in spec.get("env") or []:
        path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if path in fields:
            env[e["name"]] = fields[path]
    expanded: dict[str, str] = {}
    for name, value in env.items():
        expanded[name] = expand(value, expanded)
    return expanded


def container_config(
    pod: dict[str, Any],
    resolved: ResolvedPod,
    spec: dict[str, Any],
    *,
    sandbox_id: str,
    fields: dict[str, str],
    image_user: Callable[[], str],
    mounts: Callable[[], list[MountSpec]],
) -> ContainerConfig:
    """What the container is created with; :class:`ConfigError` with the kubelet's message when it can't be.

    ``image_user`` (the image's configured user) is asked only for ``runAsNonRoot``; ``mounts`` is asked
    last, so the kubelet's own checks come first.
    """
    error = resolved.error_for(spec["name"])
    if error:
        raise ConfigError(error)
    env = environment(resolved, spec, fields)
    pod_sec = (pod.get("spec") or {}).get("securityContext") or {}
    sec = spec.get("securityContext") or {}
    uid = sec.get("runAsUser", pod_sec.get("runAsUser"))
    gid = sec.get("runAsGroup", pod_sec.get("runAsGroup"))
    if sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot")):
        _check_non_root(pod, spec["name"], uid, image_user())
    try:
        made = mounts()
    except (ValueError, KeyError, OSError) as e:
        raise ConfigError(str(e)) from e
    capabilities = sec.get("capabilities") or {}
    groups = [str(g) for g in pod_sec.get("supplementalGroups") or []]
    if pod_sec.get("fsGroup") is not None:
        groups.append(str(pod_sec["fsGroup"]))
    mem_limit, nano_cpus = _limits(spec)
    return ContainerConfig(
        environment=env,
        sandbox_id=sandbox_id,
        mounts=made,
        working_dir=spec.get("workingDir") or None,
        tty=bool(spec.get("tty")),
        stdin_open=bool(spec.get("stdin")),
        read_only=bool(sec.get("readOnlyRootFilesystem")),
        privileged=bool(sec.get("privileged")),
        cap_drop=[str(c).upper() for c in capabilities["drop"]] if capabilities.get("drop") else None,
        cap_add=[str(c).upper() for c in capabilities["add"]] if capabilities.get("add") else None,
        security_opt=_security_opt(sec, pod_sec),
        # A command without args drops the image's CMD, as Kubernetes documents; Docker agrees.
        entrypoint=[expand(str(c), env) for c in spec["command"]]
        if spec.get("command") is not None
        else None,
        command=[expand(str(a), env) for a in spec["args"]] if spec.get("args") is not None else None,
        user=(f"{uid}:{gid}" if gid is not None else str(uid)) if uid is not None else None,
        group_add=groups or None,
        mem_limit=mem_limit,
        nano_cpus=nano_cpus,
    )


def _check_non_root(pod: dict[str, Any], name: str, uid: Any, image_user: str) -> None:
    user_part = image_user.split(":")[0]
    if uid is None and user_part and not user_part.isdigit():
        raise ConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user_part}), "
            f'cannot verify user is non-root (pod: "{format_pod(pod)}", container: {name})'
        )
    effective = int(uid) if uid is not None else int(user_part or 0)
    if effective == 0:
        raise ConfigError(
            f'container has runAsNonRoot and image will run as root (pod: "{format_pod(pod)}", '
            f"container: {name})"
        )


def _security_opt(sec: dict[str, Any], pod_sec: dict[str, Any]) -> list[str] | None:
    security_opt = []
    if sec.get("allowPrivilegeEscalation") is False:
        security_opt.append("no-new-privileges")
    # Docker applies its default seccomp profile (RuntimeDefault) unless told otherwise.
    seccomp = (sec.get("seccompProfile") or pod_sec.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        security_opt.append("seccomp=unconfined")
    return security_opt or None


def _limits(spec: dict[str, Any]) -> tuple[int | None, int | None]:
    """``resources.limits`` as Docker's memory bytes and nano-CPUs."""
    limits = (spec.get("resources") or {}).get("limits") or {}
    try:
        mem_limit = int(parse_quantity(limits["memory"])) if "memory" in limits else None
        nano_cpus = int(parse_quantity(limits["cpu"]) * 1e9) if "cpu" in limits else None
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return mem_limit, nano_cpus
