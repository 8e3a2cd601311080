"""What a rollout came to: a :class:`WorkloadOutcome` per workload and one :class:`RolloutResult`.

Frozen dataclasses that ``release`` reads (``ok``, ``summary``, ``diagnosis``) and writes into the
release report and history as JSON (:meth:`RolloutResult.to_dict`, :meth:`RolloutResult.from_dict`).

Neighbours: ``rollout.waiter`` builds them, ``rollout.diagnosis`` fills in a failure's events and logs;
``rollout`` re-exports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["complete", "failed", "timeout", "aborted"]


@dataclass(frozen=True)
class WorkloadOutcome:
    kind: str
    namespace: str
    name: str
    status: Status
    message: str
    # CrashLoopBackOff, ImagePullBackOff, ProgressDeadlineExceeded, Timeout, NotFound, ... ("" if complete)
    reason: str = ""
    pod: str = ""
    container: str = ""
    exit_code: int | None = None
    restarts: int = 0
    events: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    duration: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def diagnosis(self) -> str:
        if self.status == "complete":
            return ""
        head = f"{self.ref}: {self.message}"
        lines = [head]
        if self.events:
            lines.append("  events:")
            lines += [f"    {e}" for e in self.events]
        if self.logs:
            lines.append(f"  last {len(self.logs)} log lines of {self.pod} ({self.container}):")
            lines += [f"    {line}" for line in self.logs]
        return "\n".join(lines)


@dataclass(frozen=True)
class RolloutResult:
    ok: bool
    workloads: tuple[WorkloadOutcome, ...]
    # Multi-line, human-readable: why it failed, with events and logs ("" when ok).
    diagnosis: str
    duration: float
    # The first failure's one-line reason, for commit messages and summaries.
    summary: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutResult:
        workloads = tuple(
            WorkloadOutcome(**{**w, "events": tuple(w.get("events", ())), "logs": tuple(w.get("logs", ()))})
            for w in data.get("workloads", ())
        )
        return cls(
            bool(data["ok"]),
            workloads,
            str(data.get("diagnosis", "")),
            float(data.get("duration", 0.0)),
            str(data.get("summary", "")),
        )
