"""Pod ``portforward`` as kubectl 1.31+ speaks it: SPDY/3.1 streams tunnelled through a WebSocket.

kubectl (``KUBECTL_PORT_FORWARD_WEBSOCKETS``, on by default since 1.31) upgrades
``GET .../pods/<name>/portforward`` to a WebSocket with the subprotocol ``SPDY/3.1+portforward.k8s.io``
and then runs the ordinary SPDY port-forward protocol over it: the WebSocket's binary messages are a byte
stream of SPDY frames. For each local connection the client opens two streams (``SYN_STREAM`` with the
headers ``streamtype: error|data``, ``port`` and ``requestid``); we answer each with ``SYN_REPLY``, connect
the data stream to the pod's IP and port and copy both ways (a ``FIN`` on either side half-closes the
other), and write a failure to connect on the error stream, as the kubelet does. ``PING`` is answered.
Header blocks are zlib streams with SPDY/3's preset dictionary (:data:`DICTIONARY`, built from its
definition and checked against its published SHA-256). Like moby/spdystream, the peer kubectl uses, no
flow control windows are enforced. The plain SPDY upgrade (kubectl's fallback) is not served.

Neighbours: ``server.py`` routes the ``portforward`` subresource here; the pod's IP comes from its status
(the proxies reach pods the same way); :class:`~.watch.Streams` keeps open sessions so ``stop()`` ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import struct
import zlib
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from ..store import BadRequest, Store, not_found
from .target import Target
from .watch import Streams

log = logging.getLogger("sandbox.kube.apiserver")

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY = 1, 2, 3, 6, 7
FLAG_FIN = 0x01
CHUNK = 32 * 1024

# SPDY/3 section 2.6.10.1: length-prefixed names, then a raw tail.
_WORDS = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
assert hashlib.sha256(DICTIONARY).hexdigest() == DICTIONARY_SHA256, "SPDY/3 dictionary"


def control_frame(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


def header_block(headers: dict[str, str]) -> bytes:
    out = struct.pack(">I", len(headers))
    for name, value in headers.items():
        out += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    return out


def parse_headers(block: bytes) -> dict[str, str]:
    (count,) = struct.unpack_from(">I", block)
    at, found = 4, {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, at)
        name = block[at + 4 : at + 4 + n].decode()
        at += 4 + n
        (n,) = struct.unpack_from(">I", block, at)
        found[name] = block[at + 4 : at + 4 + n].decode()
        at += 4 + n
    return found


@dataclass
class _Stream:
    id: int
    kind: str
    request: str
    port: int
    writer: asyncio.StreamWriter | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)


class Session:
    """One kubectl port-forward connection: SPDY frames in WebSocket messages, both ways."""

    def __init__(self, ws: web.WebSocketResponse, pod_ip: str) -> None:
        self.ws = ws
        self.pod_ip = pod_ip
        self.buffer = bytearray()
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
        self.streams: dict[int, _Stream] = {}
        self.errors: dict[str, int] = {}  # requestid -> error stream id
        self.tasks: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_bytes(frame)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                self.buffer.extend(msg.data)
                while (frame := self._next_frame()) is not None:
                    await self._handle(*frame)
        finally:
            for task in self.tasks:
                task.cancel()
            for stream in self.streams.values():
                if stream.writer is not None:
                    stream.writer.close()

    def _next_frame(self) -> tuple[bool, int, int, bytes] | None:
        if len(self.buffer) < 8:
            return None
        first, second = struct.unpack_from(">II", self.buffer)
        length = second & 0xFFFFFF
        if len(self.buffer) < 8 + length:
            return None
        payload = bytes(self.buffer[8 : 8 + length])
        del self.buffer[: 8 + length]
        control = bool(first & 0x80000000)
        kind = first & 0xFFFF if control else first & 0x7FFFFFFF
        return control, kind, second >> 24, payload

    async def _handle(self, control: bool, kind: int, flags: int, payload: bytes) -> None:
        if not control:
            await self._data(kind, flags, payload)
        elif kind == SYN_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            headers = parse_headers(self.inflate.decompress(payload[10:]))
            await self._open(stream_id & 0x7FFFFFFF, headers)
        elif kind == PING:
            await self.send(control_frame(PING, payload))
        elif kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            stream = self.streams.pop(stream_id & 0x7FFFFFFF, None)
            if stream is not None and stream.writer is not None:
                stream.writer.close()
        elif kind == GOAWAY:
            await self.ws.close()
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (no flow control, as spdystream).

    async def _open(self, stream_id: int, headers: dict[str, str]) -> None:
        block = self.deflate.compress(header_block({})) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        await self.send(control_frame(SYN_REPLY, struct.pack(">I", stream_id) + block))
        kind, request = headers.get("streamtype", ""), headers.get("requestid", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        stream = _Stream(stream_id, kind, request, port)
        self.streams[stream_id] = stream
        if kind == "error":
            self.errors[request] = stream_id
        elif kind == "data":
            task = asyncio.create_task(self._pipe(stream))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.kind != "data":
            return
        await stream.connected.wait()
        if stream.writer is None:
            return
        with contextlib.suppress(ConnectionError):
            if payload:
                stream.writer.write(payload)
                await stream.writer.drain()
            if flags & FLAG_FIN and stream.writer.can_write_eof():
                stream.writer.write_eof()

    async def _pipe(self, stream: _Stream) -> None:
        try:
            reader, stream.writer = await asyncio.wait_for(
                asyncio.open_connection(self.pod_ip, stream.port), timeout=10
            )
        except (OSError, TimeoutError) as e:
            message = f"error forwarding port {stream.port} to pod: dial tcp {self.pod_ip}:{stream.port}: {e}"
            error = self.errors.get(stream.request)
            if error is not None:
                await self.send(data_frame(error, message.encode(), FLAG_FIN))
            await self.send(data_frame(stream.id, b"", FLAG_FIN))
            return
        finally:
            stream.connected.set()
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                await self.send(data_frame(stream.id, chunk))
        await self.send(data_frame(stream.id, b"", FLAG_FIN))
        error = self.errors.get(stream.request)
        if error is not None:
            await self.send(data_frame(error, b"", FLAG_FIN))


async def pod_portforward(
    request: web.Request, t: Target, store: Store, streams: Streams
) -> web.StreamResponse:
    assert t.name is not None and t.namespace is not None
    pod = store.get(t.gvr, t.namespace, t.name)
    if pod is None:
        raise not_found(t.info.gvr, t.name)
    ip = (pod.get("status") or {}).get("podIP")
    if (pod.get("status") or {}).get("phase") != "Running" or not ip:
        raise BadRequest(f"unable to upgrade connection: pod {t.name} is not running")
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise BadRequest(f"portforward is served over WebSocket only (subprotocol {PROTOCOL})")
    await ws.prepare(request)
    with streams.track():
        try:
            await Session(ws, ip).run()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await ws.close()
    return ws
