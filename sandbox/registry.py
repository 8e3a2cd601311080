"""The Docker Hub stand-in: Debian's ``docker-registry`` with htpasswd authentication on loopback.

Started as a child of the daemon (``daemon.py``); its data survives ``down``/``up`` under the home.
Docker treats 127.0.0.0/8 registries as insecure, so plain HTTP works without touching the engine's
configuration. The registry itself listens on a private loopback port; the published address is
``registryproxy.py``'s, which passes every request on and is where faults and latency are injected.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import SandboxError, child
from .home import Home, Settings, free_port
from .registryproxy import RegistryProxy

BINARY = "docker-registry"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: sandbox-registry
    path: {htpasswd}
"""


def write_config(home: Home, settings: Settings, port: int | None = None) -> Path:
    """Write the registry's config and htpasswd (bcrypt, as the registry requires)."""
    if shutil.which("htpasswd") is None:
        raise SandboxError("htpasswd is missing: install apache2-utils (scripts/test and scripts/demo do)")
    directory = home.registry_dir
    (directory / "data").mkdir(parents=True, exist_ok=True)
    htpasswd = directory / "htpasswd"
    # -i reads the password from stdin so it never shows up in the process list.
    proc = subprocess.run(
        ["htpasswd", "-iBn", settings.registry_user],
        input=settings.registry_password,
        capture_output=True,
        text=True,
        check=True,
    )
    htpasswd.write_text(proc.stdout)
    htpasswd.chmod(0o600)
    config = directory / "config.yml"
    port = port or settings.registry_port
    config.write_text(CONFIG.format(data=directory / "data", port=port, htpasswd=htpasswd))
    return config


class RegistryService:
    def __init__(self, home: Home, settings: Settings) -> None:
        self.home = home
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None
        self.proxy: RegistryProxy | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.registry_port}"

    async def start(self) -> None:
        if shutil.which(BINARY) is None:
            raise SandboxError(f"{BINARY} is missing: install Debian's docker-registry package")
        backend = free_port()
        config = write_config(self.home, self.settings, backend)
        log = (self.home.run / "registry.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(BINARY, "serve", str(config), stdout=log, stderr=log)
        # 401 is the healthy answer of a registry that requires authentication.
        await child.wait_answering(
            self.proc, name="the registry", port=backend, path="/v2/", healthy=b"401",
            log=self.home.run / "registry.log", seconds=10,
        )  # fmt: skip
        self.proxy = RegistryProxy("127.0.0.1", self.settings.registry_port, backend)
        await self.proxy.start()

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        await child.stop(self.proc)

    def describe(self) -> dict[str, Any]:
        return {
            "registry": {"address": self.address, "user": self.settings.registry_user},
            "env": {
                "PIPELINE_REGISTRY": self.address,
                "DOCKERHUB_USERNAME": self.settings.registry_user,
                "DOCKERHUB_TOKEN": self.settings.registry_password,
            },
        }
