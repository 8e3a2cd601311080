"""The Ingress controller's data plane: one HTTPS listener per cluster, SNI certificates, HTTP forwarding.

:class:`IngressProxy` presents, per SNI name, the certificate of a TLS Secret (from the table) or one
issued by the sandbox CA, routes each request with ``routing.py``'s :class:`IngressTable` and forwards it
to a ready pod (aiohttp server and client). Run by ``proxies.py`` on the daemon's loop.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import SandboxError

from .routing import IngressTable

if TYPE_CHECKING:
    from aiohttp import ClientSession, web

# The name the proxies logged under before they became a package, kept for the daemon's log lines.
LOG = logging.getLogger("sandbox.kube.proxy")


class ProxyError(SandboxError):
    """A proxy cannot listen where the settings say."""


CertFor = Callable[[str], tuple[bytes, bytes]]

# How many endpoints one request may try, and which methods may be sent again (nginx-ingress's defaults).
NEXT_UPSTREAM_TRIES = 3
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

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
        from aiohttp import ClientConnectorError, ClientError, web

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
        start = next(counter)
        # nginx-ingress's proxy_next_upstream (error, timeout; 3 tries): a pod that went away between the
        # endpoint update and this request (or closed a kept-alive connection) costs a retry, not a 502.
        tries = [target.endpoints[(start + i) % len(target.endpoints)] for i in range(NEXT_UPSTREAM_TRIES)]
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
        for attempt, (ip, port) in enumerate(tries, 1):
            url = f"http://{ip}:{port}{request.raw_path}"
            prepared = False
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
                    prepared = True
                    async for chunk in upstream.content.iter_chunked(65536):
                        await response.write(chunk)
                    await response.write_eof()
                    return response
            except (ClientError, TimeoutError, OSError) as e:
                LOG.info("ingress %s%s -> %s:%s (try %d): %s", host, path, ip, port, attempt, e)
                # Once the answer has started it cannot be taken back; before that, an idempotent
                # request (or one whose connection never opened) goes to the next endpoint.
                retry = not prepared and (request.method in IDEMPOTENT or isinstance(e, ClientConnectorError))
                if not retry:
                    break
        return web.Response(status=502, text=f"upstream connect error for {target.backend}\n")
