"""Which pods serve a Service port (ready endpoints) and the NodePort table kube-proxy would program.

Pure functions of API objects as plain dicts. ``controllers/services.py`` computes the tables with them;
``routing.py`` resolves Ingress backends with :func:`ready_endpoints`; ``nodeport.py`` serves the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Endpoint = tuple[str, int]
Listen = tuple[str, int]


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _selects(selector: Mapping[str, str] | None, pod: Mapping[str, Any]) -> bool:
    if not selector:
        return False  # a Service without selector gets no endpoints from pods
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _target_port(port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == (port.get("protocol") or "TCP"):
                return int(p["containerPort"])
    return None  # a named port this pod does not have: the pod is no endpoint for it


def ready_endpoints(
    service: Mapping[str, Any], port: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> list[Endpoint]:
    """The ready ``(pod IP, target port)`` pairs of one Service port, sorted for stable round-robin."""
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    found: set[Endpoint] = set()
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        if pmeta.get("namespace", "default") != meta.get("namespace", "default"):
            continue
        if pmeta.get("deletionTimestamp") or not _selects(spec.get("selector"), pod):
            continue
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or (not publish_not_ready and not _pod_ready(pod)):
            continue
        target = _target_port(port, pod)
        if target is not None:
            found.add((ip, target))
    return sorted(found)


def nodeport_table(
    services: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], node_ip: str
) -> dict[Listen, list[Endpoint]]:
    """``{(node_ip, nodePort): ready endpoints}`` for each TCP node port of NodePort/LoadBalancer Services."""
    pods = list(pods)
    table: dict[Listen, list[Endpoint]] = {}
    for service in services:
        spec = service.get("spec") or {}
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            continue
        for port in spec.get("ports") or []:
            if port.get("nodePort") and (port.get("protocol") or "TCP") == "TCP":
                table[(node_ip, int(port["nodePort"]))] = ready_endpoints(service, port, pods)
    return table
