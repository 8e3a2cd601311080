"""The TCP relay under the NodePort listeners: one direction of a connection copied, or a refusal as RST.

Used by ``nodeport.py``; asyncio streams only, no knowledge of Services.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a connection kube-proxy cannot forward ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a connection until its end, then half-close the other side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close, so request/response protocols see the end of the request
    except (ConnectionError, OSError):
        writer.close()
