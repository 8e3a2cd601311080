"""Task options that several commands share, read into what ``pipeline/`` takes (``tasks.py`` wires them).

Light on purpose (``invoke --list`` imports it): no third-party import. A bad value is one
:class:`~pipeline.errors.ConfigError` line, before anything is written.
"""

from __future__ import annotations

from .errors import ConfigError

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
