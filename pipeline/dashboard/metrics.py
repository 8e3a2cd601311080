"""The four DORA delivery metrics of one environment, computed from its release records (pure functions).

Used by ``invoke history --stats`` (tasks.py) and the dashboard (``collect.py``); it reads nothing itself:
the records come from ``pipeline.history`` and the source commits' times from ``commits.py``.

Definitions (the DORA research programme's, applied to this pipeline's records; stated on the page too):

- **Deployment frequency** = successful deployments in the window / the window's length in days. A
  deployment is a ``release`` or ``promote`` record whose result is ``succeeded`` (a ``rollback`` restores an
  earlier change; it delivers none).
- **Lead time for changes** = time of the verified release's record − commit time of its source commit; the
  median over the window's successful deployments whose source commit git knows.
- **Change failure rate** = failed changes / changes attempted, in the window. A change attempted is a
  ``release`` or ``promote`` record that ended ``succeeded``, ``failed`` or ``rolled-back``; a failed change
  is one whose result is ``failed`` or ``rolled-back``. ``unchanged`` (nothing deployed) and results this
  module does not know (``started``, ``interrupted``, ...) are not changes.
- **Time to restore** = time of the next ``succeeded`` record in the environment (of any kind: a rollback, a
  release, a promotion, a repair) − time of a failed change; the median over the window's failed changes that
  have been restored. Those not restored yet are counted as ``unrestored``.
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..history import Record

DEPLOY_KINDS = frozenset({"release", "promote"})
SUCCEEDED = "succeeded"
FAILED_RESULTS = frozenset({"failed", "rolled-back"})
CHANGE_RESULTS = FAILED_RESULTS | {SUCCEEDED}

FORMULAS = {
    "deployment_frequency_per_day": "successful release/promote records in the window ÷ days in the window",
    "lead_time_seconds_median": "median of (verified release's record time − its source commit's commit "
    "time)",
    "change_failure_rate": "release/promote records that failed or were rolled back ÷ those that succeeded, "
    "failed or were rolled back",
    "time_to_restore_seconds_median": "median of (next succeeded record in the environment − failed "
    "change's record time)",
}


def parse_time(text: str) -> datetime.datetime | None:
    """An ISO 8601 time, made timezone-aware (UTC when it says nothing); None when it is not one."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Metrics:
    """One environment's metrics over ``[since, until]``, with the counts behind each of them."""

    env: str
    window_days: float
    since: str
    until: str
    deployments: int
    deployment_frequency_per_day: float
    lead_times_seconds: tuple[float, ...]
    lead_time_seconds_median: float | None
    lead_time_unknown: int  # successful deployments whose source commit git does not know
    changes: int
    failed_changes: int
    change_failure_rate: float | None
    restore_times_seconds: tuple[float, ...]
    time_to_restore_seconds_median: float | None
    unrestored: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lead_times_seconds"] = list(self.lead_times_seconds)
        data["restore_times_seconds"] = list(self.restore_times_seconds)
        return data


def _timed(records: Iterable[Record]) -> list[tuple[datetime.datetime, Record]]:
    """Records with a readable time, oldest first (records with a broken time are left out)."""
    timed = [(when, r) for r in records if (when := parse_time(r.at)) is not None]
    return sorted(timed, key=lambda pair: pair[0])


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def is_deployment(record: Record) -> bool:
    return record.kind in DEPLOY_KINDS and record.result == SUCCEEDED


def is_change(record: Record) -> bool:
    return record.kind in DEPLOY_KINDS and record.result in CHANGE_RESULTS


def is_failed_change(record: Record) -> bool:
    return record.kind in DEPLOY_KINDS and record.result in FAILED_RESULTS


def lead_times(
    timed: Sequence[tuple[datetime.datetime, Record]], commit_times: Mapping[str, datetime.datetime]
) -> tuple[list[float], int]:
    """Seconds from source commit to verified release, per successful deployment; and how many had no
    known commit time. A commit dated after its release (clock skew) counts as zero."""
    found: list[float] = []
    unknown = 0
    for when, record in timed:
        if not is_deployment(record):
            continue
        committed = commit_times.get(record.source_commit)
        if committed is None:
            unknown += 1
            continue
        found.append(max(0.0, (when - committed).total_seconds()))
    return found, unknown


def restore_times(
    timed: Sequence[tuple[datetime.datetime, Record]],
    later: Sequence[tuple[datetime.datetime, Record]],
) -> tuple[list[float], int]:
    """Seconds from each failed change in ``timed`` to the next succeeded record in ``later``; and how many
    failed changes no later record restored."""
    found: list[float] = []
    unrestored = 0
    for when, record in timed:
        if not is_failed_change(record):
            continue
        restored = next((t for t, r in later if t > when and r.result == SUCCEEDED), None)
        if restored is None:
            unrestored += 1
        else:
            found.append((restored - when).total_seconds())
    return found, unrestored


def compute(
    records: Iterable[Record],
    commit_times: Mapping[str, datetime.datetime],
    *,
    env: str,
    now: datetime.datetime,
    days: float = 30.0,
) -> Metrics:
    """The metrics of ``env`` over the ``days`` before ``now`` (records of other environments are ignored)."""
    since = now - datetime.timedelta(days=days)
    everything = _timed(r for r in records if r.env == env)
    window = [(t, r) for t, r in everything if since <= t <= now]
    deployments = sum(1 for _, r in window if is_deployment(r))
    leads, unknown = lead_times(window, commit_times)
    changes = sum(1 for _, r in window if is_change(r))
    failed = sum(1 for _, r in window if is_failed_change(r))
    restores, unrestored = restore_times(window, everything)
    return Metrics(
        env=env,
        window_days=days,
        since=since.isoformat(timespec="seconds"),
        until=now.isoformat(timespec="seconds"),
        deployments=deployments,
        deployment_frequency_per_day=deployments / days if days > 0 else 0.0,
        lead_times_seconds=tuple(leads),
        lead_time_seconds_median=_median(leads),
        lead_time_unknown=unknown,
        changes=changes,
        failed_changes=failed,
        change_failure_rate=failed / changes if changes else None,
        restore_times_seconds=tuple(restores),
        time_to_restore_seconds_median=_median(restores),
        unrestored=unrestored,
    )


def duration(seconds: float | None) -> str:
    """``95`` -> ``1m 35s``; ``None`` -> ``n/a``: how the terminal and the page show a time span."""
    if seconds is None:
        return "n/a"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def readable_time(text: str) -> str:
    """An ISO time as people read it (UTC, to the minute); anything else as it is."""
    parsed = parse_time(text)
    return parsed.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if parsed else text
