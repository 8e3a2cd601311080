"""Time as the kubelet tells it: API timestamps, Go durations in messages, and client-go's back-off.

Used by the pod worker (``worker.py``, ``containers.py``: crash-loop back-off), the image manager
(``images.py``: pull back-off, pull times), ``status.py`` (condition and start times) and the facade
(``kubelet.py``: event times). Pure; no Docker.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    """The current time in the API's second-precision RFC 3339 form."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` (``10s``, ``1m20s``, ``5m0s``), as kubelet messages do."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds, 3)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec = f"{secs:g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec}"
    if minutes:
        return f"{int(minutes)}m{sec}"
    return sec


class Backoff:
    """client-go's ``flowcontrol.Backoff`` for one key: doubles from base to cap, forgets after 2×cap."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self.duration = 0.0
        self.last_update: float | None = None

    def next(self, at: float) -> None:
        if self.last_update is None or at - self.last_update > 2 * self.cap:
            self.duration = self.base
        else:
            self.duration = min(self.duration * 2, self.cap)
        self.last_update = at

    def in_backoff_since(self, event_time: float, now: float) -> bool:
        if self.last_update is None or event_time - self.last_update > 2 * self.cap:
            return False
        return now - event_time < self.duration

    def in_backoff_since_update(self, now: float) -> bool:
        if self.last_update is None:
            return False
        return now - self.last_update < self.duration

    def until(self, event_time: float) -> float:
        return event_time + self.duration
