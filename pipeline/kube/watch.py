"""Watch streams that outlive connections, tokens and compaction: the resourceVersion bookkeeping.

A :class:`WatchStream` iterates the :class:`WatchEvent` of matching objects until its deadline. It asks
the server to end each stream after a short window and reopens it from the last resourceVersion it saw
(bookmarks included), so every reopen carries a fresh token and proves the connection alive; a stream
that breaks is reopened the same way, a 401 once more after re-authenticating, and a 410 Gone (the
version was compacted away) by re-listing and reporting each object as MODIFIED. Consecutive failures
beyond :data:`WATCH_RECONNECTS` raise. :meth:`WatchStream.stop` ends it from another thread.

Neighbours: ``kube.client`` creates streams (``Kube.watch``) and lends them its list call for re-listing;
``rollout`` consumes them in threads. It opens streams through ``kube.session`` and translates broken
ones with ``kube.errors``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..base import Obj
from ..errors import KubeAuthError, KubeError, KubeGone, KubeUnreachable
from .discovery import Resource
from .errors import connection_error, is_connection_error, one_line
from .session import ApiSession

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

log = logging.getLogger(__name__)

# A watch asks the server to end the stream after this long and reopens it: each reopen carries a fresh
# token and proves the connection is alive (a silently dead TCP connection would otherwise hang us).
WATCH_WINDOW_SECONDS = 60
# Consecutive failed watch (re)connects before the cluster counts as unreachable.
WATCH_RECONNECTS = 5


@dataclass(frozen=True)
class WatchEvent:
    # ADDED, MODIFIED or DELETED. After a 410 the stream re-lists and reports each object as MODIFIED.
    type: str
    object: Obj


@dataclass(frozen=True)
class Selection:
    """Which objects of a kind a watch follows."""

    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


# The current matching objects and the list's resourceVersion (``Kube.list_resource``, bound).
Relist = Callable[[], tuple[list[Obj], str]]


class WatchStream:
    """An iterator of :class:`WatchEvent` that reconnects as needed; :meth:`stop` ends it from any thread."""

    def __init__(
        self,
        session: ApiSession,
        resource: Resource,
        selection: Selection,
        relist: Relist,
        *,
        deadline: float,
        resource_version: str | None,
        doing: str,
        window: int = WATCH_WINDOW_SECONDS,
    ) -> None:
        self._session = session
        self._resource = resource
        self._selection = selection
        self._list = relist
        self._deadline = deadline
        self._window = window
        self._rv = resource_version
        self._doing = doing
        self._stopped = threading.Event()
        self._response: BaseHTTPResponse | None = None
        self._lock = threading.Lock()
        self._failures = 0  # consecutive failed opens or broken streams
        self._auth_failures = 0  # 401s since the last event: a fresh token did not help twice -> give up
        self._events = self._run()

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> WatchEvent:
        return next(self._events)

    @property
    def resource_version(self) -> str | None:
        return self._rv

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            # Unblocks a read in progress in another thread (urllib3 >= 2.3); best effort, as the
            # stream is being abandoned anyway.
            with contextlib.suppress(Exception):
                response.shutdown()

    def _relist(self) -> list[WatchEvent]:
        items, rv = self._list()
        self._rv = rv
        return [WatchEvent("MODIFIED", item) for item in items]

    def _open(self, window: int) -> BaseHTTPResponse:
        query: list[tuple[str, str | int]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", window),
        ]
        if self._rv:
            query.append(("resourceVersion", self._rv))
        if self._selection.label_selector:
            query.append(("labelSelector", self._selection.label_selector))
        if self._selection.field_selector:
            query.append(("fieldSelector", self._selection.field_selector))
        resource = self._resource
        return self._session.stream(
            resource.path(self._selection.namespace if resource.namespaced else None),
            query,
            doing=f"watching {resource.plural}",
            verb="watch",
            resource=resource.plural,
            # Read timeout beyond the server's own window: only a dead connection hits it.
            timeout=(10, window + 15),
        )

    def _open_failed(self, e: KubeAuthError | KubeUnreachable) -> None:
        """After a failed open: re-authenticate or back off, or raise ``e`` when that no longer helps."""
        if isinstance(e, KubeAuthError):
            self._auth_failures += 1
            if self._auth_failures > 2:
                raise e
            self._session.reauthenticate()
            return
        self._failures += 1
        if self._failures > WATCH_RECONNECTS:
            raise e
        self._stopped.wait(min(0.5 * 2**self._failures, 5.0))

    def _run(self) -> Iterator[WatchEvent]:
        if self._rv is None:
            # No starting point: the current state first, as ADDED events, then changes from there.
            for event in self._relist():
                yield WatchEvent("ADDED", event.object)
        while not self._stopped.is_set():
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return
            window = max(1, min(self._window, int(remaining + 0.999)))
            try:
                response = self._open(window)
            except (KubeAuthError, KubeUnreachable) as e:
                self._open_failed(e)
                continue
            except KubeGone:
                yield from self._relist()
                continue
            self._failures = 0
            with self._lock:
                self._response = response
            if self._stopped.is_set():  # stopped while opening: stop() could not see this response
                response.release_conn()
                return
            try:
                yield from self._read(response)
            except Exception as e:
                if self._stopped.is_set():
                    return
                if not is_connection_error(e):
                    raise
                # A stream cut short (read timeout, server restart): reopen from the last version.
                self._failures += 1
                if self._failures > WATCH_RECONNECTS:
                    raise connection_error(e, self._doing, self._session.server) from e
                log.debug("%s: stream broke (%s); reconnecting", self._doing, type(e).__name__)
            finally:
                with self._lock:
                    self._response = None
                response.release_conn()

    def _read(self, response: BaseHTTPResponse) -> Iterator[WatchEvent]:
        """The events of one open stream, until it ends, the watch stops, or the stream must be reopened."""
        for line in _lines(response):
            if self._stopped.is_set():
                return
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    yield from self._relist()
                else:
                    self._refused(obj)
                return
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._rv = rv
            self._auth_failures = 0
            if kind == "BOOKMARK":
                continue
            yield WatchEvent(str(kind), obj)

    def _refused(self, status: Obj) -> None:
        """An ERROR event other than 410: re-authenticate after a 401 (twice at most), else raise."""
        if status.get("code") != 401:
            raise KubeError(f"{self._doing}: the watch failed ({one_line(status.get('message', ''))})")
        self._auth_failures += 1
        if self._auth_failures > 2:
            raise KubeAuthError(
                f"{self._doing}: the API server refused our credentials (401)", self._session.auth_hint
            )
        self._session.reauthenticate()


def _lines(response: BaseHTTPResponse) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")
