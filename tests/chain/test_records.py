"""Pure rules of the chain's reliability: one line per operation in the history, what "verified" and
"last good" mean, what a failed release goes back to, SIGTERM noted and raised at a safe point, and the
``--wait`` option."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pipeline import history, interrupt, overlays, verify
from pipeline.config import GitOpsSettings, ImageSettings, RegistrySettings, ReleaseSettings, Settings
from pipeline.errors import ConfigError, Interrupted
from pipeline.history import Record
from pipeline.options import wait_seconds

A, B, C = ("sha256:" + c * 64 for c in "abc")


def rec(digest: str, result: str, at: str, op: str = "") -> Record:
    return Record(
        "staging",
        "release",
        result,
        f"r/x:t-{digest[7:10]}",
        digest,
        "c0ffee",
        "ci",
        at,
        id=op,  # type: ignore[arg-type]
    )


def test_an_outcome_replaces_its_started_record_and_a_dangling_one_stays() -> None:
    records = history.merged(
        [
            rec(A, "started", "2026-12-02T10:00:00+00:00", "op1"),
            rec(A, "succeeded", "2026-12-02T10:01:00+00:00", "op1"),
            rec(B, "started", "2026-12-02T10:02:00+00:00", "op2"),  # killed
            rec(C, "succeeded", "2026-11-01T10:00:00+00:00"),  # a record from before ids
        ]
    )
    assert [(r.digest, r.result) for r in records] == [(B, "started"), (A, "succeeded"), (C, "succeeded")]
    assert history.dangling(records) == [records[0]]


def test_only_a_succeeded_record_for_exactly_the_digest_settles_it() -> None:
    newest_first = [
        rec(A, "interrupted", "2026-12-02T10:03:00+00:00"),
        rec(B, "unchanged", "2026-12-02T10:02:30+00:00"),
        rec(B, "succeeded", "2026-12-02T10:02:00+00:00"),
        rec(C, "succeeded", "2026-12-02T10:01:00+00:00"),
        rec(C, "rolled-back", "2026-12-02T10:01:30+00:00"),
    ]
    newest_first.sort(key=lambda r: r.at, reverse=True)
    assert not verify.settled(newest_first, A)  # killed mid-rollout: never verified
    assert verify.settled(newest_first, B)
    assert not verify.settled(newest_first, C)  # its newest decisive record is a rollback
    assert not verify.settled(newest_first, None)
    # Succeeded once, then re-applied by a release that was killed: verify it again.
    again = [rec(B, "interrupted", "2026-12-02T10:04:00+00:00"), *newest_first]
    assert not verify.settled(again, B)
    # An interruption says nothing against the digest: it may be released again without --force.
    assert history.failed_digests(newest_first) == {C}
    # Never "last good": a pin that was only started or interrupted.
    assert history.last_good(newest_first) is not None
    assert history.last_good(newest_first).digest == B  # type: ignore[union-attr]


def test_a_failed_release_goes_back_to_a_verified_pin_only() -> None:
    settings = Settings(Path("."), ImageSettings(), RegistrySettings(), GitOpsSettings(), {})
    good = rec(B, "succeeded", "2026-12-02T10:00:00+00:00")
    unverified_old = overlays.Pin("backend", "r/x", "t-aaa", A)
    target = verify.restore_target(settings, [good], unverified_old, C)
    assert target == overlays.Pin("backend", "r/x", "t-bbb", B)
    verified_old = overlays.Pin("backend", "r/x", "t-bbb", B)
    assert verify.restore_target(settings, [good], verified_old, C) is verified_old
    assert verify.restore_target(settings, [], unverified_old, C) is None  # nothing to return to
    assert verify.restore_target(settings, [good], verified_old, B) is None  # the failed one itself


def test_sigterm_is_noted_and_raised_at_the_next_safe_point_not_inside_a_shielded_rollback() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interrupt.handled():
        interrupt.check()
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal: the process does not die
        with interrupt.shielded():
            interrupt.check()  # the rollback is not interrupted
            assert interrupt.requested() is None and interrupt.received() == "SIGTERM"
        with pytest.raises(Interrupted, match="interrupted by SIGTERM"):
            interrupt.check()
    assert signal.getsignal(signal.SIGTERM) == before
    interrupt.check()  # outside an operation, nothing is pending


@pytest.mark.parametrize(
    ("wait", "no_wait", "expected"),
    [(None, False, None), ("90", False, 90.0), (None, True, 0.0), ("0", False, 0.0)],
)
def test_wait_option(wait: str | None, no_wait: bool, expected: float | None) -> None:
    assert wait_seconds(wait, no_wait) == expected


@pytest.mark.parametrize("bad", ["-5", "ten", "nan", "1e9"])
def test_wait_option_refuses_what_is_not_seconds(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"--wait '{bad}' is not a number of seconds"):
        wait_seconds(bad, False)


def test_lock_wait_default_is_ten_minutes() -> None:
    assert ReleaseSettings().lock_wait == 600
