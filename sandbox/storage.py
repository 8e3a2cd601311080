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

from . import SandboxError
from .home import Home, Settings


async def _answers(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return line.split(b" ")[1:2] == [b"200"]


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
        for _ in range(150):
            if self.proc.returncode is not None:
                raise SandboxError(
                    f"the storage emulator exited at start; see {self.home.run / 'storage.log'} "
                    "(pip install gcp-storage-emulator)"
                )
            if await _answers(self.port):
                return
            await asyncio.sleep(0.1)
        raise SandboxError(f"the storage emulator did not answer on {self.address} within 15 s")

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def describe(self) -> dict[str, Any]:
        return {
            "storage": {"address": self.address},
            "env": {"PIPELINE_STORAGE_ENDPOINT": f"http://{self.address}"},
        }
