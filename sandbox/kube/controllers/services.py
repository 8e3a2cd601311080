"""Services and Ingresses: ready endpoints, the Endpoints objects, the proxies' routes, Ingress status.

As the endpoints controller does, each Service with a selector gets an ``Endpoints`` object listing the
selected pods' IPs (Ready ones under ``addresses``, the others under ``notReadyAddresses``, unless
``publishNotReadyAddresses``) with target ports resolved, named ones through the container's ports.
Only ready endpoints become proxy backends, so a NodePort or an Ingress never sends a request to a pod
that is not Ready, as kube-proxy and GKE's load balancer behave. Each Ingress gets
``status.loadBalancer.ingress[0].ip``: the node's address, where ``proxy.py`` listens.

Neighbours: ``pods.py`` keeps pod IPs and readiness current; ``proxy.py`` receives :class:`Routes`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .objects import (
    ENDPOINTS,
    INGRESSES,
    MANAGER,
    PODS,
    SECRETS,
    SERVICES,
    Obj,
    deepcopy,
    deleting,
    get_condition,
    labels_of,
    map_selector_matches,
    meta,
    name_of,
    ns_of,
    uid_of,
)

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.services")


@dataclass(frozen=True)
class Backend:
    """A ready pod's address for one Service port."""

    ip: str
    port: int
    pod: str


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service and where its traffic may go now."""

    namespace: str
    service: str
    name: str
    port: int
    protocol: str
    node_port: int | None
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class IngressPath:
    """One ``host``/``path`` rule of an Ingress, resolved to the ready backends of its Service port."""

    namespace: str
    ingress: str
    host: str
    path: str
    path_type: str
    service: str
    port: int | str
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class TLSCertificate:
    """A TLS Secret an Ingress names for some hosts (PEM as stored in ``tls.crt``/``tls.key``)."""

    namespace: str
    secret: str
    hosts: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Routes:
    """Everything the proxies need, recomputed on every change."""

    node_ports: tuple[ServicePort, ...] = ()
    ingress_paths: tuple[IngressPath, ...] = ()
    tls: tuple[TLSCertificate, ...] = field(default_factory=tuple)


def pod_is_ready(pod: Obj) -> bool:
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready")
    return cond is not None and cond.get("status") == "True"


def target_port(pod: Obj, port: Obj) -> int | None:
    """A Service port's target on ``pod``: a number, or a named container port (None when absent)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == port.get("protocol", "TCP"):
                return int(p["containerPort"])
    return None


def endpoint_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """``Endpoints.subsets`` for a Service: pods grouped by their resolved ports, as the controller does."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: ((p.get("status") or {}).get("podIP") or "", name_of(p))):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or deleting(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if not map_selector_matches(spec.get("selector"), labels_of(pod)):
            continue
        ports = []
        for port in spec.get("ports") or []:
            resolved = target_port(pod, port)
            if resolved is not None:
                ports.append((port.get("name") or "", resolved, port.get("protocol") or "TCP"))
        if not ports:
            continue
        address: Obj = {
            "ip": ip,
            "nodeName": (pod.get("spec") or {}).get("nodeName"),
            "targetRef": {"kind": "Pod", "namespace": ns_of(pod), "name": name_of(pod), "uid": uid_of(pod)},
        }
        group = groups.setdefault(tuple(ports), {"addresses": [], "notReadyAddresses": []})
        ready = publish_not_ready or pod_is_ready(pod)
        group["addresses" if ready else "notReadyAddresses"].append(address)
    subsets = []
    for ports_key, group in groups.items():
        subset: Obj = {k: v for k, v in group.items() if v}
        subset["ports"] = [
            {**({"name": name} if name else {}), "port": number, "protocol": protocol}
            for name, number, protocol in ports_key
        ]
        subsets.append(subset)
    return subsets


def ready_backends(svc: Obj, pods: Iterable[Obj], port: Obj) -> tuple[Backend, ...]:
    """The ready pods behind one Service port (what kube-proxy would balance over)."""
    selector = (svc.get("spec") or {}).get("selector")
    out = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if (
            not ip
            or deleting(pod)
            or not pod_is_ready(pod)
            or not map_selector_matches(selector, labels_of(pod))
        ):
            continue
        resolved = target_port(pod, port)
        if resolved is not None:
            out.append(Backend(ip, resolved, name_of(pod)))
    return tuple(sorted(out, key=lambda b: (b.ip, b.port)))


def _service_port(svc: Obj, wanted: Any) -> Obj | None:
    """An Ingress backend's ``service.port``: by ``number`` or by ``name``."""
    for port in (svc.get("spec") or {}).get("ports") or []:
        if ("number" in wanted and port.get("port") == wanted["number"]) or (
            "name" in wanted and port.get("name") == wanted["name"]
        ):
            p: Obj = port
            return p
    return None


def compute_routes(services: list[Obj], pods: list[Obj], ingresses: list[Obj], secrets: list[Obj]) -> Routes:
    pods_by_ns: dict[str, list[Obj]] = {}
    for pod in pods:
        pods_by_ns.setdefault(ns_of(pod), []).append(pod)
    by_name = {(ns_of(s), name_of(s)): s for s in services}
    node_ports = []
    for svc in services:
        spec = svc.get("spec") or {}
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            continue
        for port in spec.get("ports") or []:
            if not port.get("nodePort"):
                continue
            node_ports.append(
                ServicePort(
                    namespace=ns_of(svc),
                    service=name_of(svc),
                    name=port.get("name") or "",
                    port=int(port.get("port", 0)),
                    protocol=port.get("protocol") or "TCP",
                    node_port=int(port["nodePort"]),
                    backends=ready_backends(svc, pods_by_ns.get(ns_of(svc), []), port),
                )
            )
    paths = []
    tls = []
    secrets_by_name = {(ns_of(s), name_of(s)): s for s in secrets}
    for ing in ingresses:
        ns = ns_of(ing)
        spec = ing.get("spec") or {}
        rules = list(spec.get("rules") or [])
        if spec.get("defaultBackend"):
            rules.append(
                {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": spec["defaultBackend"]}]}}
            )
        for rule in rules:
            for p in (rule.get("http") or {}).get("paths") or []:
                backend = (p.get("backend") or {}).get("service") or {}
                target = by_name.get((ns, backend.get("name", "")))
                port = _service_port(target, backend.get("port") or {}) if target is not None else None
                wanted = (
                    (backend.get("port") or {}).get("number") or (backend.get("port") or {}).get("name") or 0
                )
                paths.append(
                    IngressPath(
                        namespace=ns,
                        ingress=name_of(ing),
                        host=rule.get("host") or "",
                        path=p.get("path") or "/",
                        path_type=p.get("pathType") or "Prefix",
                        service=backend.get("name", ""),
                        port=wanted,
                        backends=ready_backends(target, pods_by_ns.get(ns, []), port)
                        if target is not None and port is not None
                        else (),
                    )
                )
        for entry in spec.get("tls") or []:
            secret = secrets_by_name.get((ns, entry.get("secretName", "")))
            data = (secret or {}).get("data") or {}
            if secret is None or "tls.crt" not in data or "tls.key" not in data:
                continue
            tls.append(
                TLSCertificate(
                    namespace=ns,
                    secret=name_of(secret),
                    hosts=tuple(entry.get("hosts") or ()),
                    cert_pem=base64.b64decode(data["tls.crt"]),
                    key_pem=base64.b64decode(data["tls.key"]),
                )
            )
    return Routes(tuple(node_ports), tuple(paths), tuple(tls))


class ServiceController:
    """Endpoints objects, proxy routes and Ingress status, in one pass over the cluster."""

    def __init__(self, store: Store, node_ip: str, on_routes: Callable[[Routes], None] | None = None) -> None:
        self.store = store
        self.node_ip = node_ip
        self.on_routes = on_routes
        self._last_routes: Routes | None = None

    def sync_all(self) -> None:
        services, _ = self.store.list(SERVICES)
        pods, _ = self.store.list(PODS)
        ingresses, _ = self.store.list(INGRESSES)
        for svc in services:
            try:
                self._sync_endpoints(svc, pods)
            except Exception:
                log.exception("endpoints of %s/%s", ns_of(svc), name_of(svc))
        for ing in ingresses:
            self._sync_ingress_status(ing)
        routes = compute_routes(services, pods, ingresses, self.store.list(SECRETS)[0])
        if routes != self._last_routes and self.on_routes is not None:
            self.on_routes(routes)
        self._last_routes = routes

    def _sync_endpoints(self, svc: Obj, pods: list[Obj]) -> None:
        if not (svc.get("spec") or {}).get("selector"):
            return  # endpoints of selector-less Services are the user's to write
        subsets = endpoint_subsets(svc, [p for p in pods if ns_of(p) == ns_of(svc)])
        existing = self.store.get(ENDPOINTS, ns_of(svc), name_of(svc))
        labels = dict(labels_of(svc))
        if existing is None:
            obj: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": name_of(svc),
                    "namespace": ns_of(svc),
                    **({"labels": labels} if labels else {}),
                },
            }
            if subsets:
                obj["subsets"] = subsets
            self.store.create(ENDPOINTS, obj, manager=MANAGER)
            return
        if (existing.get("subsets") or []) == subsets and (meta(existing).get("labels") or {}) == labels:
            return
        changed = deepcopy(existing)
        if subsets:
            changed["subsets"] = subsets
        else:
            changed.pop("subsets", None)
        if labels:
            changed["metadata"]["labels"] = labels
        else:
            changed["metadata"].pop("labels", None)
        self.store.update(ENDPOINTS, changed, manager=MANAGER)

    def _sync_ingress_status(self, ing: Obj) -> None:
        wanted = {"loadBalancer": {"ingress": [{"ip": self.node_ip}]}}
        if (ing.get("status") or {}) == wanted:
            return
        changed = deepcopy(ing)
        changed["status"] = wanted
        try:
            self.store.update(INGRESSES, changed, manager=MANAGER, subresource="status")
        except Exception as e:  # stale: the next pass writes it
            log.debug("status of ingress %s: %s", name_of(ing), e)
