"""A Deployment's (or ReplicaSet's) spec and status fields as the controller reads them: API defaults applied.

Includes the rolling-update parameters resolved to pod counts (``MaxSurge``/``MaxUnavailable`` of
``deploymentutil``) and the API server's validation of them. Uses ``intstr.py``; ``revisions.py``,
``scaling.py``, ``conditions.py`` and ``rolloutstatus.py`` build on it (``rollout.py`` gathers them all).
"""

from __future__ import annotations

import json

from .intstr import InvalidIntOrPercent, resolve_fenceposts, scaled_value
from .objects import Obj

MAX_INT32 = 2**31 - 1


def spec_replicas(obj: Obj) -> int:
    """``spec.replicas``, defaulted to 1 as the API server does for Deployments and ReplicaSets."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, key: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(key) or 0)


def strategy_type(d: Obj) -> str:
    return str(((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate")


def is_rolling(d: Obj) -> bool:
    return strategy_type(d) == "RollingUpdate"


def _rolling_params(d: Obj) -> tuple[int | str, int | str]:
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    surge = ru.get("maxSurge")
    unavailable = ru.get("maxUnavailable")
    return ("25%" if surge is None else surge), ("25%" if unavailable is None else unavailable)


def progress_deadline(d: Obj) -> int | None:
    """Seconds, or None when the Deployment has no deadline (``HasProgressDeadline`` is false)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
    if value is None or int(value) == MAX_INT32:
        return None
    return int(value)


def revision_history_limit(d: Obj) -> int | None:
    value = (d.get("spec") or {}).get("revisionHistoryLimit", 10)
    return None if value is None else int(value)


def min_ready_seconds(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("minReadySeconds") or 0)


def paused(d: Obj) -> bool:
    return bool((d.get("spec") or {}).get("paused"))


_PERCENT_HINT = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)


def validate_rolling_update(d: Obj) -> list[str]:
    """What the API server's validation says of a Deployment's rolling-update parameters (empty if valid).

    Offered to the API server so that an invalid strategy is refused on create/update as on a real
    cluster; the controller itself falls back to ``ResolveFenceposts`` and never fails on it.
    """
    if not is_rolling(d):
        ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate")
        if ru:
            return [
                "spec.strategy.rollingUpdate: Forbidden: "
                "may not be specified when strategy `type` is 'Recreate'"
            ]
        return []
    errors: list[str] = []
    surge, unavailable = _rolling_params(d)
    values: dict[str, int] = {}
    for field, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
        path = f"spec.strategy.rollingUpdate.{field}"
        shown = json.dumps(value)
        try:
            values[field] = scaled_value(value, 100, True)
        except InvalidIntOrPercent:
            errors.append(f"{path}: Invalid value: {shown}: {_PERCENT_HINT}")
            continue
        if values[field] < 0:
            errors.append(f"{path}: Invalid value: {shown}: must be greater than or equal to 0")
        if isinstance(value, str) and values[field] > 100:
            errors.append(f"{path}: Invalid value: {shown}: must not be greater than 100%")
    if values.get("maxSurge") == 0 and values.get("maxUnavailable") == 0:
        errors.append(
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "
            f"{json.dumps(unavailable)}: may not be 0 when `maxSurge` is 0"
        )
    return errors


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, unavailable = _rolling_params(d)
    return resolve_fenceposts(surge, unavailable, spec_replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    """``MaxUnavailable``: never more than ``spec.replicas``; 0 for Recreate and for 0 replicas."""
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    surge, unavailable = _rolling_params(d)
    return min(resolve_fenceposts(surge, unavailable, replicas)[1], replicas)
