"""What a resource URL names: the resource, namespace, name and subresource (:class:`Target`).

:func:`parse_target` turns the path after ``/api/<v>`` or ``/apis/<g>/<v>`` into a :class:`Target`, or a
404 as kube-apiserver gives it. A target also knows where its objects are stored and how they look on
the wire (``events.k8s.io`` Events are stored as core Events, see ``events.py``).

Neighbours: ``server.py`` routes with it; every handler module takes a :class:`Target`; it uses
``discovery.py`` for the resources served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import discovery
from ..discovery import GVR, ResourceInfo
from ..store import EVENTS, NotFound
from .events import event_from_core, event_to_core


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool = False

    @property
    def gvr(self) -> GVR:
        """Where objects of this resource are stored (events.k8s.io Events are core Events)."""
        return EVENTS if self.info.group == "events.k8s.io" else self.info.gvr

    def view(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as this resource's version shows it."""
        if self.info.group == "events.k8s.io":
            return event_from_core(obj)
        return obj

    def to_storage(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An object of this resource's version in its stored form."""
        return event_to_core(obj) if self.info.group == "events.k8s.io" else obj


def _not_found() -> NotFound:
    return NotFound("the server could not find the requested resource")


def parse_target(group: str, version: str, rest: list[str]) -> Target:
    """``[watch/][namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`` of ``group/version``."""
    watch_path = False
    if rest[0] == "watch":
        watch_path, rest = True, rest[1:]
        if not rest:
            raise _not_found()
    namespace: str | None = None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3:
        raise _not_found()
    info = discovery.lookup((group, version, plural))
    if info is None or (namespace is not None and not info.namespaced):
        raise _not_found()
    if sub is not None and sub not in info.subresources:
        raise _not_found()
    if info.namespaced and name is not None and namespace is None:
        raise _not_found()
    return Target(info, namespace, name, sub, watch_path)
