"""``invoke history --stats``: one environment's delivery metrics, read from git and worded for a terminal.

Reads the records (``pipeline.history``) and the source commits' times (``commits.py``), computes with
``metrics.py``; ``tasks.py`` prints the lines or the JSON.
"""

from __future__ import annotations

import datetime

from .. import history
from ..config import Settings
from . import commits, metrics

# Enough records for months of daily releases; the window cuts them down.
RECORD_LIMIT = 500


def environment_metrics(
    settings: Settings, env: str, *, days: float = 30.0, now: datetime.datetime | None = None
) -> metrics.Metrics:
    settings.environment(env)  # an unknown environment is one clear line, before any git work
    records = history.read(settings, env, RECORD_LIMIT)
    found = commits.lookup(settings.root, (r.source_commit for r in records))
    times = {sha: c.time for sha, c in found.items()}
    return metrics.compute(records, times, env=env, now=now or datetime.datetime.now(datetime.UTC), days=days)


def lines(m: metrics.Metrics) -> list[str]:
    rate = "n/a" if m.change_failure_rate is None else f"{m.change_failure_rate * 100:.0f}%"
    unknown = f", {m.lead_time_unknown} without a known commit" if m.lead_time_unknown else ""
    pending = f", {m.unrestored} not restored yet" if m.unrestored else ""
    return [
        f"{m.env}: delivery metrics from {m.since} to {m.until} ({m.window_days:g} days)",
        f"  deployment frequency    {m.deployment_frequency_per_day:.2f}/day  ({m.deployments} deployments)",
        f"  lead time (median)      {metrics.duration(m.lead_time_seconds_median):<9} "
        f"({len(m.lead_times_seconds)} measured{unknown})",
        f"  change failure rate     {rate:<9} ({m.failed_changes} failed of {m.changes} changes)",
        f"  time to restore (median) {metrics.duration(m.time_to_restore_seconds_median):<8} "
        f"({len(m.restore_times_seconds)} restored{pending})",
        *(f"  {name}: {text}" for name, text in metrics.FORMULAS.items()),
    ]
