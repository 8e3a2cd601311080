"""The two faces of an Event: ``events.k8s.io/v1`` on the wire, core ``v1`` in the store.

Both APIs serve the same objects, stored once as core Events (``store.EVENTS``); this module renames the
fields between the two versions, for objects and for field selectors.

Neighbours: ``target.py`` converts with it when a URL names ``events.k8s.io``; ``watch.py`` and
``server.py`` rewrite field selectors with :func:`event_selector`.
"""

from __future__ import annotations

from typing import Any

_EVENT_FIELDS = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
]


def event_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_FIELDS:
        if new in out:
            out[old] = out.pop(new)
    out["apiVersion"], out["kind"] = "v1", "Event"
    return out


def event_from_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_FIELDS:
        if old in out:
            out[new] = out.pop(old)
    if not out.get("eventTime"):
        # events.k8s.io/v1 requires eventTime; events recorded the core/v1 way only have timestamps.
        stamp = out.get("deprecatedFirstTimestamp") or out.get("metadata", {}).get("creationTimestamp")
        if isinstance(stamp, str) and stamp.endswith("Z"):
            out["eventTime"] = stamp[:-1] + ".000000Z"
    out["apiVersion"], out["kind"] = "events.k8s.io/v1", "Event"
    return out


def event_selector(text: str | None) -> str | None:
    if not text:
        return text
    for new, old in _EVENT_FIELDS:
        text = text.replace(new + ".", old + ".").replace(new + "=", old + "=")
    return text
