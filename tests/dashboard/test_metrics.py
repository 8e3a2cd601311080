"""The DORA metrics computed by hand from small histories: windows, failures, restores, unknown kinds."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from pipeline.dashboard import metrics
from pipeline.history import Record

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def at(hours_ago: float) -> str:
    return (NOW - datetime.timedelta(hours=hours_ago)).isoformat(timespec="seconds")


def rec(kind: str, result: str, hours_ago: float, source: str = "c1", env: str = "staging") -> Record:
    fields: Any = {"kind": kind, "result": result}
    return Record(env, image="r/x:t", digest="sha256:" + "a" * 64, source_commit=source, actor="ci",
                  at=at(hours_ago), **fields)  # fmt: skip


COMMITS = {
    "c1": NOW - datetime.timedelta(hours=50),
    "c2": NOW - datetime.timedelta(hours=30),
    "c3": NOW - datetime.timedelta(hours=11),
}


def test_the_four_metrics_over_a_window() -> None:
    records = [
        rec("release", "succeeded", 49, "c1"),  # lead 1 h
        rec("release", "rolled-back", 29, "c2"),  # failed change; restored by the rollback 1 h later
        rec("rollback", "succeeded", 28, "c1"),  # a restore, not a deployment
        rec("promote", "succeeded", 10, "c3"),  # lead 1 h; another env's record below is ignored
        rec("release", "unchanged", 9, "c3"),  # nothing deployed: not a change
        rec("release", "failed", 5, "c3"),  # failed change; restored by the release 3 h later
        rec("release", "succeeded", 2, "c3"),  # lead 9 h
        rec("release", "succeeded", 1, "c1", env="prod"),
    ]
    m = metrics.compute(records, COMMITS, env="staging", now=NOW, days=3)
    assert m.deployments == 3
    assert m.deployment_frequency_per_day == pytest.approx(1.0)
    assert sorted(m.lead_times_seconds) == [3600.0, 3600.0, 9 * 3600.0]
    assert m.lead_time_seconds_median == 3600.0
    assert (m.changes, m.failed_changes) == (5, 2)
    assert m.change_failure_rate == pytest.approx(0.4)
    assert sorted(m.restore_times_seconds) == [3600.0, 3 * 3600.0]
    assert m.time_to_restore_seconds_median == 2 * 3600.0
    assert m.unrestored == 0 and m.lead_time_unknown == 0


def test_window_cuts_old_records_but_a_restore_after_it_counts() -> None:
    records = [
        rec("release", "succeeded", 200, "c1"),  # outside a 1-day window
        rec("release", "failed", 20, "c2"),
        rec("rollback", "succeeded", 19.5, "c1"),
        rec("release", "rolled-back", 3, "c3"),  # not restored yet
    ]
    m = metrics.compute(records, COMMITS, env="staging", now=NOW, days=1)
    assert m.deployments == 0 and m.deployment_frequency_per_day == 0.0
    assert m.lead_time_seconds_median is None
    assert m.change_failure_rate == 1.0
    assert m.restore_times_seconds == (1800.0,) and m.unrestored == 1


def test_unknown_kinds_results_times_and_commits_are_handled() -> None:
    records = [
        rec("repair", "succeeded", 6, "c3"),  # a kind from later: restores, is no deployment
        rec("release", "interrupted", 5, "c3"),  # a result from later: no change
        rec("release", "started", 4, "c3"),
        rec("release", "failed", 3, "c3"),
        rec("repair", "succeeded", 2, "c3"),
        rec("release", "succeeded", 1, "never-seen"),  # lead time unknown
        Record("staging", "release", "succeeded", "r/x:t", None, "c1", "ci", "not a time"),
    ]
    m = metrics.compute(records, COMMITS, env="staging", now=NOW)
    assert m.deployments == 1 and m.lead_time_unknown == 1 and m.lead_times_seconds == ()
    assert (m.changes, m.failed_changes) == (2, 1)
    assert m.restore_times_seconds == (3600.0,)
    data = m.to_dict()
    assert {"deployment_frequency_per_day", "lead_time_seconds_median", "change_failure_rate",
            "time_to_restore_seconds_median"} <= set(data)  # fmt: skip


def test_an_empty_history_has_no_rates() -> None:
    m = metrics.compute([], {}, env="staging", now=NOW)
    assert m.change_failure_rate is None and m.time_to_restore_seconds_median is None
    assert m.deployment_frequency_per_day == 0.0


def test_durations_read_well() -> None:
    assert [metrics.duration(s) for s in (None, 4.4, 95, 3720, 90000)] == [
        "n/a",
        "4s",
        "1m 35s",
        "1h 2m",
        "1d 1h",
    ]
