"""NodePort and Ingress proxies against real upstream HTTP servers on loopback, with real TLS (trustme CAs).

Pods are stood in for by ``http.server`` instances on 127.0.0.1; the proxies listen on other loopback
addresses (127.0.0.0/8 is all local on Linux), as the sandbox's node IPs do.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import trustme

from sandbox.kube.ca import CertificateAuthority
from sandbox.kube.proxy import (
    IngressPath,
    IngressProxy,
    IngressRule,
    IngressTable,
    NodePortProxy,
    Proxies,
    ProxyError,
    ingress_table,
    nodeport_table,
    ready_endpoints,
)

NODE_IP = "127.0.0.7"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Upstream:
    """A pod stand-in answering JSON with its name, the path and the headers it received."""

    def __init__(self, name: str) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _answer(self, body_in: bytes) -> None:
                body = json.dumps(
                    {
                        "name": upstream.name,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body_in.decode(),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.name = name
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    a, b = Upstream("a"), Upstream("b")
    yield a, b
    a.close()
    b.close()


def ready_pod(name: str, ip: str, port: int, namespace: str = "ns1", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def service(
    name: str, port: int = 80, target: int | str = "http", node_port: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
        "type": "ClusterIP",
    }
    if node_port is not None:
        spec["type"] = "NodePort"
        spec["ports"][0]["nodePort"] = node_port
    return {"metadata": {"name": name, "namespace": "ns1"}, "spec": spec}


# --- desired state ------------------------------------------------------------------------------------


def test_ready_endpoints_keep_ready_selected_pods_and_resolve_named_ports() -> None:
    pods = [
        ready_pod("ok", "10.0.0.1", 8080),
        ready_pod("unready", "10.0.0.2", 8080, ready=False),
        ready_pod("elsewhere", "10.0.0.3", 8080, namespace="other"),
        {
            **ready_pod("leaving", "10.0.0.4", 8080),
            "metadata": {
                "name": "leaving",
                "namespace": "ns1",
                "labels": {"app": "web"},
                "deletionTimestamp": "2024-01-01T00:00:00Z",
            },
        },
        ready_pod("ok2", "10.0.0.5", 9090),
    ]
    svc = service("web", node_port=30100)
    assert ready_endpoints(svc, svc["spec"]["ports"][0], pods) == [("10.0.0.1", 8080), ("10.0.0.5", 9090)]
    assert nodeport_table([svc, service("internal")], pods, NODE_IP) == {
        (NODE_IP, 30100): [("10.0.0.1", 8080), ("10.0.0.5", 9090)]
    }


def test_ingress_routing_follows_kubernetes_precedence() -> None:
    def p(path: str, kind: str, name: str) -> IngressPath:
        return IngressPath(path, kind, (("10.0.0.1", 1),), name)

    table = IngressTable(
        rules=(
            IngressRule(
                "app.example.test",
                (p("/", "Prefix", "root"), p("/api", "Prefix", "api"), p("/api", "Exact", "exact")),
            ),
            IngressRule("*.example.test", (p("/*", "ImplementationSpecific", "wild"),)),
            IngressRule(
                "",
                (
                    p("/static/*", "ImplementationSpecific", "static"),
                    p("/health", "ImplementationSpecific", "health"),
                ),
            ),
        )
    )

    def backend(host: str, path: str) -> str | None:
        target = table.route(host, path)
        return target.backend if target else None

    assert backend("app.example.test", "/api") == "exact"
    assert backend("app.example.test", "/api/v1") == "api"
    assert backend("app.example.test", "/apiv1") == "root"  # prefixes match whole path elements
    assert backend("other.example.test", "/anything") == "wild"
    assert backend("a.b.example.test", "/") is None and backend("a.b.example.test", "/static/x") == "static"
    assert backend("x.test", "/health") == "health" and backend("x.test", "/health/deep") is None


# --- NodePort -----------------------------------------------------------------------------------------


def get(url: str) -> str:
    return requests.get(url, timeout=5).json()["name"]  # type: ignore[no-any-return]


def test_nodeport_round_robins_to_ready_endpoints_and_refuses_without_any(
    upstreams: tuple[Upstream, Upstream],
) -> None:
    a, b = upstreams
    port = free_port(NODE_IP)
    dead = free_port("127.0.0.1")  # nothing listens there: a pod that died since the last sync

    async def scenario() -> None:
        proxy = NodePortProxy()
        await proxy.start()
        try:
            await proxy.sync(
                {(NODE_IP, port): [("127.0.0.1", a.port), ("127.0.0.1", b.port), ("127.0.0.1", dead)]}
            )
            names = [await asyncio.to_thread(get, f"http://{NODE_IP}:{port}/") for _ in range(6)]
            assert set(names) == {"a", "b"}  # the dead endpoint is skipped, the others take turns
            assert proxy.describe()["nodePorts"][f"{NODE_IP}:{port}"]

            await proxy.sync({(NODE_IP, port): [("127.0.0.1", dead)]})
            with pytest.raises(requests.ConnectionError):
                await asyncio.to_thread(get, f"http://{NODE_IP}:{port}/")

            await proxy.sync({(NODE_IP, port): []})  # no ready endpoint: nothing listens
            with pytest.raises(ConnectionRefusedError):
                await asyncio.to_thread(socket.create_connection, (NODE_IP, port), 2)
            await proxy.sync({(NODE_IP, port): [("127.0.0.1", b.port)]})
            assert await asyncio.to_thread(get, f"http://{NODE_IP}:{port}/x") == "b"
        finally:
            await proxy.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((NODE_IP, port), 2)

    asyncio.run(scenario())


# --- Ingress ------------------------------------------------------------------------------------------


class SNIConnection(http.client.HTTPSConnection):
    """Connects to an address while sending another name as SNI and Host, as ``curl --resolve`` does."""

    def __init__(self, address: tuple[str, int], host: str, context: ssl.SSLContext) -> None:
        super().__init__(host, address[1], context=context, timeout=5)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection(self.address, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def https(
    address: tuple[str, int], host: str, path: str, ca: trustme.CA, method: str = "GET"
) -> tuple[int, str]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    conn = SNIConnection(address, host, context)
    try:
        conn.request(
            method,
            path,
            body=b"ping" if method == "POST" else None,
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_ingress_serves_tls_per_host_and_routes_to_ready_endpoints(
    upstreams: tuple[Upstream, Upstream],
) -> None:
    a, b = upstreams
    ca, secret_ca = trustme.CA(), trustme.CA()
    issued: list[str] = []

    def cert_for(host: str) -> tuple[bytes, bytes]:
        issued.append(host)
        cert = ca.issue_cert(host)
        return b"".join(p.bytes() for p in cert.cert_chain_pems), cert.private_key_pem.bytes()

    secret_cert = secret_ca.issue_cert("secure.example.test")
    secret = {
        "metadata": {"name": "secure-tls", "namespace": "ns1"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(b"".join(p.bytes() for p in secret_cert.cert_chain_pems)).decode(),
            "tls.key": base64.b64encode(secret_cert.private_key_pem.bytes()).decode(),
        },
    }

    def backend(name: str, number: int = 80) -> dict[str, Any]:
        return {"service": {"name": name, "port": {"number": number}}}

    ingress = {
        "metadata": {"name": "web", "namespace": "ns1"},
        "spec": {
            "tls": [{"hosts": ["secure.example.test"], "secretName": "secure-tls"}],
            "rules": [
                {
                    "host": "app.example.test",
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend("web")},
                            {"path": "/down", "pathType": "Prefix", "backend": backend("empty")},
                        ]
                    },
                },
                {
                    "host": "secure.example.test",
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend("web")},
                        ]
                    },
                },
            ],
        },
    }
    services = [
        service("web", target=a.port),
        {**service("empty"), "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}},
    ]
    pods = [ready_pod("web-1", "127.0.0.1", a.port)]
    table = ingress_table([ingress], services, pods, [secret])
    address = ("127.0.0.8", free_port("127.0.0.8"))

    async def scenario() -> None:
        proxy = IngressProxy(address[0], address[1], cert_for)
        await proxy.start()
        try:
            await proxy.sync(table)
            status, body = await asyncio.to_thread(https, address, "app.example.test", "/hello?x=1", ca)
            assert status == 200
            seen = json.loads(body)
            assert seen["name"] == "a" and seen["path"] == "/hello?x=1"
            assert seen["headers"]["Host"] == f"app.example.test:{address[1]}"  # passed through as sent
            assert seen["headers"]["X-Forwarded-Proto"] == "https"
            assert seen["headers"]["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
            status, body = await asyncio.to_thread(https, address, "app.example.test", "/submit", ca, "POST")
            assert status == 200 and json.loads(body)["body"] == "ping"

            # The Secret's certificate for its host (verifiable with the Secret's CA only).
            status, body = await asyncio.to_thread(https, address, "secure.example.test", "/", secret_ca)
            assert status == 200 and json.loads(body)["name"] == "a"
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(https, address, "secure.example.test", "/", ca)

            assert await asyncio.to_thread(https, address, "app.example.test", "/down", ca) == (
                503,
                "no healthy upstream for ns1/empty:80\n",
            )
            assert await asyncio.to_thread(https, address, "nobody.example.test", "/", ca) == (
                404,
                "default backend - 404",
            )
            # A new table (the pod moved) takes effect on the next request.
            moved = ingress_table(
                [ingress],
                [service("web", target=b.port), *services[1:]],
                [ready_pod("web-2", "127.0.0.1", b.port)],
            )
            await proxy.sync(moved)
            status, body = await asyncio.to_thread(https, address, "app.example.test", "/", ca)
            assert json.loads(body)["name"] == "b"
        finally:
            await proxy.stop()
        assert "app.example.test" in issued and "secure.example.test" not in issued

    asyncio.run(scenario())


def test_cluster_proxies_serve_the_sandbox_ca_and_report_a_busy_port(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    a, _ = upstreams
    authority = CertificateAuthority(tmp_path / "ca")
    node_ip = "127.0.0.9"
    ingress_port, node_port = free_port(node_ip), free_port(node_ip)
    web = IngressPath("/", "Prefix", (("127.0.0.1", a.port),), "ns1/web:80")
    routes = SimpleNamespace(
        node_ports={(node_ip, node_port): [("127.0.0.1", a.port)]},
        ingress=IngressTable(rules=(IngressRule("app.example.test", (web,)),)),
    )

    async def scenario() -> None:
        proxies = Proxies("staging", node_ip, authority, ingress_port=ingress_port)
        await proxies.start()
        try:
            await proxies.sync(routes)
            context = ssl.create_default_context(cadata=authority.cert_pem.decode())

            def fetch() -> Any:
                conn = SNIConnection((node_ip, ingress_port), "app.example.test", context)
                try:
                    conn.request("GET", "/")
                    return json.loads(conn.getresponse().read())
                finally:
                    conn.close()

            assert (await asyncio.to_thread(fetch))["name"] == "a"
            assert await asyncio.to_thread(get, f"http://{node_ip}:{node_port}/") == "a"
            busy = Proxies("prod", node_ip, authority, ingress_port=ingress_port)
            with pytest.raises(ProxyError, match=f"listening for the Ingress on {node_ip}:{ingress_port}"):
                await busy.start()
        finally:
            await proxies.stop()

    asyncio.run(scenario())


def test_ingress_tries_the_next_endpoint_when_a_pod_is_gone(upstreams: tuple[Upstream, Upstream]) -> None:
    """A pod that left between the endpoint update and the request costs a retry, not a 502 (GET and
    POST alike when the connection never opened), as nginx-ingress's proxy_next_upstream does."""
    a, _ = upstreams
    ca = trustme.CA()

    def cert_for(host: str) -> tuple[bytes, bytes]:
        cert = ca.issue_cert(host)
        return b"".join(p.bytes() for p in cert.cert_chain_pems), cert.private_key_pem.bytes()

    gone = free_port("127.0.0.1")  # nothing listens there: the pod that just stopped
    ingress = {
        "metadata": {"name": "web", "namespace": "ns1"},
        "spec": {
            "rules": [
                {
                    "host": "app.example.test",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    pods = [ready_pod("web-1", "127.0.0.1", a.port), ready_pod("web-2", "127.0.0.2", gone)]
    pods[1]["spec"]["containers"][0]["ports"][0]["containerPort"] = gone
    table = ingress_table([ingress], [service("web")], pods)
    address = ("127.0.0.8", free_port("127.0.0.8"))

    async def scenario() -> None:
        proxy = IngressProxy(address[0], address[1], cert_for)
        await proxy.start()
        try:
            await proxy.sync(table)
            for method in ("GET", "POST", "GET", "POST"):
                status, body = await asyncio.to_thread(https, address, "app.example.test", "/", ca, method)
                assert status == 200 and json.loads(body)["name"] == "a", body
        finally:
            await proxy.stop()

    asyncio.run(scenario())
