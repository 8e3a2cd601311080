"""The store's state on disk: ``<home>/kube/<cluster>/objects.json``, written atomically and debounced.

Every change schedules a write :data:`SAVE_DELAY_SECONDS` later, so a burst of changes costs one write;
``flush`` (the store's, in ``core.py``) writes at once. The file holds the resourceVersion counter and
every object, so a restarted daemon carries on where it stopped (watches from before the restart get
410 Gone, as after an etcd compaction). Used by ``base.py`` (loading, scheduling) and ``core.py``
(flushing, closing).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .kinds import ObjectMap

SAVE_DELAY_SECONDS = 0.3


class StateFile:
    """One cluster's ``objects.json``: what was loaded, and whether a change still waits to be written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._timer: threading.Timer | None = None
        self._dirty = False

    def load(self) -> tuple[int, ObjectMap] | None:
        """The resourceVersion and the objects written last time; None when there is no file yet."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        objects: ObjectMap = {}
        for entry in data.get("objects", []):
            gvr = tuple(entry["gvr"])
            obj = entry["object"]
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            objects.setdefault((gvr[0], gvr[1], gvr[2]), {})[key] = obj
        return int(data.get("resourceVersion", 0)), objects

    def schedule(self, flush: Callable[[], None]) -> None:
        """Note a change; ``flush`` runs :data:`SAVE_DELAY_SECONDS` after the first unwritten one."""
        self._dirty = True
        if self._timer is None:
            self._timer = threading.Timer(SAVE_DELAY_SECONDS, flush)
            self._timer.daemon = True
            self._timer.start()

    def take_dirty(self) -> bool:
        """Whether a change waits to be written, forgetting it (and the pending timer) from now on."""
        self._timer = None
        dirty, self._dirty = self._dirty, False
        return dirty

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def write(self, text: str) -> None:
        """Replace the file with ``text`` atomically, readable by this user only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        tmp.replace(self.path)


def snapshot(resource_version: int, objects: ObjectMap) -> str:
    """The file's text: every object sorted by resource and key, compact JSON."""
    entries = [
        {"gvr": list(gvr), "object": obj}
        for gvr, objs in sorted(objects.items())
        for _, obj in sorted(objs.items())
    ]
    return json.dumps({"resourceVersion": resource_version, "objects": entries}, separators=(",", ":"))
