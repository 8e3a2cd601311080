"""One cluster's proxies (NodePort listeners and the Ingress listener) as one service of the daemon.

Used by ``service.py``, which feeds :meth:`Proxies.sync` the controllers' ``Routes``; uses ``nodeport.py``
and ``ingress.py``.
"""

from __future__ import annotations

from typing import Any, Protocol

from .ingress import IngressProxy
from .nodeport import NodePortProxy


class CertificateIssuer(Protocol):
    def issue(self, hosts: list[str]) -> tuple[bytes, bytes]: ...


class Proxies:
    """One cluster's NodePort listeners and Ingress listener as one service of the daemon (``service.py``).

    ``ca`` issues the Ingress certificates (``ca.py``'s ``CertificateAuthority``). :meth:`sync` takes the
    controllers' ``Routes`` (``node_ports`` from :func:`nodeport_table`, ``ingress`` from
    :func:`ingress_table`); it runs on the event loop.
    """

    def __init__(self, cluster: str, node_ip: str, ca: CertificateIssuer, *, ingress_port: int = 443) -> None:
        self.cluster = cluster
        self.node_ports = NodePortProxy()
        self.ingress = IngressProxy(node_ip, ingress_port, lambda host: ca.issue([host]))

    async def start(self) -> None:
        await self.node_ports.start()
        await self.ingress.start()

    async def stop(self) -> None:
        await self.node_ports.stop()
        await self.ingress.stop()

    async def sync(self, routes: Any) -> None:
        await self.node_ports.sync(routes.node_ports)
        if routes.ingress is not None:
            await self.ingress.sync(routes.ingress)

    def describe(self) -> dict[str, Any]:
        return {"cluster": self.cluster, **self.node_ports.describe(), **self.ingress.describe()}
