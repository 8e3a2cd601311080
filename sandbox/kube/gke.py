"""The GKE Container API stand-in: the REST form of ``projects.locations.clusters.get`` and ``list``.

``GET /v1/projects/{project}/locations/{location}/clusters/{cluster}`` returns what GKE returns for the
fields clients use to connect: ``endpoint`` (the API server's address; clients build
``https://{endpoint}``, so a non-standard port is part of it), ``masterAuth.clusterCaCertificate``
(base64 of the PEM), ``status: RUNNING`` and the versions. Unknown clusters get Google's 404 error body,
missing or dead access tokens Google's 401. The older ``zones`` form of the same URL is accepted too.

Served over plain HTTP on loopback beside the token endpoint (``auth.py``); the official client reaches it
with ``ClusterManagerClient(transport="rest", client_options={"api_endpoint": "http://127.0.0.1:PORT"})``.

Neighbours: ``service.py`` builds the :class:`ClusterRecord` list and mounts :meth:`GkeApi.routes`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .auth import bearer_token


@dataclass(frozen=True)
class ClusterRecord:
    """One cluster as the Container API describes it."""

    name: str
    endpoint: str  # host[:port] of the API server
    ca_pem: bytes
    master_version: str  # "1.31.6-gke.sandbox"
    node_ip: str
    create_time: str


def _google_error(status: int, message: str, code_name: str) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message, "status": code_name}}, status=status
    )


class GkeApi:
    """The Container API of one project and location."""

    def __init__(
        self, project: str, location: str, clusters: list[ClusterRecord], check_token: Callable[[str], bool]
    ) -> None:
        self.project = project
        self.location = location
        self.clusters = {c.name: c for c in clusters}
        self.check_token = check_token

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/projects/{project}/locations/{location}/clusters/{cluster}", self._get),
            web.get("/v1/projects/{project}/zones/{location}/clusters/{cluster}", self._get),
            web.get("/v1/projects/{project}/locations/{location}/clusters", self._list),
            web.get("/v1/projects/{project}/zones/{location}/clusters", self._list),
        ]

    def _unauthenticated(self, request: web.Request) -> web.Response | None:
        token = bearer_token(request)
        if token is None or not self.check_token(token):
            return _google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "UNAUTHENTICATED",
            )
        return None

    def describe(self, record: ClusterRecord) -> dict[str, Any]:
        location = self.location
        cluster_id = hashlib.sha256(f"{self.project}/{record.name}".encode()).hexdigest()[:32]
        path = f"projects/{self.project}/locations/{location}/clusters/{record.name}"
        return {
            "name": record.name,
            "description": "sandbox cluster: a local stand-in for GKE",
            "nodeConfig": {"machineType": "e2-standard-2", "diskSizeGb": 100, "imageType": "COS_CONTAINERD"},
            "masterAuth": {"clusterCaCertificate": base64.b64encode(record.ca_pem).decode()},
            "loggingService": "none",
            "monitoringService": "none",
            "network": "default",
            "clusterIpv4Cidr": "10.4.0.0/14",
            "servicesIpv4Cidr": "10.96.0.0/16",
            "selfLink": f"https://container.googleapis.com/v1/{path}",
            "zone": location,
            "endpoint": record.endpoint,
            "initialClusterVersion": record.master_version,
            "currentMasterVersion": record.master_version,
            "currentNodeVersion": record.master_version,
            "createTime": record.create_time,
            "status": "RUNNING",
            "nodeIpv4CidrSize": 24,
            "location": location,
            "locations": [location],
            "id": cluster_id,
            "currentNodeCount": 1,
            "privateClusterConfig": {"publicEndpoint": record.node_ip},
        }

    def _check_place(self, request: web.Request) -> web.Response | None:
        project, location = request.match_info["project"], request.match_info["location"]
        if project != self.project or location not in (self.location, "-"):
            name = request.match_info.get("cluster")
            what = f"projects/{project}/locations/{location}" + (f"/clusters/{name}" if name else "")
            return _google_error(404, f"Not found: {what}.", "NOT_FOUND")
        return None

    async def _get(self, request: web.Request) -> web.Response:
        failure = self._unauthenticated(request) or self._check_place(request)
        if failure is not None:
            return failure
        name = request.match_info["cluster"]
        record = self.clusters.get(name)
        if record is None:
            path = f"projects/{self.project}/locations/{request.match_info['location']}/clusters/{name}"
            return _google_error(404, f"Not found: {path}.", "NOT_FOUND")
        return web.json_response(self.describe(record))

    async def _list(self, request: web.Request) -> web.Response:
        failure = self._unauthenticated(request) or self._check_place(request)
        if failure is not None:
            return failure
        return web.json_response({"clusters": [self.describe(c) for c in self.clusters.values()]})
