"""Int-or-percent values (``maxSurge``, ``maxUnavailable``) resolved as apimachinery's ``intstr`` does.

Pure functions, no API objects: ``specs.py`` reads the values from a Deployment and resolves them here;
``deployment.py``'s tests reach them through ``rollout.py``.
"""

from __future__ import annotations

import math

from sandbox.errors import SandboxError


class InvalidIntOrPercent(SandboxError, ValueError):
    """A ``maxSurge``/``maxUnavailable`` that is neither an int nor ``"<int>%"``."""


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` (floats as Go computes them, then ceil or floor)."""
    if isinstance(value, bool):
        raise InvalidIntOrPercent(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise InvalidIntOrPercent(
            "invalid value for IntOrString: invalid type: string is not a percentage: " + value
        )
    try:
        percent = int(value[:-1])
    except ValueError as e:
        raise InvalidIntOrPercent(f"invalid value {value!r}: {e}") from e
    exact = float(percent) * float(total) / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(surge: int | str, unavailable: int | str, desired: int) -> tuple[int, int]:
    """``ResolveFenceposts``: both zero would never make progress, so unavailability becomes 1."""
    s = scaled_value(surge, desired, True)
    u = scaled_value(unavailable, desired, False)
    if s == 0 and u == 0:
        u = 1
    return s, u
