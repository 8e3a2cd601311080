"""The registry's front door: a reverse proxy on the registry's address, in front of ``docker-registry``.

Debian's ``docker-registry`` knows nothing of faults or latency, so the sandbox listens on the registry's
published address itself and passes every request on to the registry on a private loopback port,
streaming bodies both ways (layer uploads and pulls are not buffered). The ``Host`` header is passed as
it came, so the upload ``Location`` URLs the registry makes point back at this proxy. The fault
middleware (``faults.py``) sits in front: fixed latency, 503/401 answers, hangs and refused connections,
as Docker Hub under trouble would show them to the Docker engine and to the pipeline.

Neighbours: ``registry.py`` starts the registry behind it and this proxy in front; ``faults.py`` holds
the switches.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from . import faults

log = logging.getLogger("sandbox.registryproxy")

# RFC 9110's hop-by-hop fields: they describe one connection, never the proxied message.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
CHUNK = 256 * 1024


class RegistryProxy:
    """Listens on ``host:port`` and forwards to ``http://127.0.0.1:<backend_port>``."""

    def __init__(self, host: str, port: int, backend_port: int) -> None:
        self.host = host
        self.port = port
        self.backend = f"http://127.0.0.1:{backend_port}"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._listener: faults.Listener | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            # The registry's own answers are passed on, redirects included (blob pulls may redirect).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            connector=aiohttp.TCPConnector(limit=64),
        )
        app = web.Application(
            client_max_size=0, middlewares=[faults.state.middleware("registry", faults.registry_error)]
        )
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        runner = self._runner
        await web.TCPSite(runner, self.host, self.port).start()
        self._listener = faults.Listener(runner, lambda: web.TCPSite(runner, self.host, self.port))
        faults.state.register("registry", self._listener)

    async def stop(self) -> None:
        if self._listener is not None:
            faults.state.unregister("registry", self._listener)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        # A multidict: the engine sends one Accept header per manifest type it takes.
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        data = request.content if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                self.backend + request.raw_path,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        except aiohttp.ClientError as e:
            log.warning("registry backend: %s", e)
            return faults.registry_error(502)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response
