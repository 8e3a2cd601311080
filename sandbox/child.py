"""The daemon's child services (the registry, the storage emulator): started, waited for, stopped.

Each is a plain process on loopback; "started" means it answers HTTP on its port with the status a
healthy one gives, not merely that the process exists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from . import SandboxError


async def http_status(port: int, path: str) -> bytes | None:
    """The status code ``GET path`` gets from 127.0.0.1:``port`` (``b"200"``), None when nothing listens."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    parts = line.split(b" ")
    return parts[1] if len(parts) > 1 else None


async def wait_answering(
    proc: asyncio.subprocess.Process,
    *,
    name: str,
    port: int,
    path: str,
    healthy: bytes,
    log: Path,
    seconds: float,
    hint: str = "",
) -> None:
    """Return once ``proc`` answers ``healthy`` on ``port``; raise when it exits or stays silent."""
    for _ in range(int(seconds * 10)):
        if proc.returncode is not None:
            raise SandboxError(f"{name} exited at start; see {log}{hint}")
        if await http_status(port, path) == healthy:
            return
        await asyncio.sleep(0.1)
    raise SandboxError(f"{name} did not answer on 127.0.0.1:{port} within {seconds:.0f} s")


async def stop(proc: asyncio.subprocess.Process | None, grace: float = 10) -> None:
    """Terminate ``proc``, killing it when it has not gone within ``grace`` seconds."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()
