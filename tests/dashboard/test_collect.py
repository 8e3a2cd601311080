"""The page's verdicts from plain values: does the cluster agree with git, how did the last smoke tests go."""

from __future__ import annotations

from typing import Any

from pipeline.dashboard.collect import agreement, ordered_stages, smoke_result
from pipeline.dashboard.live import Live, Workload
from pipeline.history import Record
from pipeline.overlays import Pin

PIN = Pin("backend", "reg/team/app", "sha-1a2b3c4", "sha256:" + "a" * 64)


def rec(result: str, stages: dict[str, float], reason: str = "", kind: str = "release") -> Record:
    fields: Any = {"kind": kind, "result": result}
    return Record("staging", image="reg/team/app:sha-1a2b3c4", digest=PIN.digest, source_commit="c",
                  actor="ci", at="2026-12-01T10:00:00+00:00", reason=reason, stages=stages,
                  **fields)  # fmt: skip


def test_agreement() -> None:
    released = rec("succeeded", {})
    running = Live(True, workloads=(Workload("campus/web", PIN.ref, 2, 2),))
    assert agreement(PIN, running, released).text == "agrees with git (campus/web 2/2 ready)"
    other = Live(True, workloads=(Workload("campus/web", "reg/team/app:sha-9999999", 1, 1),))
    assert agreement(PIN, other, released).style == "bad"
    assert "reg/team/app:sha-9999999" in agreement(PIN, other, released).text
    assert agreement(PIN, Live(False, "no route to host"), released).text == (
        "cluster not reachable: no route to host"
    )
    assert agreement(PIN, Live(True), None).text == "nothing released here yet"
    assert agreement(PIN, Live(True), released).style == "bad"
    assert agreement(PIN, None).style == "other"


def test_smoke_result_reads_the_newest_record_that_ran_smoke_tests() -> None:
    smoked = {"rollout": 3.0, "smoke": 1.0}
    assert smoke_result([rec("unchanged", {}), rec("succeeded", smoked)]).style == "ok"
    failed = rec("failed", smoked, "smoke: GET / answered 500")
    assert smoke_result([failed]).text == "failed (2026-12-01 10:00 UTC): smoke: GET / answered 500"
    restored = rec("rolled-back", {**smoked, "smoke (previous)": 1.0}, "smoke: GET / answered 500")
    assert smoke_result([restored]).text.startswith("passed on the restored release")
    assert smoke_result([rec("interrupted", smoked, kind="repair")]).style == "other"
    assert smoke_result([]).text == "no smoke tests recorded yet"


def test_stages_in_the_order_the_chain_runs_them() -> None:
    recorded = {"smoke": 1.0, "apply": 2.0, "build": 3.0, "zz-new": 0.5, "preflight": 1.0, "bump": 0.1}
    assert [name for name, _ in ordered_stages(recorded)] == [
        "build", "preflight", "bump", "apply", "smoke", "zz-new",
    ]  # fmt: skip
