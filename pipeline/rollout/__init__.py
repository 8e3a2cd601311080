"""The rollout stage (stage 5): wait until the applied workloads have rolled out, or say why not.

:func:`wait` returns a :class:`RolloutResult` (``ok``, one :class:`WorkloadOutcome` per workload, a
multi-line diagnosis with the failed pod's events and log lines); it raises a
:class:`~pipeline.errors.RolloutError` or a ``KubeError`` only when the cluster cannot be watched at all.

The package, by concern: ``waiter`` (the watches and the wait), ``status`` (``kubectl rollout status``'s
verdict on a workload: :func:`judge`), ``pods`` (pod states that do not heal: :func:`pod_problem`; the new
revision's pods: :func:`new_replicaset`, :func:`selector_string`), ``diagnosis`` (events and logs for the
one-line diagnosis) and ``result`` (the frozen results). Neighbours: ``kube`` provides watches, events
and logs; ``apply`` says which workloads changed; ``release`` calls :func:`wait` and rolls back on a
failed result. The names other modules and the tests import from ``pipeline.rollout`` are re-exported
here, including :class:`RolloutError`, which lives in ``pipeline.errors``.
"""

from __future__ import annotations

from ..errors import RolloutError
from .diagnosis import EVENT_LINES, LOG_LINES
from .pods import (
    CRASH_RESTARTS,
    FATAL_WAITING,
    UNSCHEDULABLE_GRACE_SECONDS,
    PodProblem,
    new_replicaset,
    parse_time,
    pod_problem,
    selector_string,
)
from .result import RolloutResult, Status, WorkloadOutcome
from .status import Judgement, daemonset_status, deployment_status, judge, statefulset_status
from .waiter import DEADLINE_SLACK_SECONDS, wait

__all__ = [
    "CRASH_RESTARTS",
    "DEADLINE_SLACK_SECONDS",
    "EVENT_LINES",
    "FATAL_WAITING",
    "LOG_LINES",
    "UNSCHEDULABLE_GRACE_SECONDS",
    "Judgement",
    "PodProblem",
    "RolloutError",
    "RolloutResult",
    "Status",
    "WorkloadOutcome",
    "daemonset_status",
    "deployment_status",
    "judge",
    "new_replicaset",
    "parse_time",
    "pod_problem",
    "selector_string",
    "statefulset_status",
    "wait",
]
