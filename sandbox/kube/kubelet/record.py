"""The kubelet's record of one container of a pod, and the event sink the pod's parts report to.

A :class:`ContainerRecord` is what the worker knows about one init or app container across its
instances: the current instance, what its status shows while none runs (``waiting``), the last exit,
the crash-loop and image-pull back-offs and the probers of the running instance. ``worker.py`` and
``containers.py`` change records, ``images.py`` sets the pull reasons on them, ``probes.py`` reads them and
``status.py`` turns them into container statuses. Pure; no Docker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .clock import Backoff

if TYPE_CHECKING:
    from .probes import Prober


class Recorder(Protocol):
    """Where a pod's parts send the kubelet's events (the worker, which hands them to the facade)."""

    def event(self, reason: str, message: str, kind: str = "Normal", field_path: str = "") -> None: ...

    def event_once(self, key: str, reason: str, message: str, kind: str, field_path: str = "") -> None:
        """Repeated failures of one kind produce one event per distinct ``key``."""


@dataclass
class ContainerRecord:
    name: str
    spec: dict[str, Any]
    init: bool = False
    restart_count: int = 0
    container_id: str | None = None
    image_id: str = ""
    running: bool = False
    started_at: str = ""
    # What the status shows while no instance runs: (reason, message) of state.waiting.
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    terminated: dict[str, Any] | None = None  # state.terminated of the current (exited) instance
    last_terminated: dict[str, Any] | None = None  # lastState.terminated
    finished_at: float = 0.0
    exit_seen: bool = False
    started: bool = False
    ready: bool = False
    kill_reason: str | None = None
    probers: list[Prober] = field(default_factory=list)
    crash_backoff: Backoff | None = None
    pull_backoff: Backoff | None = None
    backoff_event_for: float = -1.0
    pull_event_for: float = -1.0
    last_error: str | None = None

    @property
    def field_path(self) -> str:
        kind = "initContainers" if self.init else "containers"
        return f"spec.{kind}{{{self.name}}}"

    @property
    def completed(self) -> bool:
        return self.terminated is not None and self.terminated.get("exitCode") == 0
