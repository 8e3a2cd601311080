"""Fault switches and the fixed latency of the sandbox's cloud stand-ins, as one piece of daemon state.

Tests and scripts turn faults on through the control interface (``controlserver.py``, client in
``faultclient.py``); the services consult :data:`state` on every request, so nothing of the pipeline is
patched: it meets an API server, registry or token endpoint that misbehaves as a real one does.

Targets are ``api:<cluster>`` (one cluster's API server; ``api`` means every cluster), ``registry``,
``gke`` (the Container API stand-in) and ``token`` (the OAuth token endpoint). Modes:

- ``status``: answer every request with ``status`` (503, 500, 401, ...) in the target's own error format;
- ``hang``: accept the request and hold it until the fault ends (a black-holed server: clients time out);
- ``refuse``: close the listener and every open connection (connection refused), reopened at the end;
- ``latency``: add ``delay_ms`` to every request (on top of the fixed latency).

Every fault may last ``seconds`` (then it lifts by itself) or until cleared. The fixed latency
(``SANDBOX_LATENCY_MS`` at start, or the control interface at run time) delays every request of the API
servers, the registry, the Container API and the token endpoint, as the tens of milliseconds between a
laptop and GKE, Docker Hub or Google's OAuth do.

Neighbours: the API server (``kube/apiserver/server.py``), the GKE app (``kube/service.py``) and the
registry proxy (``registryproxy.py``) take :func:`middleware` and register their listeners here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from .errors import SandboxError

log = logging.getLogger("sandbox.faults")

MODES = ("status", "hang", "refuse", "latency")
TARGET_KINDS = ("api", "registry", "gke", "token")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# How a target answers with an error status, in its own format (Kubernetes Status, OAuth error, ...).
ErrorBody = Callable[[int], web.Response]


class FaultError(SandboxError, ValueError):
    """A fault request that cannot be honoured (unknown target or mode, bad numbers)."""


@dataclass(frozen=True)
class Fault:
    target: str
    mode: str
    status: int = 503
    delay_ms: int = 0
    seconds: float | None = None
    # time.monotonic() at which the fault lifts; None: until cleared.
    until: float | None = None

    def active(self, now: float | None = None) -> bool:
        return self.until is None or (now if now is not None else time.monotonic()) < self.until

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        left = None if self.until is None else max(0.0, self.until - time.monotonic())
        data.pop("until")
        data["remaining_seconds"] = None if left is None else round(left, 2)
        return data


def check_target(target: str) -> str:
    kind, _, cluster = target.partition(":")
    if kind not in TARGET_KINDS or (cluster and kind != "api"):
        raise FaultError(f"unknown fault target {target!r}: use api[:CLUSTER], registry, gke or token")
    return target


def make_fault(
    target: str, mode: str, *, status: int = 503, delay_ms: int = 0, seconds: float | None = None
) -> Fault:
    check_target(target)
    if mode not in MODES:
        raise FaultError(f"unknown fault mode {mode!r}: use one of {', '.join(MODES)}")
    if not 400 <= status <= 599:
        raise FaultError(f"fault status {status} is not an HTTP error status (400-599)")
    if delay_ms < 0 or (seconds is not None and seconds <= 0):
        raise FaultError("fault delay_ms must be >= 0 and seconds > 0")
    until = None if seconds is None else time.monotonic() + seconds
    return Fault(target, mode, status, delay_ms, seconds, until)


class Listener:
    """A listening aiohttp site that a ``refuse`` fault closes (with its connections) and reopens."""

    def __init__(self, runner: web.AppRunner, reopen: Callable[[], web.BaseSite]) -> None:
        self.runner = runner
        self.reopen = reopen
        self.closed = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for site in list(self.runner.sites):
            await site.stop()
        server = self.runner.server
        if server is not None:
            # Keep-alive connections would otherwise keep serving: a refused server answers nothing.
            for connection in list(server.connections):
                transport = connection.transport
                if transport is not None:
                    transport.close()

    async def open(self) -> None:
        if not self.closed:
            return
        await self.reopen().start()
        self.closed = False


class FaultState:
    """The daemon's faults and fixed latency; used from the event loop only."""

    def __init__(self) -> None:
        self.latency_ms = 0
        self.faults: dict[str, Fault] = {}
        self.listeners: dict[str, list[Listener]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Bumped on every change, so a held (hanging) request notices a cleared fault at once.
        self._changed = asyncio.Event()

    # -- what the services see --

    def fault_for(self, target: str) -> Fault | None:
        """The fault that applies to ``target`` (``api:staging`` also matches a fault on ``api``)."""
        for key in (target, target.partition(":")[0]):
            fault = self.faults.get(key)
            if fault is not None and fault.active():
                return fault
        return None

    def register(self, target: str, listener: Listener) -> None:
        self.listeners.setdefault(target, []).append(listener)

    def unregister(self, target: str, listener: Listener) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.listeners[target].remove(listener)

    def _listeners_of(self, target: str) -> list[Listener]:
        if target in self.listeners:
            return list(self.listeners[target])
        return [x for key, group in self.listeners.items() if key.partition(":")[0] == target for x in group]

    # -- what the control interface changes --

    async def set(self, fault: Fault) -> None:
        await self.clear(fault.target)
        self.faults[fault.target] = fault
        log.info("fault on: %s", fault.describe())
        if fault.mode == "refuse":
            for listener in self._listeners_of(fault.target):
                await listener.close()
        if fault.seconds is not None:
            loop = asyncio.get_running_loop()
            self._timers[fault.target] = loop.call_later(fault.seconds, self._spawn_expiry, fault)
        self._notify()

    def _spawn_expiry(self, fault: Fault) -> None:
        # Kept until done: the loop holds only weak references to tasks.
        task = asyncio.get_running_loop().create_task(self._expire(fault))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, fault: Fault) -> None:
        if self.faults.get(fault.target) is fault:
            await self.clear(fault.target)

    async def clear(self, target: str | None = None) -> None:
        targets = list(self.faults) if target is None else [target]
        for key in targets:
            fault = self.faults.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            if fault is None:
                continue
            log.info("fault off: %s %s", fault.target, fault.mode)
            if fault.mode == "refuse":
                for listener in self._listeners_of(key):
                    try:
                        await listener.open()
                    except OSError:
                        log.exception("reopening a listener of %s failed", key)
        self._notify()

    def set_latency(self, ms: int) -> None:
        if ms < 0 or ms > 60_000:
            raise FaultError(f"latency {ms} ms is out of range (0-60000)")
        self.latency_ms = ms
        log.info("fixed latency: %d ms", ms)

    def describe(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "faults": [f.describe() for f in self.faults.values() if f.active()],
        }

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _hold(self, target: str, fault: Fault) -> None:
        """Wait until ``fault`` on ``target`` is over (cleared, replaced or expired)."""
        while self.fault_for(target) is fault:
            changed = self._changed
            remaining = None if fault.until is None else max(0.0, fault.until - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # -- the middleware every stand-in runs --

    def middleware(self, target: str | Callable[[web.Request], str], error: ErrorBody) -> Any:
        """An aiohttp middleware applying the fixed latency and the faults of ``target``.

        ``target`` may be a function of the request (the GKE app serves ``gke`` and ``token``).
        """

        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            name = target(request) if callable(target) else target
            delay = self.latency_ms
            fault = self.fault_for(name)
            if fault is not None and fault.mode == "latency":
                delay += fault.delay_ms
            if delay:
                await asyncio.sleep(delay / 1000)
            fault = self.fault_for(name)
            if fault is not None and fault.mode == "hang":
                await self._hold(name, fault)
            elif fault is not None and fault.mode == "status":
                return error(fault.status)
            elif fault is not None and fault.mode == "refuse":
                # Accepted just before the listener closed: drop it as a stopped server would.
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError("refused by a sandbox fault")
            return await handler(request)

        return faults_middleware


REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def kube_error(status: int) -> web.Response:
    """A Kubernetes ``Status`` as an API server (or the load balancer before it) answers."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"sandbox fault: the API server answers {status}",
        "reason": REASONS.get(status, "InternalError"),
        "code": status,
    }
    return web.json_response(body, status=status)


def google_error(status: int) -> web.Response:
    """Google's JSON error format (Container API and OAuth endpoint alike)."""
    body = {
        "error": {
            "code": status,
            "message": f"sandbox fault: the service answers {status}",
            "status": GOOGLE_STATUS.get(status, "INTERNAL"),
        }
    }
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def registry_error(status: int) -> web.Response:
    """The distribution spec's error body; a 401 carries the Basic challenge a real registry sends."""
    code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}.get(
        status, "UNAVAILABLE"
    )
    body = {"errors": [{"code": code, "message": f"sandbox fault: the registry answers {status}"}]}
    headers = {"Docker-Distribution-Api-Version": "registry/2.0"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sandbox-registry"'
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def gke_target(request: web.Request) -> str:
    return "token" if request.path.rstrip("/") == "/token" else "gke"


# One daemon, one state: the services and the control interface of this process share it.
state = FaultState()
