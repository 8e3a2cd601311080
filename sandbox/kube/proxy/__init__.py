"""The sandbox's kube-proxy and Ingress controller: NodePort TCP listeners and one HTTPS Ingress listener.

Both run on the daemon's asyncio loop (no threads) and are reconfigured at runtime by the controllers
(``controllers/``), which compute the desired tables from the store with pure helpers:

- :func:`nodeport_table` (Services of type NodePort/LoadBalancer + Pods) -> ``{(node_ip, nodePort):
  [(pod_ip, target_port), ...]}`` for :meth:`NodePortProxy.sync`;
- :func:`ingress_table` (Ingresses + Services + Pods + TLS Secrets) -> :class:`IngressTable` for
  :meth:`IngressProxy.sync`.

Only *ready* endpoints are listed (Ready condition True, a pod IP, not terminating), as EndpointSlices
do. A NodePort with no ready endpoint has no listening socket, so a client gets ``connection refused``
as kube-proxy's REJECT rule gives; established connections survive a resync, as conntrack keeps them.
The Ingress listener presents, per SNI name, the certificate of the TLS Secret an Ingress names or else
one issued by the sandbox CA (``cert_for(host)``, i.e. ``CertificateAuthority.issue([host])`` of
``ca.py``), answers 404 (``default backend - 404``) when no rule matches and 503 when the matched
Service has no ready endpoint. Pods are reached on the IPs the kubelet (``kubelet/``) reports.

Modules: ``endpoints.py`` (ready endpoints, the NodePort table), ``routing.py`` (the Ingress table and its
host/path precedence), ``relay.py`` (the TCP relay), ``nodeport.py`` (:class:`NodePortProxy`),
``ingress.py`` (:class:`IngressProxy`: TLS/SNI and HTTP forwarding), ``proxies.py`` (:class:`Proxies`, the
daemon service). This package only gathers their names.
"""

from __future__ import annotations

from .endpoints import nodeport_table, ready_endpoints
from .ingress import IngressProxy, ProxyError
from .nodeport import NodePortProxy
from .proxies import Proxies
from .routing import IngressPath, IngressRule, IngressTable, ingress_table

__all__ = [
    "IngressPath",
    "IngressProxy",
    "IngressRule",
    "IngressTable",
    "NodePortProxy",
    "Proxies",
    "ProxyError",
    "ingress_table",
    "nodeport_table",
    "ready_endpoints",
]
