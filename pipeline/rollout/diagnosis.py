"""The story of a failed pod, told while it is fresh: a one-line diagnosis, recent Events, last log lines.

When ``rollout.pods`` finds a :class:`~pipeline.rollout.pods.PodProblem`, :func:`gather` asks the cluster
for the pod's recent Events and the log lines that explain it (of the previous, crashed instance for
crash loops, falling back to the current one), and :func:`describe` writes the line a user reads: the
pod, the container, the reason, the exit code, the restarts and the kubelet's message. A cluster that
cannot answer these questions only leaves them out: the diagnosis never fails the wait itself.
:func:`scaling_up` tells an unschedulable pod that waits for the cluster autoscaler from a stuck one.

Neighbours: ``rollout.waiter`` calls it for every failed workload and puts the result into a
``rollout.result.WorkloadOutcome``; it asks ``kube`` for events and logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..base import Obj
from ..errors import KubeError
from ..kube import Kube
from .pods import PodProblem
from .status import as_int

log = logging.getLogger(__name__)

LOG_LINES = 20
EVENT_LINES = 8


@dataclass(frozen=True)
class Evidence:
    """What the cluster could tell about a failed pod."""

    events: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()


def event_line(event: Obj) -> str:
    """``Warning BackOff: Back-off restarting failed container (x5)``."""
    count = as_int(event.get("count"))
    times = f" (x{count})" if count > 1 else ""
    message = " ".join(str(event.get("message", "")).split())
    return f"{event.get('type', 'Normal')} {event.get('reason', '')}: {message}{times}"


def describe(problem: PodProblem, message: str = "") -> str:
    """The one line for ``problem``, after the workload's own ``message`` when there is one."""
    parts = [f"pod {problem.pod}"]
    if problem.container:
        parts.append(f"container {problem.container}")
    detail = f"{problem.reason}"
    if problem.exit_code is not None:
        detail += f", exit code {problem.exit_code}"
    if problem.restarts:
        detail += f", {problem.restarts} restart{'s' if problem.restarts != 1 else ''}"
    text = f"{', '.join(parts)}: {detail}"
    if problem.message:
        text += f": {' '.join(problem.message.split())[:300]}"
    if message:
        text = f"{message}; {text}"
    return text


def gather(kube: Kube, namespace: str, pod: Obj, problem: PodProblem, log_lines: int = LOG_LINES) -> Evidence:
    """The pod's recent Events and, when its problem has them, the log lines that tell the story."""
    events: tuple[str, ...] = ()
    try:
        events = tuple(event_line(e) for e in kube.events_for(pod, limit=EVENT_LINES))
    except KubeError as e:
        events = (f"(events unavailable: {e})",)
    logs: tuple[str, ...] = ()
    if problem.logs != "none" and problem.container:
        logs = _logs(kube, namespace, problem, log_lines)
    return Evidence(events, logs)


def _logs(kube: Kube, namespace: str, problem: PodProblem, log_lines: int) -> tuple[str, ...]:
    attempts = [True, False] if problem.logs == "previous" else [False]
    for previous in attempts:
        try:
            lines = kube.pod_logs(
                namespace, problem.pod, problem.container, tail=log_lines, previous=previous
            )
        except KubeError as e:
            log.debug("logs of %s (previous=%s): %s", problem.pod, previous, e)
            continue
        if lines:
            return tuple(lines)
    return ()


def scaling_up(kube: Kube, pod: Obj) -> bool:
    """Whether the cluster autoscaler is adding a node for this (unschedulable) pod."""
    try:
        events = kube.events_for(pod, limit=50)
    except KubeError:
        return False
    return any(e.get("reason") == "TriggeredScaleUp" for e in events)
