"""The sandbox's kube-proxy and Ingress controller: NodePort TCP listeners and one HTTPS Ingress listener.

Both run on the daemon's asyncio loop (no threads) and are reconfigured at runtime by the controllers
(``controllers/``), which compute the desired tables from the store with the pure helpers below:

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
Service has no ready endpoint. Pods are reached on the IPs the kubelet (``kubelet.py``) reports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import ipaddress
import itertools
import logging
import os
import socket
import ssl
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sandbox import SandboxError

if TYPE_CHECKING:
    from aiohttp import ClientSession, web

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

LOG = logging.getLogger(__name__)


class ProxyError(SandboxError):
    """A proxy cannot listen where the settings say."""


Endpoint = tuple[str, int]
Listen = tuple[str, int]
CertFor = Callable[[str], tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection and never forwarded.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)


# --- desired state from API objects -------------------------------------------------------------------


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


@dataclass(frozen=True)
class IngressPath:
    """One ``rules[].http.paths[]`` entry with its backend resolved to ready endpoints."""

    path: str
    path_type: str  # "Prefix", "Exact" or "ImplementationSpecific" (GCE's: a trailing "/*" globs)
    endpoints: tuple[Endpoint, ...]
    backend: str = ""  # "namespace/service:port", for messages

    def matches(self, request_path: str) -> int | None:
        """How specific the match is (longer wins), or None when the path does not match."""
        if self.path_type == "Exact":
            return len(self.path) if request_path == self.path else None
        if self.path_type == "Prefix":
            rule = [p for p in self.path.split("/") if p]
            parts = [p for p in request_path.split("/") if p]
            return len(self.path.rstrip("/")) if parts[: len(rule)] == rule else None
        # ImplementationSpecific as GKE's load balancer reads it: "/*" globs, anything else is exact.
        if self.path in ("", "/*"):
            return 0
        if self.path.endswith("/*"):
            stem = self.path[:-2]
            return len(stem) if request_path == stem or request_path.startswith(stem + "/") else None
        return len(self.path) if request_path == self.path else None


@dataclass(frozen=True)
class IngressRule:
    host: str  # "" for every host, "*.example.com" for one level of subdomains
    paths: tuple[IngressPath, ...]

    def host_rank(self, host: str) -> int | None:
        """2 for an exact host, 1 for a wildcard, 0 for a rule without host; None when it does not apply."""
        if not self.host:
            return 0
        if self.host == host:
            return 2
        if self.host.startswith("*."):
            head, _, rest = host.partition(".")
            return 1 if head and rest == self.host[2:] else None
        return None


@dataclass(frozen=True)
class IngressTable:
    rules: tuple[IngressRule, ...] = ()
    # host -> (certificate chain PEM, key PEM) from the TLS Secrets Ingresses name.
    tls: Mapping[str, tuple[bytes, bytes]] = field(default_factory=dict)
    default_backend: IngressPath | None = None

    def route(self, host: str, path: str) -> IngressPath | None:
        """The path serving a request, by Kubernetes' precedence (host, then longest path, Exact first)."""
        ranked = [(rank, rule) for rule in self.rules if (rank := rule.host_rank(host)) is not None]
        if not ranked:
            return self.default_backend
        best_rank = max(rank for rank, _ in ranked)
        best: tuple[int, int, IngressPath] | None = None
        for rank, rule in ranked:
            if rank != best_rank:
                continue
            for candidate in rule.paths:
                score = candidate.matches(path)
                if score is None:
                    continue
                key = (score, 1 if candidate.path_type == "Exact" else 0, candidate)
                if best is None or key[:2] > best[:2]:
                    best = key
        return best[2] if best else self.default_backend


def _backend_path(
    namespace: str,
    backend: Mapping[str, Any],
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    pods: list[Mapping[str, Any]],
    path: str = "/",
    path_type: str = "Prefix",
) -> IngressPath:
    ref = backend.get("service") or {}
    name = ref.get("name", "")
    wanted = ref.get("port") or {}
    service = services.get((namespace, name))
    label = f"{namespace}/{name}:{wanted.get('number') or wanted.get('name')}"
    if service is None:
        return IngressPath(path, path_type, (), label)
    for port in (service.get("spec") or {}).get("ports") or []:
        if ("number" in wanted and port.get("port") == wanted["number"]) or (
            "name" in wanted and port.get("name") == wanted["name"]
        ):
            return IngressPath(path, path_type, tuple(ready_endpoints(service, port, pods)), label)
    return IngressPath(path, path_type, (), label)


def ingress_table(
    ingresses: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]] = (),
) -> IngressTable:
    """Every Ingress of the cluster merged into one table (all are served, whatever their class)."""
    pods = list(pods)
    by_name = {
        ((s.get("metadata") or {}).get("namespace", "default"), (s.get("metadata") or {}).get("name", "")): s
        for s in services
    }
    secret_by_name = {
        ((s.get("metadata") or {}).get("namespace", "default"), (s.get("metadata") or {}).get("name", "")): s
        for s in secrets
    }
    rules: list[IngressRule] = []
    tls: dict[str, tuple[bytes, bytes]] = {}
    default: IngressPath | None = None
    ordered = sorted(ingresses, key=lambda i: (i.get("metadata") or {}).get("creationTimestamp") or "")
    for ingress in ordered:
        meta = ingress.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        namespace = meta.get("namespace", "default")
        spec = ingress.get("spec") or {}
        if spec.get("defaultBackend") and default is None:
            default = _backend_path(namespace, spec["defaultBackend"], by_name, pods)
        for rule in spec.get("rules") or []:
            paths = tuple(
                _backend_path(
                    namespace,
                    p.get("backend") or {},
                    by_name,
                    pods,
                    p.get("path") or "/",
                    p.get("pathType") or "ImplementationSpecific",
                )
                for p in (rule.get("http") or {}).get("paths") or []
            )
            rules.append(IngressRule((rule.get("host") or "").lower(), paths))
        for entry in spec.get("tls") or []:
            secret = secret_by_name.get((namespace, entry.get("secretName") or ""))
            data = (secret or {}).get("data") or {}
            if "tls.crt" in data and "tls.key" in data:
                pair = (base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
                for host in entry.get("hosts") or []:
                    tls.setdefault(host.lower(), pair)
    return IngressTable(tuple(rules), tls, default)


# --- NodePort -----------------------------------------------------------------------------------------


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a connection kube-proxy cannot forward ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close, so request/response protocols see the end of the request
    except (ConnectionError, OSError):
        writer.close()


class _Listener:
    def __init__(self, listen: Listen, endpoints: list[Endpoint]) -> None:
        self.listen = listen
        self.endpoints = endpoints
        self.counter = itertools.count()
        self.server: asyncio.Server | None = None

    def candidates(self) -> list[Endpoint]:
        if not self.endpoints:
            return []
        start = next(self.counter) % len(self.endpoints)
        return self.endpoints[start:] + self.endpoints[:start]


class NodePortProxy:
    """TCP listeners on node IPs forwarding to ready pods, round-robin; asyncio, one per cluster or shared.

    Service interface of the daemon (``start``/``stop``/``describe``) plus :meth:`sync`, which takes the
    whole desired table each time (``nodeport_table`` output) and opens/closes listeners to match.
    """

    def __init__(self, connect_timeout: float = 3.0) -> None:
        self.connect_timeout = connect_timeout
        self._listeners: dict[Listen, _Listener] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self.errors: dict[Listen, str] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing listens until :meth:`sync` says so."""

    async def sync(self, desired: Mapping[Listen, Sequence[Endpoint]]) -> None:
        """Listen on every ``(ip, port)`` that has ready endpoints; close the others."""
        async with self._lock:
            for listen in list(self._listeners):
                if not desired.get(listen):
                    await self._close(listen)
            for listen, endpoints in desired.items():
                endpoints = sorted(set(endpoints))
                listener = self._listeners.get(listen)
                if not endpoints:
                    continue
                if listener is not None:
                    listener.endpoints = endpoints
                    continue
                listener = _Listener(listen, endpoints)
                try:
                    listener.server = await asyncio.start_server(
                        functools.partial(self._accept, listener),
                        listen[0],
                        listen[1],
                        reuse_address=True,
                    )
                except OSError as e:
                    message = f"listening on {listen[0]}:{listen[1]}: {e.strerror or e}"
                    if self.errors.get(listen) != message:
                        LOG.error("NodePort %s", message)
                    self.errors[listen] = message
                    continue
                self.errors.pop(listen, None)
                self._listeners[listen] = listener

    async def _close(self, listen: Listen) -> None:
        listener = self._listeners.pop(listen)
        if listener.server is not None:
            listener.server.close()
            await listener.server.wait_closed()

    async def stop(self) -> None:
        """Close every listener and every forwarded connection."""
        async with self._lock:
            for listen in list(self._listeners):
                await self._close(listen)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        return {
            "nodePorts": {
                f"{ip}:{port}": [f"{a}:{b}" for a, b in lst.endpoints]
                for (ip, port), lst in self._listeners.items()
            },
            "nodePortErrors": {f"{ip}:{port}": message for (ip, port), message in self.errors.items()},
        }

    @property
    def listening(self) -> list[Listen]:
        return sorted(self._listeners)

    async def _accept(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:  # so stop() can end connections that are still open
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        await self._forward(listener, reader, writer)

    async def _forward(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for host, port in listener.candidates():
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
                break
            except (OSError, TimeoutError) as e:
                LOG.debug("NodePort %s:%s -> %s:%s: %s", *listener.listen, host, port, e)
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()


# --- Ingress ------------------------------------------------------------------------------------------


def _context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl reads certificates from files only: a private temporary folder, removed at once.
    with tempfile.TemporaryDirectory(prefix="sandbox-ingress-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class IngressProxy:
    """The HTTPS listener of one cluster's Ingresses on ``node_ip:port``; asyncio (aiohttp server + client).

    ``cert_for(host) -> (certificate chain PEM, key PEM)`` issues a certificate for an SNI name no TLS
    Secret covers (``lambda h: ca.issue([h])`` with ``ca.py``'s CA); certificates are cached per host and
    per Secret content. Clients that send no SNI get the certificate for the node IP.
    """

    def __init__(
        self, node_ip: str, port: int = 443, cert_for: CertFor | None = None, *, timeout: float = 60
    ) -> None:
        self.node_ip = node_ip
        self.port = port
        self.cert_for = cert_for
        self.timeout = timeout
        self.table = IngressTable()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._counters: dict[str, itertools.count[int]] = {}
        self._runner: web.ServerRunner | None = None
        self._session: ClientSession | None = None
        self._default: ssl.SSLContext | None = None

    # Service interface -------------------------------------------------------------------------------

    async def start(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, web

        self._default = self._issued(self.node_ip)
        self._default.sni_callback = self._sni
        self._session = ClientSession(
            timeout=ClientTimeout(total=self.timeout, connect=5),
            auto_decompress=False,
            # Forward what the client sent, not aiohttp's own defaults.
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )
        server = web.Server(self._handle)
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.node_ip, self.port, ssl_context=self._default, reuse_address=True
        )
        try:
            await site.start()
        except OSError as e:
            await self.stop()
            hint = " (ports below 1024 need root)" if self.port < 1024 else ""
            raise ProxyError(
                f"listening for the Ingress on {self.node_ip}:{self.port}: {e.strerror or e}{hint}. "
                "Choose another port with SANDBOX_INGRESS_PORT before the first `invoke sandbox.up`, "
                "or set ingress_port in the home's settings.json"
            ) from e

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        hosts = sorted({rule.host or "*" for rule in self.table.rules})
        return {"ingress": {"address": f"{self.node_ip}:{self.port}", "hosts": hosts}}

    async def sync(self, table: IngressTable) -> None:
        """Serve ``table`` from the next request on (``ingress_table`` output)."""
        self.table = table

    # TLS ---------------------------------------------------------------------------------------------

    def _issued(self, host: str) -> ssl.SSLContext:
        key = f"ca:{host}"
        ctx = self._contexts.get(key)
        if ctx is None:
            if self.cert_for is None:
                raise ValueError(f"no certificate for {host}: IngressProxy needs cert_for")
            ctx = _context(*self.cert_for(host))
            self._contexts[key] = ctx
        return ctx

    def _context_for(self, host: str) -> ssl.SSLContext | None:
        pair = self.table.tls.get(host)
        if pair is None and "." in host:
            pair = self.table.tls.get("*." + host.split(".", 1)[1])
        if pair is not None:
            key = "secret:" + hashlib.sha256(pair[0] + pair[1]).hexdigest()
            if key not in self._contexts:
                try:
                    self._contexts[key] = _context(*pair)
                except (ssl.SSLError, ValueError) as e:
                    # A broken Secret falls back to the CA's certificate, as a controller keeps serving.
                    LOG.warning("TLS Secret for %s cannot be used: %s", host, e)
                    return self._issued(host) if self.cert_for else None
            return self._contexts[key]
        if self.cert_for is None:
            return None
        return self._issued(host)

    def _sni(self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        if not server_name or _is_ip(server_name):
            return
        try:
            ctx = self._context_for(server_name.lower())
        except Exception:  # never fail the handshake of another host because one issuance failed
            LOG.exception("certificate for %s", server_name)
            return
        if ctx is not None:
            sslobj.context = ctx

    # HTTP --------------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import ClientError, web

        host = (request.host or "").lower()
        if host.startswith("["):
            host = host[1 : host.find("]")]
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        path = request.rel_url.path
        target = self.table.route(host, path)
        if target is None:
            return web.Response(status=404, text="default backend - 404")
        if not target.endpoints:
            return web.Response(status=503, text=f"no healthy upstream for {target.backend}\n")
        counter = self._counters.setdefault(target.backend, itertools.count())
        ip, port = target.endpoints[next(counter) % len(target.endpoints)]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.remote or ""
        previous = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = request.host or ""
        headers["X-Forwarded-Port"] = str(self.port)
        headers.pop("Content-Length", None)
        body = await request.read()
        assert self._session is not None
        url = f"http://{ip}:{port}{request.raw_path}"
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        response.headers.add(name, value)
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(65536):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (ClientError, TimeoutError, OSError) as e:
            LOG.info("ingress %s%s -> %s:%s: %s", host, path, ip, port, e)
            return web.Response(status=502, text=f"upstream connect error for {target.backend}\n")


# --- one cluster's proxies as a daemon service ---------------------------------------------------------


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
