"""The Kubernetes side of the sandbox as one daemon service: CA, OAuth, GKE stand-in, clusters.

:class:`KubeService` is what ``daemon.py`` starts. At ``start()`` it loads (or makes) the CA and the OAuth
client (``ca.py``, ``auth.py``), serves the token endpoint and the Container API stand-in (``gke.py``) on
``127.0.0.1:<gke_port>``, and for each cluster of the settings opens its store (``store/``, state under
``<home>/kube/<cluster>/``), seeds what a new GKE cluster has (namespaces, StorageClasses, the
``kubernetes`` Service), starts its HTTPS API server (``apiserver/``) on ``<node_ip>:<api_port>``, and
its workloads: a kubelet (``kubelet/``), the controllers (``controllers/``) and the proxies
(``proxy/``). It writes the kubeconfig (``kubeconfig.py``) and the ADC file; ``describe()`` gives
``ready.json`` their paths and the ``sandbox.env`` variables. ``stop()`` undoes all of it, in reverse.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import logging
import platform
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import faults
from . import openapi
from .apiserver import GIT_VERSION, ApiServer
from .auth import TokenIssuer
from .ca import CertificateAuthority
from .gke import ClusterRecord, GkeApi
from .kubeconfig import write_kubeconfig
from .store import GVR, NAMESPACES, NODES, SERVICES, STORAGECLASSES, Store

if TYPE_CHECKING:
    from ..home import ClusterSettings, Home, Settings

log = logging.getLogger("sandbox.kube")

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def node_name(cluster: str) -> str:
    return f"gke-{cluster}-default-pool-node-0"


def seed_objects(cluster: str, node_ip: str) -> list[tuple[GVR, dict[str, Any]]]:
    """What a new GKE cluster has before anyone applies anything."""
    items: list[tuple[GVR, dict[str, Any]]] = []
    for ns in DEFAULT_NAMESPACES:
        items.append(
            (
                NAMESPACES,
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        )
    items.append(
        (
            STORAGECLASSES,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "standard-rwo",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    "labels": {"addonmanager.kubernetes.io/mode": "EnsureExists"},
                },
                "provisioner": "pd.csi.storage.gke.io",
                "parameters": {"type": "pd-balanced"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": True,
            },
        )
    )
    items.append(
        (
            STORAGECLASSES,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "standard",
                    "labels": {"addonmanager.kubernetes.io/mode": "EnsureExists"},
                },
                "provisioner": "kubernetes.io/gce-pd",
                "parameters": {"type": "pd-standard"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            },
        )
    )
    items.append(
        (
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": "10.96.0.1",
                    "clusterIPs": ["10.96.0.1"],
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                    "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                },
                "status": {"loadBalancer": {}},
            },
        )
    )
    return items


def static_node(cluster: str, node_ip: str) -> dict[str, Any]:
    """A Ready Node for clusters that run without workloads (the controllers keep their own current)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name(cluster),
            "labels": {
                "kubernetes.io/hostname": node_name(cluster),
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "cloud.google.com/gke-nodepool": "default-pool",
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node_ip},
                {"type": "ExternalIP", "address": node_ip},
                {"type": "Hostname", "address": node_name(cluster)},
            ],
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "nodeInfo": node_info(cluster),
        },
    }


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("updating the proxies failed", exc_info=future.exception())


def node_info(cluster: str, **known: str) -> dict[str, str]:
    """``status.nodeInfo`` with every field the API marks required (typed clients refuse a Node without)."""
    ident = hashlib.sha256(cluster.encode()).hexdigest()
    info = {
        "architecture": "amd64",
        "bootID": str(uuid.UUID(ident[:32])),
        "containerRuntimeVersion": "docker://sandbox",
        "kernelVersion": platform.release(),
        "kubeProxyVersion": GIT_VERSION,
        "kubeletVersion": GIT_VERSION,
        "machineID": ident[:32],
        "operatingSystem": "linux",
        "osImage": "sandbox",
        "systemUUID": str(uuid.UUID(ident[32:64])),
    }
    info.update(known)
    return info


class _Cluster:
    """One cluster's parts, for stopping them in order."""

    def __init__(self, settings: ClusterSettings, store: Store, server: ApiServer) -> None:
        self.settings = settings
        self.store = store
        self.server = server
        self.manager: Any = None
        self.kubelet: Any = None
        self.proxies: Any = None


def _ensure_postgres_image() -> None:
    from .kubelet.runtime import engine
    from .pgimage import ensure_image

    ensure_image(engine())


class KubeService:
    """The daemon service of the Kubernetes side (``async start/stop``, ``describe``).

    ``workloads=False`` runs API servers only (no Docker): what the API tests use.
    """

    def __init__(self, home: Home, settings: Settings, *, workloads: bool = True) -> None:
        self.home = home
        self.settings = settings
        self.workloads = workloads
        self.kube_dir = Path(home.kube_dir)
        self.ca: CertificateAuthority | None = None
        self.tokens: TokenIssuer | None = None
        self.clusters: list[_Cluster] = []
        self._gke_runner: web.AppRunner | None = None
        self.kubeconfig_path = self.kube_dir / "kubeconfig"
        self.gke_endpoint = f"http://127.0.0.1:{settings.gke_port}"

    async def start(self) -> None:
        # requests (under both the Kubernetes client and the Docker SDK) has import cycles: two threads
        # importing it at once can meet a half-initialised module (ImportError: parse_dict_header).
        # Import it here, before the executor threads below import either client.
        import requests  # noqa: F401

        # The OpenAPI documents take half a second to build: off the loop, while the rest starts.
        documents = asyncio.get_running_loop().run_in_executor(None, openapi.v3_root)
        self.kube_dir.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority(self.kube_dir / "ca")
        self.tokens = TokenIssuer(self.kube_dir, self.settings.token_lifetime_seconds)
        self.tokens.write_adc(f"{self.gke_endpoint}/token")
        if self.workloads and self.settings.clusters:
            # No postgres image can be pulled: build the one the overlays pin, before any kubelet needs it.
            await asyncio.get_running_loop().run_in_executor(None, _ensure_postgres_image)
        for cluster in self.settings.clusters:
            await self._start_cluster(cluster)
        await self._start_gke()
        write_kubeconfig(
            self.kubeconfig_path,
            [(c.settings.name, c.server.url) for c in self.clusters],
            self.ca.cert_pem,
            Path(self.home.path),
            namespace=self.settings.default_namespace or None,
        )
        await documents

    async def _start_cluster(self, cluster: ClusterSettings) -> None:
        assert self.ca is not None and self.tokens is not None
        store = Store(self.kube_dir / cluster.name)
        store.seed(seed_objects(cluster.name, cluster.node_ip))
        hosts = [
            cluster.node_ip,
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "10.96.0.1",
        ]
        server = ApiServer(
            cluster=cluster.name,
            store=store,
            host=cluster.node_ip,
            port=cluster.api_port,
            ssl_context=self.ca.server_context(hosts),
            authenticate=self.tokens.check,
        )
        await server.start()
        parts = _Cluster(cluster, store, server)
        self.clusters.append(parts)
        if self.workloads:
            await self._start_workloads(parts)
        elif store.get(NODES, None, node_name(cluster.name)) is None:
            store.create(NODES, static_node(cluster.name, cluster.node_ip), manager="sandbox")

    async def _start_workloads(self, parts: _Cluster) -> None:
        """Kubelet, controllers and proxies of one cluster (the other helpers' modules)."""
        from .controllers import ControllerManager, Routes
        from .controllers.node import default_node
        from .kubelet import Kubelet
        from .kubelet.runtime import engine
        from .proxy import Proxies

        cluster = parts.settings
        registry = f"127.0.0.1:{self.settings.registry_port}"
        auth = {"username": self.settings.registry_user, "password": self.settings.registry_password}
        kubelet = Kubelet(
            cluster.name,
            node_name(cluster.name),
            cluster.node_ip,
            engine(),
            {registry: auth, f"localhost:{self.settings.registry_port}": auth},
            Path(self.home.path),
        )
        parts.kubelet = kubelet
        parts.server.pod_logs = lambda ns, name, container, tail, previous: kubelet.pod_logs(
            ns, name, container, tail, previous=previous
        )
        parts.server.pod_container = kubelet.running_container
        assert self.ca is not None
        proxies = Proxies(cluster.name, cluster.node_ip, self.ca, ingress_port=self.settings.ingress_port)
        await proxies.start()
        parts.proxies = proxies
        loop = asyncio.get_running_loop()

        def on_routes(routes: Routes) -> None:
            """Called by the service controller from a worker thread; the proxies live on the loop."""
            future = asyncio.run_coroutine_threadsafe(proxies.sync(routes), loop)
            future.add_done_callback(_log_failure)

        node = default_node(node_name(cluster.name), cluster.node_ip, cluster=cluster.name)
        status = node.setdefault("status", {})
        status["nodeInfo"] = node_info(cluster.name, **status.get("nodeInfo", {}))
        manager = ControllerManager(
            cluster.name,
            parts.store,
            kubelet,
            node=node,
            on_routes=on_routes,
        )
        await manager.start()
        parts.manager = manager

    async def _start_gke(self) -> None:
        assert self.ca is not None and self.tokens is not None
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        records = [
            ClusterRecord(
                name=c.settings.name,
                endpoint=f"{c.settings.node_ip}:{c.settings.api_port}",
                ca_pem=self.ca.cert_pem,
                master_version=GIT_VERSION.lstrip("v"),
                node_ip=c.settings.node_ip,
                create_time=now,
            )
            for c in self.clusters
        ]
        api = GkeApi(self.settings.gcp_project, self.settings.gcp_location, records, self.tokens.check)
        # The Container API and the token endpoint get faults and latency as targets of their own.
        app = web.Application(middlewares=[faults.state.middleware(faults.gke_target, faults.google_error)])
        app.router.add_post("/token", self.tokens.handle_token)
        app.router.add_routes(api.routes())
        self._gke_runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._gke_runner.setup()
        runner = self._gke_runner

        def site() -> web.TCPSite:
            return web.TCPSite(runner, "127.0.0.1", self.settings.gke_port)

        await site().start()
        # A refused Container API and a refused token endpoint are the same listener.
        listener = faults.Listener(runner, site)
        faults.state.register("gke", listener)
        faults.state.register("token", listener)

    async def stop(self) -> None:
        if self._gke_runner is not None:
            await self._gke_runner.cleanup()
            self._gke_runner = None
        for parts in reversed(self.clusters):
            await self._stop_cluster(parts)
        self.clusters = []

    async def _stop_cluster(self, parts: _Cluster) -> None:
        loop = asyncio.get_running_loop()
        if parts.manager is not None:
            try:
                await parts.manager.stop()
            except Exception:
                log.exception("stopping the controllers of %s failed", parts.settings.name)
        if parts.proxies is not None:
            try:
                await parts.proxies.stop()
            except Exception:
                log.exception("stopping the proxies of %s failed", parts.settings.name)
        await parts.server.stop()
        if parts.kubelet is not None:
            try:
                await loop.run_in_executor(None, parts.kubelet.cleanup)
            except Exception:
                log.exception("cleaning up the kubelet of %s failed", parts.settings.name)
        parts.store.close()

    def describe(self) -> dict[str, Any]:
        assert self.ca is not None and self.tokens is not None
        return {
            "kube": {
                "kubeconfig": str(self.kubeconfig_path),
                "gke_endpoint": self.gke_endpoint,
                "token_uri": f"{self.gke_endpoint}/token",
                "ca_cert": str(self.ca.cert_path),
                "adc": str(self.tokens.adc_path),
                "project": self.settings.gcp_project,
                "location": self.settings.gcp_location,
                "clusters": {
                    c.settings.name: {
                        "server": c.server.url,
                        "endpoint": f"{c.settings.node_ip}:{c.settings.api_port}",
                        "node_ip": c.settings.node_ip,
                        "node": node_name(c.settings.name),
                    }
                    for c in self.clusters
                },
            },
            "env": {
                "KUBECONFIG": str(self.kubeconfig_path),
                "PIPELINE_GKE_ENDPOINT": self.gke_endpoint,
                "PIPELINE_GKE_PROJECT": self.settings.gcp_project,
                "PIPELINE_GKE_LOCATION": self.settings.gcp_location,
                "SANDBOX_CA_CERT": str(self.ca.cert_path),
                "GOOGLE_APPLICATION_CREDENTIALS": str(self.tokens.adc_path),
                # The pipeline's smoke tests verify the Ingress with the sandbox CA on the sandbox's port.
                "PIPELINE_INGRESS_CA_BUNDLE": str(self.ca.cert_path),
                "PIPELINE_INGRESS_PORT": str(self.settings.ingress_port),
                # Stand-ins for the GitHub environment secrets the pipeline builds the app's Secret from.
                **self.settings.app_secrets,
            },
        }
