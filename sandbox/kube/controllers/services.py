"""Services and Ingresses: ready endpoints, the Endpoints objects, the proxies' routes, Ingress status.

As the endpoints controller does, each Service with a selector gets an ``Endpoints`` object listing the
selected pods' IPs (Ready ones under ``addresses``, the others under ``notReadyAddresses``, unless
``publishNotReadyAddresses``) with target ports resolved, named ones through the container's ports.
Only ready endpoints become proxy backends, so a NodePort or an Ingress never sends a request to a pod
that is not Ready, as kube-proxy and GKE's load balancer behave. Each Ingress gets
``status.loadBalancer.ingress[0].ip``: the node's address, where ``proxy/`` listens.

The proxies' tables come from ``proxy/``'s pure ``nodeport_table``/``ingress_table`` (one definition of
"ready endpoint" for both), handed over as :class:`Routes` whenever they change.

Neighbours: ``pods.py`` keeps pod IPs and readiness current; ``proxy/`` receives :class:`Routes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store.kinds import ENDPOINTS, INGRESSES, PODS, SECRETS, SERVICES
from .objects import (
    MANAGER,
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
    from ..proxy import IngressTable
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.services")


@dataclass(frozen=True)
class Routes:
    """What the proxies (``proxy/``) serve, in their own terms: ``node_ports`` is
    ``proxy.nodeport_table``'s ``{(node_ip, nodePort): [(pod_ip, port), ...]}`` for
    ``NodePortProxy.sync``, ``ingress`` is ``proxy.ingress_table``'s ``IngressTable`` for
    ``IngressProxy.sync``. Both list ready endpoints only."""

    node_ports: dict[tuple[str, int], list[tuple[str, int]]] = field(default_factory=dict)
    ingress: IngressTable | None = None


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


def compute_routes(
    node_ip: str, services: list[Obj], pods: list[Obj], ingresses: list[Obj], secrets: list[Obj]
) -> Routes | None:
    """The proxies' tables, built by ``proxy/``'s own pure functions (None when it is not there)."""
    try:
        from .. import proxy
    except ImportError:
        return None
    return Routes(
        node_ports=proxy.nodeport_table(services, pods, node_ip),
        ingress=proxy.ingress_table(ingresses, services, pods, secrets),
    )


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
        routes = compute_routes(self.node_ip, services, pods, ingresses, self.store.list(SECRETS)[0])
        if routes is not None and routes != self._last_routes and self.on_routes is not None:
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
