"""kube-proxy's NodePorts: TCP listeners on the node IP forwarding to ready pods, round-robin.

:class:`NodePortProxy` opens and closes listeners to match the table ``endpoints.nodeport_table``
computes, and relays each connection with ``relay.py``. Run by ``proxies.py`` on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .endpoints import Endpoint, Listen
from .relay import pipe, reset

# The name the proxies logged under before they became a package, kept for the daemon's log lines.
LOG = logging.getLogger("sandbox.kube.proxy")


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
            reset(writer)
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()
