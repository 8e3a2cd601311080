"""Watch fan-out: subscriptions that deliver the store's changes into asyncio queues, and the replay of
a bounded history so that a watch from a recent resourceVersion catches up (an older one gets 410 Gone).

The store (``base.py``) keeps the history and the subscribers and calls :func:`replay` when one
subscribes; the API server's watch handler (``apiserver/``) and the controller manager
(``controllers/manager.py``) read the queues.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..discovery import GVR
from .errors import BadRequest, Gone

Event = tuple[str, GVR, dict[str, Any]]
History = deque[tuple[int, Event]]  # (resourceVersion after the change, event), oldest first


class Subscription:
    """Every change of the store after (or replayed from) a resourceVersion, in an asyncio queue.

    ``queue`` yields ``(event_type, gvr, obj)`` with event_type ADDED, MODIFIED or DELETED; ``obj`` is
    shared between subscribers and must not be mutated. ``close()`` stops delivery.
    """

    def __init__(
        self,
        unsubscribe: Callable[[Subscription], None],
        loop: asyncio.AbstractEventLoop,
        gvr: GVR | None,
    ) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._unsubscribe = unsubscribe
        self._loop = loop
        self._gvr = gvr
        self._thread = threading.get_ident()
        self.closed = False

    def _deliver(self, event: Event) -> None:
        if self.closed or (self._gvr is not None and event[1] != self._gvr):
            return
        if threading.get_ident() == self._thread:
            self.queue.put_nowait(event)
            return
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.closed = True

    def close(self) -> None:
        self.closed = True
        self._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay(sub: Subscription, history: History, since: str | None, current_rv: int) -> None:
    """Deliver to ``sub`` the events newer than ``since`` (nothing for None, "" or "0").

    Raises BadRequest for a resourceVersion that is not a number, Gone when it is older than the history.
    """
    if since in (None, "", "0"):
        return
    try:
        since_rv = int(str(since))
    except ValueError:
        raise BadRequest(f"invalid resource version {since!r}") from None
    oldest = history[0][0] if history else current_rv + 1
    if since_rv < current_rv and since_rv < oldest - 1:
        raise Gone(f"too old resource version: {since_rv} ({oldest - 1})")
    for rv, event in history:
        if rv > since_rv:
            sub._deliver(event)
