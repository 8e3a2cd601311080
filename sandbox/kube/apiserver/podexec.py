"""Pod ``exec`` over WebSocket, as kubectl (1.30+) and the Python client speak it.

The client upgrades ``GET .../pods/<name>/exec?command=...&stdin=true&stdout=true&stderr=true`` to a
WebSocket with one of the channel subprotocols. Every binary message starts with its channel byte:
0 stdin, 1 stdout, 2 stderr, 3 the error channel (one ``Status`` when the command ends, which carries the
exit code as kube-apiserver reports it), 4 terminal resize. ``v5.channel.k8s.io`` adds channel 255, with
which the client closes a stream (``[255, 0]``: stdin has ended), so ``kubectl cp`` and ``psql < file``
see their end of input. The command runs in the pod's container through ``docker exec -i``, the same
verb kubelet's dockershim used; stdin, stdout, stderr and the exit code pass through unchanged.

What is not served: a terminal (``tty=true`` runs without one, as with ``kubectl exec`` from a pipe), the
SPDY upgrade (kubectl falls back to it only when the WebSocket upgrade is refused).

Neighbours: ``server.py`` routes the ``exec`` subresource here; ``service.py`` hands in
:data:`PodContainer` (the kubelet's running container of a pod); :class:`~.watch.Streams` keeps every
open session so that the server's ``stop()`` ends them, and their processes, too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from ..store import BadRequest, Store, not_found
from .subresources import container_of
from .target import Target
from .watch import Streams

log = logging.getLogger("sandbox.kube.apiserver")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 32 * 1024

# (namespace, pod, container) -> the Docker id of its running container, or None.
PodContainer = Callable[[str, str, str], str | None]


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The error channel's ``Status`` for an exit code, word for word as kube-apiserver sends it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _flags(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() in ("1", "true")


async def pod_exec(
    request: web.Request, t: Target, store: Store, pod_container: PodContainer | None, streams: Streams
) -> web.StreamResponse:
    assert t.name is not None and t.namespace is not None
    command = request.query.getall("command", [])
    if not command:
        raise BadRequest("you must specify at least 1 command")
    pod = store.get(t.gvr, t.namespace, t.name)
    if pod is None:
        raise not_found(t.info.gvr, t.name)
    container = container_of(t, pod, request.query.get("container"))
    loop = asyncio.get_running_loop()
    cid = None
    if pod_container is not None:
        cid = await loop.run_in_executor(None, pod_container, t.namespace, t.name, container)
    if cid is None:
        raise BadRequest(f"unable to upgrade connection: container {container} not found in pod {t.name}")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise BadRequest("exec is served over WebSocket only (a channel.k8s.io subprotocol)")
    await ws.prepare(request)
    with streams.track():
        try:
            await _session(ws, cid, command, request.query)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await ws.close()
    return ws


async def _session(ws: web.WebSocketResponse, cid: str, command: list[str], query: Mapping[str, str]) -> None:
    stdin = _flags(query, "stdin", False)
    stdout = _flags(query, "stdout", True)
    stderr = _flags(query, "stderr", True)
    docker = shutil.which("docker") or "docker"
    proc = await asyncio.create_subprocess_exec(
        docker, "exec", *(["-i"] if stdin else []), cid, *command,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    out = _pump(proc.stdout, ws, STDOUT if stdout else None)
    err = _pump(proc.stderr, ws, STDERR if stderr else None)
    output = asyncio.create_task(_outputs(out, err))
    feeder = asyncio.create_task(_feed(ws, proc))
    try:
        done, _ = await asyncio.wait([output, feeder], return_when=asyncio.FIRST_COMPLETED)
        # The client leaving (or a send failing) ends the session: nobody is left to read the result.
        if output not in done or output.exception() is not None:
            return
        code = await proc.wait()
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
    finally:
        for task in (output, feeder):
            task.cancel()
        for task in (output, feeder):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _outputs(*pumps: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*pumps)


async def _pump(stream: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int | None) -> None:
    while data := await stream.read(CHUNK):
        if channel is not None and not ws.closed:
            await ws.send_bytes(bytes([channel]) + data)


async def _feed(ws: web.WebSocketResponse, proc: asyncio.subprocess.Process) -> None:
    """The client's messages: stdin data, its end (v5's close of channel 0), resizes (ignored)."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == STDIN and proc.stdin is not None and data:
            # The command may exit without reading all of its input, as `head` does.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                proc.stdin.write(data)
                await proc.stdin.drain()
        elif channel == CLOSE and data[:1] == bytes([STDIN]) and proc.stdin is not None:
            proc.stdin.close()
