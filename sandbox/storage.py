"""The Cloud Storage stand-in: ``gcp-storage-emulator`` (PyPI) on loopback, its data under the home.

Started as a child of the daemon (``daemon.py``), as the registry is; its objects live in
``<home>/storage/``, so database backups survive ``down``/``up`` (``--purge`` deletes them with the
rest). The pipeline reaches it as it reaches the GKE stand-in: ``PIPELINE_STORAGE_ENDPOINT`` is the
client library's own ``api_endpoint``, and the emulator accepts the sandbox's access tokens as any.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from . import child
from .home import Home, Settings


class StorageService:
    def __init__(self, home: Home, settings: Settings) -> None:
        self.home = home
        self.port = settings.storage_port
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        data = self.home.path / "storage"
        data.mkdir(parents=True, exist_ok=True)
        log = (self.home.run / "storage.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gcp_storage_emulator", "--data-dir", str(data),
            "start", "--host", "127.0.0.1", "--port", str(self.port), "--quiet",
            stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await child.wait_answering(
            self.proc, name="the storage emulator", port=self.port, path="/", healthy=b"200",
            log=self.home.run / "storage.log", seconds=15, hint=" (pip install gcp-storage-emulator)",
        )  # fmt: skip

    async def stop(self) -> None:
        await child.stop(self.proc)

    def describe(self) -> dict[str, Any]:
        return {
            "storage": {"address": self.address},
            "env": {"PIPELINE_STORAGE_ENDPOINT": f"http://{self.address}"},
        }
