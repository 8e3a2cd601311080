"""The Deployment controller's arithmetic, as pure functions on plain dicts: one name for all its parts.

Everything here mirrors ``pkg/controller/deployment`` and its ``util`` package in kube-controller-manager,
because the pipeline (and ``kubectl rollout status``) judge a rollout by the exact numbers and conditions
that code writes:

- ``maxSurge``/``maxUnavailable`` are ints or percentages of ``spec.replicas``; the surge rounds up, the
  unavailability rounds down, and when both resolve to 0 the unavailability becomes 1
  (``ResolveFenceposts``; validation rejects both being 0 before it comes to that): ``intstr.py`` and
  ``specs.py`` (the spec fields with the API's defaults);
- ``pod-template-hash``, revisions and the ReplicaSet annotations: ``revisions.py``;
- the new ReplicaSet grows within ``replicas + maxSurge`` (``NewRSNewReplicas``); old ones shrink first by
  their unavailable pods, then only while ``replicas - maxUnavailable`` pods stay available
  (``reconcileOldReplicaSets``); a scaling event during a rollout is spread proportionally over the
  active ReplicaSets (``scale``): ``scaling.py``, the rolling-update planner;
- status and conditions are computed as ``calculateStatus`` and ``syncRolloutStatus`` do, including
  ``ProgressDeadlineExceeded`` once ``progressDeadlineSeconds`` pass without progress: ``conditions.py``
  and ``rolloutstatus.py``.

``deployment.py`` applies the results through the store (as ``rollout.<name>``); the tests feed these
functions dicts. This module only gathers the names of the modules above.
"""

from __future__ import annotations

from .conditions import (
    AVAILABLE,
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    MIN_AVAILABLE,
    MIN_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    NEW_RS_CREATED,
    PAUSED,
    PROGRESSING,
    REPLICA_FAILURE,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
    new_condition,
    paused_condition,
    remove_condition,
    replica_failures,
    set_condition,
)
from .intstr import InvalidIntOrPercent, resolve_fenceposts, scaled_value
from .revisions import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    LAST_APPLIED,
    MAX_REPLICAS,
    MAX_REV_HISTORY_CHARS,
    REVISION,
    REVISION_HISTORY,
    equal_ignore_hash,
    find_new_rs,
    max_revision,
    pod_template_hash,
    replicas_annotations_need_update,
    revision,
    set_new_rs_annotations,
    set_replicas_annotations,
)
from .rolloutstatus import (
    calculate_status,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    rollout_status,
    status_only,
    wire_status,
)
from .scaling import (
    Scale,
    active,
    cleanup_candidates,
    find_active_or_latest,
    is_saturated,
    is_scaling_event,
    new_rs_new_replicas,
    old_pods_running,
    plan_old_scale_down,
    plan_scale,
    sum_spec,
    sum_status,
)
from .specs import (
    MAX_INT32,
    is_rolling,
    max_surge,
    max_unavailable,
    min_ready_seconds,
    paused,
    progress_deadline,
    revision_history_limit,
    spec_replicas,
    status_int,
    strategy_type,
    validate_rolling_update,
)

__all__ = [
    "AVAILABLE",
    "DESIRED_REPLICAS",
    "FAILED_RS_CREATE",
    "FOUND_NEW_RS",
    "HASH_LABEL",
    "LAST_APPLIED",
    "MAX_INT32",
    "MAX_REPLICAS",
    "MAX_REV_HISTORY_CHARS",
    "MIN_AVAILABLE",
    "MIN_UNAVAILABLE",
    "NEW_RS_AVAILABLE",
    "NEW_RS_CREATED",
    "PAUSED",
    "PROGRESSING",
    "REPLICA_FAILURE",
    "RESUMED",
    "REVISION",
    "REVISION_HISTORY",
    "RS_UPDATED",
    "TIMED_OUT",
    "InvalidIntOrPercent",
    "Scale",
    "active",
    "calculate_status",
    "cleanup_candidates",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignore_hash",
    "find_active_or_latest",
    "find_new_rs",
    "is_rolling",
    "is_saturated",
    "is_scaling_event",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "min_ready_seconds",
    "new_condition",
    "new_rs_new_replicas",
    "old_pods_running",
    "paused",
    "paused_condition",
    "plan_old_scale_down",
    "plan_scale",
    "pod_template_hash",
    "progress_deadline",
    "remove_condition",
    "replica_failures",
    "replicas_annotations_need_update",
    "resolve_fenceposts",
    "revision",
    "revision_history_limit",
    "rollout_status",
    "scaled_value",
    "set_condition",
    "set_new_rs_annotations",
    "set_replicas_annotations",
    "spec_replicas",
    "status_int",
    "status_only",
    "strategy_type",
    "sum_spec",
    "sum_status",
    "validate_rolling_update",
    "wire_status",
]
