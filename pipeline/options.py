"""Task options that arrive as text (counts, days, wait seconds), checked before a task does anything.

invoke converts an option to the type of its default with ``int()``/``float()``, so ``--limit abc`` would
end in a ``ValueError`` traceback and ``--limit -1`` would reach git as ``-1``. ``tasks.py`` declares such
options as text and reads them here instead, so a mistake is one :class:`ConfigError` line that names the
option, before anything is written. Light on purpose (``invoke --list`` imports it): no third-party import.
"""

from __future__ import annotations

import math

from .errors import ConfigError


def count(text: str | int, option: str, *, maximum: int = 10_000) -> int:
    """A whole number from 1 to ``maximum`` (``--limit 20``)."""
    try:
        value = int(str(text).strip(), 10)
    except ValueError:
        raise ConfigError(
            f"{option} must be a whole number, got {str(text)!r}", f"Give e.g. `{option} 20`"
        ) from None
    if not 1 <= value <= maximum:
        raise ConfigError(f"{option} must be from 1 to {maximum}, got {value}", f"Give e.g. `{option} 20`")
    return value


def days(text: str | float, option: str = "--days", *, maximum: float = 3650.0) -> float:
    """A number of days greater than 0 and at most ``maximum`` (``--days 30``, ``--days 0.5``)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ConfigError(
            f"{option} must be a number of days, got {str(text)!r}", f"Give e.g. `{option} 30`"
        ) from None
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise ConfigError(
            f"{option} must be more than 0 and at most {maximum:g}, got {text}", f"Give e.g. `{option} 30`"
        )
    return value


WAIT_HELP = {
    "wait": "seconds to wait for another operation on ENV to finish (default: [release] lock_wait)",
    "no-wait": "refuse at once when another operation holds ENV",
}


def wait_seconds(wait: str | None, no_wait: bool) -> float | None:
    """``--wait SECONDS`` / ``--no-wait`` as the seconds the chain waits for the environment's Lease."""
    if no_wait:
        return 0.0
    if wait is None:
        return None
    try:
        seconds = float(wait)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:  # NaN fails this too
        raise ConfigError(f"--wait {wait!r} is not a number of seconds", "e.g. --wait 600, or --no-wait")
    return seconds
