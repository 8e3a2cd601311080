"""Watch streaming: chunked JSON lines of ``{"type", "object"}`` events, as ``kubectl get -w`` reads them.

A watch starts from a resourceVersion (410 Expired when the store's history no longer has it) or with the
current objects as ADDED events (``sendInitialEvents`` ends them with an ``initial-events-end``
bookmark), filters by namespace, name, label and field selectors (an object that stops matching is sent
as DELETED), sends BOOKMARK events every :data:`BOOKMARK_SECONDS` when asked, and ends after
``timeoutSeconds`` (30 to 60 minutes when not given, as kube-apiserver). :class:`Streams` keeps every
long-lived response (watches and log follows) so that the server's ``stop()`` ends them.

Neighbours: ``server.py`` calls :func:`watch`; ``subresources.py`` registers log follows in
:class:`Streams`; it reads the store's subscriptions (``store/``) and prints Tables (``tables.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from ..store import Gone, Matcher, Store, Subscription, parse_field_selector, parse_label_selector
from .events import event_selector
from .negotiation import JSON, table_content_type, truthy, wants_table
from .tables import to_table
from .target import Target

log = logging.getLogger("sandbox.kube.apiserver")

BOOKMARK_SECONDS = 30.0


class Streams:
    """The long-lived responses being served (watches, log follows), which ``close()`` ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Register the current task as a stream for the duration of the block."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)

    def close(self) -> None:
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()


def _bookmark(t: Target, rv: str, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": t.info.kind, "apiVersion": t.info.api_version, "metadata": meta}


class _Watch:
    """One watch request: its options, the objects the client sees, and the response it writes to."""

    def __init__(self, request: web.Request, t: Target, store: Store) -> None:
        q = request.query
        self.t, self.store = t, store
        self.rv = q.get("resourceVersion")
        self.send_initial = truthy(q.get("sendInitialEvents"))
        self.initial = self.send_initial or self.rv in (None, "", "0")
        field_selector = q.get("fieldSelector")
        if t.info.group == "events.k8s.io":
            field_selector = event_selector(field_selector)
        if t.name is not None:
            extra = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{extra}" if field_selector else extra
        self.labels: Matcher = parse_label_selector(q.get("labelSelector"))
        self.fields: Matcher = parse_field_selector(field_selector)
        self.timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else random.uniform(1800, 3600)
        self.bookmarks = truthy(q.get("allowWatchBookmarks"))
        self.table = wants_table(request)
        self.include = q.get("includeObject", "PartialObjectMetadata")
        self.visible: set[tuple[str, str]] = set()
        self.response = web.StreamResponse(status=200)
        self.response.content_type = JSON if not self.table else table_content_type(self.table)
        self.response.enable_chunked_encoding()

    async def send(self, event_type: str, obj: dict[str, Any]) -> None:
        if self.table and event_type not in ("ERROR", "BOOKMARK"):
            obj = to_table(
                self.t.info, [obj], obj["metadata"].get("resourceVersion", ""), self.table, self.include
            )
        line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
        await self.response.write(line.encode())

    async def send_initial_events(self) -> int:
        """The current objects as ADDED (and the end bookmark); the resourceVersion they are as of."""
        items, list_rv = self.store.list(self.t.gvr, self.t.namespace)
        for item in items:
            if self.labels(item) and self.fields(item):
                self.visible.add((item["metadata"].get("namespace", ""), item["metadata"]["name"]))
                await self.send("ADDED", self.t.view(item))
        if self.send_initial:
            await self.send("BOOKMARK", _bookmark(self.t, str(int(list_rv)), initial_end=True))
        return int(list_rv)

    async def forward(self, event_type: str, obj: dict[str, Any], last_rv: int) -> None:
        """One change of the store, as the client should see it (or not at all)."""
        meta = obj["metadata"]
        obj_rv = int(meta.get("resourceVersion", 0))
        if obj_rv <= last_rv and self.initial:
            return
        if self.t.namespace and meta.get("namespace") != self.t.namespace:
            return
        key = (meta.get("namespace", ""), meta["name"])
        matches = self.labels(obj) and self.fields(obj)
        if event_type == "DELETED":
            if matches or key in self.visible:
                self.visible.discard(key)
                await self.send("DELETED", self.t.view(obj))
            return
        if matches:
            if key not in self.visible and event_type == "MODIFIED" and self.initial:
                event_type = "ADDED"
            self.visible.add(key)
            await self.send(event_type, self.t.view(obj))
        elif key in self.visible:
            self.visible.discard(key)
            await self.send("DELETED", self.t.view(obj))

    async def run(self, request: web.Request, sub: Subscription, streams: Streams) -> None:
        await self.response.prepare(request)
        last_rv = int(self.store.resource_version)
        if self.initial:
            last_rv = await self.send_initial_events()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not streams.closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                event_type, _, obj = await asyncio.wait_for(
                    sub.queue.get(), timeout=min(remaining, BOOKMARK_SECONDS)
                )
            except TimeoutError:
                if self.bookmarks and loop.time() < deadline:
                    await self.send("BOOKMARK", _bookmark(self.t, self.store.resource_version))
                continue
            await self.forward(event_type, obj, last_rv)
        await self.response.write_eof()


async def watch(request: web.Request, t: Target, store: Store, streams: Streams) -> web.StreamResponse:
    """Serve a watch of ``t`` until its timeout, the client going, or the server stopping."""
    w = _Watch(request, t, store)
    try:
        sub = store.subscribe(t.gvr, since=None if w.initial else w.rv)
    except Gone as e:
        await w.response.prepare(request)
        await w.send("ERROR", e.status())
        await w.response.write_eof()
        return w.response
    with streams.track():
        try:
            await w.run(request, sub, streams)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:  # aiohttp's ClientConnectionResetError and friends: the client went away
            if "closing" not in str(e).lower() and "reset" not in str(e).lower():
                log.exception("watch of %s failed", t.info.qualified)
        finally:
            sub.close()
    return w.response
