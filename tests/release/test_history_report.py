"""Pure pieces of the release: which digests failed, the last good release, and how reports are written."""

from __future__ import annotations

from pipeline import report
from pipeline.build import Image
from pipeline.history import Record, failed_digests, last_good
from pipeline.release import ReleaseReport, StageResult

A, B, C = ("sha256:" + c * 64 for c in "abc")


def rec(digest: str, result: str, at: str) -> Record:
    return Record("staging", "release", result, f"r/x:{digest[7:14]}", digest, "c0ffee", "ci", at)  # type: ignore[arg-type]


def test_a_digest_that_failed_last_is_refused_one_that_later_succeeded_is_not() -> None:
    newest_first = [
        rec(A, "rolled-back", "2026-11-24T10:03:00+00:00"),
        rec(B, "succeeded", "2026-11-24T10:02:00+00:00"),
        rec(B, "failed", "2026-11-24T10:01:00+00:00"),
        rec(C, "succeeded", "2026-11-24T10:00:00+00:00"),
    ]
    assert failed_digests(newest_first) == {A}
    assert last_good(newest_first) == newest_first[1]
    assert last_good(newest_first, excluding=B) == newest_first[3]


def test_records_round_trip_and_ignore_foreign_notes() -> None:
    entry = rec(A, "succeeded", "2026-11-24T10:00:00+00:00")
    assert Record.from_json(entry.to_json(), "abc123") == Record(**{**entry.__dict__, "commit": "abc123"})
    assert Record.from_json("a note someone else wrote", "abc123") is None


def failed_report() -> ReleaseReport:
    return ReleaseReport(
        env="staging",
        kind="release",
        result="rolled-back",
        image=Image("r/x", "sha-1a2b3c4", A),
        source_commit="1a2b3c4",
        stages=(
            StageResult("preflight", "ok", 0.8, "10 objects valid"),
            StageResult("rollout", "failed", 1.5, "x|y"),
        ),
        reason="rollout: CrashLoopBackOff, exit code 3\nsecond line",
    )


def test_markdown_summary_and_outputs() -> None:
    text = report.markdown(failed_report())
    assert text.startswith("### release staging: FAILED, previous release restored (r/x:sha-1a2b3c4@sha256:")
    assert "| rollout | failed | 1.5s | x/y |" in text  # a pipe in a detail cannot break the table
    outputs = report.outputs(failed_report())
    assert outputs["digest"] == A and outputs["reference"] == f"r/x:sha-1a2b3c4@{A}"
    assert not failed_report().ok


def test_annotation_is_one_workflow_command() -> None:
    line = report.annotation("error", "release staging: failed", "line one\nline two 100%")
    assert line == "::error title=release staging%3A failed::line one%0Aline two 100%25"
    assert "\n" not in line
