"""Where the smoke tests go: the NodePort and Ingress addresses as the cluster reports them.

Read from the live objects (a node's ExternalIP and the Service's allocated nodePort; the Ingress's status
address and its rule's host), so a test reaches what users reach, not what the manifests hoped for.
``release.py`` calls :func:`from_cluster` after the rollout; the result feeds ``smoke.run``. The cluster is
reached through the ``pipeline.kube`` border; this module imports no client library itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..base import Obj
from ..config import Settings
from ..errors import SmokeError
from .request import Target

if TYPE_CHECKING:
    from ..kube import Kube


def node_ip(kube: Kube) -> str:
    nodes, _ = kube.list_objects("v1", "Node")
    for node in nodes:
        for address in node.get("status", {}).get("addresses", []):
            if address.get("type") == "ExternalIP":
                return str(address["address"])
    raise SmokeError("no node has an ExternalIP", "NodePort smoke tests need a public node address")


def _nodeport(kube: Kube, obj: Obj) -> Target | None:
    meta = obj.get("metadata", {})
    live = kube.get("v1", "Service", meta["name"], meta.get("namespace"))
    ports = (live or {}).get("spec", {}).get("ports", [])
    if ports and ports[0].get("nodePort"):
        return Target.nodeport(node_ip(kube), int(ports[0]["nodePort"]))
    return None


def _ingress(settings: Settings, kube: Kube, obj: Obj) -> Target | None:
    meta = obj.get("metadata", {})
    live = kube.get("networking.k8s.io/v1", "Ingress", meta["name"], meta.get("namespace")) or {}
    lb = live.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}]
    ip = lb[0].get("ip")
    hosts = [r["host"] for r in obj.get("spec", {}).get("rules", []) if r.get("host")]
    if not (ip and hosts):
        return None
    ca = Path(settings.release.ingress_ca_bundle) if settings.release.ingress_ca_bundle else None
    return Target.ingress(ip, hosts[0], ca_bundle=ca, port=settings.release.ingress_port)


def from_cluster(settings: Settings, kube: Kube, objects: Iterable[Obj]) -> list[Target]:
    """A target per NodePort Service and per Ingress among ``objects`` that has an address yet."""
    targets: list[Target] = []
    for obj in objects:
        target = None
        if obj.get("kind") == "Service" and obj.get("spec", {}).get("type") == "NodePort":
            target = _nodeport(kube, obj)
        elif obj.get("kind") == "Ingress":
            target = _ingress(settings, kube, obj)
        if target is not None:
            targets.append(target)
    return targets
