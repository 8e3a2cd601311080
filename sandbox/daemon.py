"""The sandbox daemon: one asyncio process that runs every stand-in service of one home.

``control.up`` starts it detached (``python -m sandbox serve --home DIR``) and waits for ``ready.json``,
which merges each service's ``describe()``; ``control.down`` sends SIGTERM, on which every service is
stopped in reverse order, so nothing it made (containers, networks, listeners) outlives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from typing import Any, Protocol

from . import faults
from .controlserver import ControlService
from .home import Home, Settings
from .registry import RegistryService
from .storage import StorageService

log = logging.getLogger("sandbox")


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def describe(self) -> dict[str, Any]: ...


def build_services(home: Home, settings: Settings) -> list[Service]:
    services: list[Service] = [RegistryService(home, settings)]
    if settings.storage_port:
        services.append(StorageService(home, settings))
    kube: Service | None = None
    if settings.clusters:
        # SANDBOX_CLUSTERS="" at the first `up`: registry and git only (fast tests of build and bump).
        try:
            # The Kubernetes side is optional so that part one of the sandbox runs on its own.
            from .kube.service import KubeService
        except ImportError:
            pass
        else:
            kube = KubeService(home, settings)
            services.append(kube)
    # Last, so that it only answers once everything it can break is there.
    services.append(ControlService(home, kube))
    return services


def merge(descriptions: list[dict[str, Any]]) -> dict[str, Any]:
    ready: dict[str, Any] = {"pid": os.getpid(), "env": {}}
    for d in descriptions:
        for key, value in d.items():
            if key == "env":
                ready["env"].update(value)
            else:
                ready[key] = value
    return ready


def _write_ready(home: Home, ready: dict[str, Any]) -> None:
    tmp = home.ready_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(ready, f, indent=2)
    tmp.replace(home.ready_file)


async def serve(home: Home) -> None:
    settings = home.ensure_settings()
    # A run-time knob, not a setting: each `up` may choose it (scripts/bench --latency-ms).
    faults.state.set_latency(int(os.environ.get("SANDBOX_LATENCY_MS") or 0))
    services = build_services(home, settings)
    started: list[Service] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in services:
            await service.start()
            started.append(service)
        ready = merge([s.describe() for s in started])
        # The git remote is a folder, not a service, but the pipeline finds it the same way.
        ready["env"]["PIPELINE_GITOPS_REMOTE"] = str(home.git_remote)
        _write_ready(home, ready)
        log.info("sandbox ready")
        await stop.wait()
    finally:
        home.ready_file.unlink(missing_ok=True)
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        log.info("sandbox stopped")


def main(home: Home) -> None:
    home.run.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    home.pid_file.write_text(str(os.getpid()))
    try:
        asyncio.run(serve(home))
    finally:
        home.pid_file.unlink(missing_ok=True)
