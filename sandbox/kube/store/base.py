"""The store's state and the primitives every write goes through: the objects, the cluster-wide
resourceVersion counter, the watch fan-out and the debounced persistence.

:class:`StoreBase` is the root of the store's classes: ``deletion.py`` adds the deletion semantics on top
of it, ``core.py`` the reads, creates and updates (the :class:`~.core.Store` everyone uses). A change is
committed by :meth:`StoreBase._commit` or :meth:`StoreBase._remove`: a new resourceVersion, then one
event to every subscriber (``watch.py``) and into the history, then a scheduled write
(``persistence.py``). Callers hold ``_lock``.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections import deque
from pathlib import Path
from typing import Any

from ..discovery import GVR
from .kinds import Key, ObjectMap
from .persistence import StateFile, snapshot
from .watch import Event, History, Subscription, replay

# How many changes a watch may lag behind and still resume (kube-apiserver's watch cache holds ~100/type).
HISTORY = 4000


class StoreBase:
    """One cluster's objects in memory, with their history and subscribers; ``state_dir`` None keeps
    nothing on disk (tests)."""

    def __init__(self, state_dir: Path | None = None, *, history: int = HISTORY) -> None:
        self._lock = threading.RLock()
        self._objects: ObjectMap = {}
        self._rv = 0
        self._history: History = deque(maxlen=history)
        self._subs: list[Subscription] = []
        self._state = StateFile(state_dir / "objects.json") if state_dir else None
        if self._state is not None:
            loaded = self._state.load()
            if loaded is not None:
                self._rv, self._objects = loaded

    # -- committing a change --

    def _commit(self, event_type: str, gvr: GVR, key: Key, obj: dict[str, Any]) -> None:
        """Store ``obj`` under a new resourceVersion (set in it) and tell every subscriber."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects.setdefault(gvr, {})[key] = obj
        self._emit(event_type, gvr, obj)

    def _remove(self, gvr: GVR, key: Key, last: dict[str, Any]) -> None:
        del self._objects[gvr][key]
        gone = copy.deepcopy(last)
        self._rv += 1
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._emit("DELETED", gvr, gone)

    def _emit(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        shared = copy.deepcopy(obj)
        event: Event = (event_type, gvr, shared)
        self._history.append((self._rv, event))
        for sub in list(self._subs):
            sub._deliver(event)
        if self._state is not None:
            self._state.schedule(self.flush)

    # -- watching --

    def subscribe(self, gvr: GVR | None = None, since: str | None = None) -> Subscription:
        """Changes from now on (of one ``gvr`` if given), after replaying those newer than ``since``.

        Must be called from the event loop that will read the queue. Raises Gone when ``since`` is
        older than the history kept.
        """
        loop = asyncio.get_running_loop()
        sub = Subscription(self._unsubscribe, loop, gvr)
        with self._lock:
            replay(sub, self._history, since, self._rv)
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    # -- persistence --

    def flush(self) -> None:
        """Write the state now (atomically) if it changed since the last write."""
        if self._state is None:
            return
        with self._lock:
            if not self._state.take_dirty():
                return
            self._state.write(snapshot(self._rv, self._objects))
