"""The daemon's control interface: faults, latency and chaos on a Unix socket only its owner can open.

``<home>/run/control.sock`` (mode 0600) serves small JSON requests that tests and scripts send through
``faultclient.py``; nothing listens on the network, so no other user of the machine can turn faults on.

- ``GET /state``: the fixed latency and the active faults;
- ``PUT /latency`` ``{"ms": 40}``: the fixed delay of every API server, registry and GKE request;
- ``POST /faults`` ``{"target", "mode", "status", "delay_ms", "seconds"}``; ``DELETE /faults[/TARGET]``;
- ``POST /git/refuse`` ``{"seconds"}`` / ``DELETE /git/refuse``: the git remote's ``pre-receive`` hook
  refuses every push (as a protected branch or an outage would);
- ``POST /kill`` ``{"cluster", "namespace", "pod", "container"}``: SIGKILL a pod's running container
  (the kubelet restarts it, as a node's OOM killer would leave it);
- ``POST /pods/delete`` ``{"cluster", "namespace", "name"}``: delete a pod as an evicting node would.

Neighbours: ``faults.py`` (the state), ``daemon.py`` (runs this service last), ``kube/service.py`` (the
clusters' kubelets and stores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from . import faults
from .errors import SandboxError
from .home import Home

log = logging.getLogger("sandbox.control")

HOOK_MARK = "# sandbox fault switch"


def hook_text(until: float | None) -> str:
    """A ``pre-receive`` hook refusing pushes (until the epoch second ``until``, when given)."""
    check = f'[ "$(date +%s)" -lt {int(until)} ] || exit 0\n' if until is not None else ""
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARK}: the remote refuses pushes\n"
        f"{check}"
        'echo "sandbox fault: the remote refuses pushes (pre-receive hook declined)" >&2\n'
        "exit 1\n"
    )


def set_git_refusal(remote: Path, seconds: float | None) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(hook_text(None if seconds is None else time.time() + seconds))
    hook.chmod(0o755)


def clear_git_refusal(remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    if hook.exists() and HOOK_MARK in hook.read_text():
        hook.unlink()


def _number(body: dict[str, Any], key: str, default: float | None = None) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise faults.FaultError(f"{key} must be a number")
    return float(value)


class ControlService:
    """A daemon service (``start``/``stop``/``describe``); ``kube`` is the KubeService, when there is one."""

    def __init__(self, home: Home, kube: Any = None) -> None:
        self.home = home
        self.kube = kube
        self.socket_path = home.run / "control.sock"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/state", self._state)
        app.router.add_put("/latency", self._latency)
        app.router.add_post("/faults", self._set_fault)
        app.router.add_delete("/faults", self._clear_faults)
        app.router.add_delete("/faults/{target}", self._clear_faults)
        app.router.add_post("/git/refuse", self._git_refuse)
        app.router.add_delete("/git/refuse", self._git_allow)
        app.router.add_post("/kill", self._kill)
        app.router.add_post("/pods/delete", self._delete_pod)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self.socket_path.unlink(missing_ok=True)
        # umask, not chmod after the bind: no moment at which another user could connect.
        old = os.umask(0o177)
        try:
            await web.UnixSite(self._runner, str(self.socket_path)).start()
        finally:
            os.umask(old)

    async def stop(self) -> None:
        await faults.state.clear()
        clear_git_refusal(self.home.git_remote)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.socket_path.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        # The fixed latency as it was at start (SANDBOX_LATENCY_MS); GET /state has the current value.
        return {"control": {"socket": str(self.socket_path), "latency_ms": faults.state.latency_ms}}

    @web.middleware
    async def _errors(self, request: web.Request, handler: faults.Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SandboxError as e:
            return web.json_response({"error": str(e)}, status=400)
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": f"bad request: {e}"}, status=400)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise faults.FaultError("the request body must be a JSON object")
        return body

    async def _state(self, request: web.Request) -> web.Response:
        state = faults.state.describe()
        state["git_refuses_pushes"] = (self.home.git_remote / "hooks" / "pre-receive").exists()
        return web.json_response(state)

    async def _latency(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        faults.state.set_latency(int(_number(body, "ms", 0) or 0))
        return await self._state(request)

    async def _set_fault(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        fault = faults.make_fault(
            str(body.get("target", "")),
            str(body.get("mode", "")),
            status=int(_number(body, "status", 503) or 503),
            delay_ms=int(_number(body, "delay_ms", 0) or 0),
            seconds=_number(body, "seconds"),
        )
        await faults.state.set(fault)
        return await self._state(request)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        target = request.match_info.get("target")
        await faults.state.clear(faults.check_target(target) if target else None)
        return await self._state(request)

    async def _git_refuse(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        set_git_refusal(self.home.git_remote, _number(body, "seconds"))
        return await self._state(request)

    async def _git_allow(self, request: web.Request) -> web.Response:
        clear_git_refusal(self.home.git_remote)
        return await self._state(request)

    def _cluster(self, name: str) -> Any:
        for parts in getattr(self.kube, "clusters", []):
            if parts.settings.name == name:
                return parts
        raise faults.FaultError(f"no cluster {name!r} in this sandbox")

    async def _kill(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        parts = self._cluster(str(body["cluster"]))
        if parts.kubelet is None:
            raise faults.FaultError(f"cluster {parts.settings.name} runs no workloads")
        kubelet = parts.kubelet
        namespace, pod = str(body["namespace"]), str(body["pod"])
        container = body.get("container")

        def kill() -> list[str]:
            found = kubelet.runtime.named_containers(namespace, pod, container)
            # The pause container holds the pod's network: killing it is another fault.
            running = [c.id for c in found if c.running and c.kind != "podsandbox"]
            for cid in running:
                kubelet.docker.api.kill(cid)
            return running

        killed = await asyncio.get_running_loop().run_in_executor(None, kill)
        if not killed:
            raise faults.FaultError(f"no running container of pod {namespace}/{pod} to kill")
        log.info("killed %s of %s/%s", killed, namespace, pod)
        return web.json_response({"killed": killed})

    async def _delete_pod(self, request: web.Request) -> web.Response:
        from .kube.store import PODS

        body = await self._body(request)
        parts = self._cluster(str(body["cluster"]))
        namespace, name = str(body["namespace"]), str(body["name"])
        gone = parts.store.delete(PODS, namespace, name)
        if gone is None:
            raise faults.FaultError(f"no pod {namespace}/{name} in {parts.settings.name}")
        return web.json_response({"deleted": f"{namespace}/{name}", "uid": gone["metadata"].get("uid")})
