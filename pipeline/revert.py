"""Rollback stage: put the last good release back after a failed or interrupted one, in git and cluster.

``release.py`` calls :func:`roll_back` with the release to return to (``verify.restore_target``). The
revert commit and the cluster are two separate steps on purpose: when the GitOps remote refuses the
revert, the cluster is still put back to the last good image (rendered from the remote's tip with that
pin) and verified, and the reason says exactly what is left to do in git. Nothing here hides the first
failure: its diagnosis stays the reason's beginning, and each failure of the rollback is appended to it.
The whole rollback runs shielded from SIGTERM and Ctrl-C (``interrupt``): once started, it finishes.

:func:`after_failure` and :func:`after_interrupt` are what the chain does when a stage failed or a signal
stopped it: pick the release to return to, roll back, record the outcome (a refused record is told in
the reason, never raised over the diagnosis) and build the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import history, interrupt, overlays, pin, preflight, verify
from .base import first_line
from .config import Environment, Settings
from .errors import Interrupted, LeaseLost, PipelineError
from .images import Image
from .operation import Run
from .report import ReleaseReport, Timeline

if TYPE_CHECKING:
    from .kube import Kube


@dataclass(frozen=True)
class Reverted:
    restored: bool  # the cluster runs the target again, verified
    in_git: bool  # git pins the target (reverted now, or already)
    commit: str | None  # the revert commit (None: git already pinned the target, or could not be written)
    reason: str  # the original reason, with what the rollback did or could not do appended


def roll_back(
    settings: Settings,
    env: Environment,
    cluster: Kube,
    failed: Image,
    target: overlays.Pin | None,
    reason: str,
    approver: str | None,
    tl: Timeline,
    guard: verify.Guard,
) -> Reverted:
    """Revert git to ``target``, verify it in the cluster; with git refusing, restore the cluster anyway."""
    if target is None:
        return Reverted(False, False, None, f"{reason} (no previous release to return to)")
    with interrupt.shielded():
        guard()
        commit: str | None = None
        git_error = ""
        try:
            with tl.stage("revert") as detail:
                reverted = pin.publish(
                    settings, env, target, pin.source_commit(settings, target.tag), approver,
                    message=pin.rollback_message(env.name, target, failed, first_line(reason)),
                )  # fmt: skip
                commit = reverted.commit
                detail.append(f"commit {commit[:12]}" if commit else "git already pinned it")
        except LeaseLost:
            raise
        except PipelineError as e:
            git_error = first_line(e)
            tl.progress(
                f"revert in git failed ({git_error}): putting {target.tag} back in the cluster anyway"
            )
        try:
            restored = preflight.prepare(settings, env, target)
            verify.run(
                settings, env, cluster, restored.objects, target.tag, tl, suffix=" (previous)", guard=guard
            )
        except LeaseLost:
            raise
        except PipelineError as e:
            why = f"{reason}; restoring {target.tag} failed too: {first_line(e)}"
            if git_error:
                why += f"; reverting git failed as well ({git_error})"
            return Reverted(False, not git_error, commit, why)
    if git_error:
        return Reverted(
            True,
            False,
            None,
            f"{reason}; reverting git failed ({git_error}), but the cluster runs {target.tag} again,"
            f" verified. Left to do: git still pins {failed.ref}; run"
            f" `invoke rollback --env {env.name}` once the remote accepts pushes",
        )
    return Reverted(True, True, commit, reason)


def after_failure(
    run: Run,
    cluster: Kube,
    prepared: preflight.Prepared,
    records: list[history.Record],
    failure: str,
    diagnosis: str,
    record_on: str | None,
) -> ReleaseReport:
    """Put the last good release back (git and cluster), record how it ended, and report it all."""
    settings, env = run.settings, run.env
    target = verify.restore_target(settings, records, prepared.old, run.image.digest)
    back = roll_back(
        settings, env, cluster, run.image, target, first_line(failure), run.approver, run.tl, run.guard
    )
    result: history.Result = "rolled-back" if back.restored and back.in_git else "failed"
    reason = _record_outcome(run, result, back.reason, back.commit, record_on)
    return ReleaseReport(
        env.name, run.kind, result, run.image, run.source_commit, tuple(run.tl.stages), None, reason,
        diagnosis=diagnosis,
    )  # fmt: skip


def after_interrupt(
    run: Run,
    cluster: Kube,
    prepared: preflight.Prepared,
    records: list[history.Record],
    stop: Interrupted,
    bump_commit: str | None,
    record_on: str | None,
) -> ReleaseReport:
    """SIGTERM or Ctrl-C: roll back if anything was changed, record ``interrupted``, and say so."""
    settings, env, tl = run.settings, run.env, run.tl
    at = next((s.name for s in reversed(tl.stages) if s.status == "failed"), "")
    reason = f"interrupted by {stop.signal_name}" + (f" during {at}" if at else "")
    changed = bump_commit is not None or any(s.name == "apply" for s in tl.stages)
    commit: str | None = None
    if changed:
        target = verify.restore_target(settings, records, prepared.old, run.image.digest)
        tl.progress(f"{reason}: the release had started to change {env.name}, so rolling back")
        back = roll_back(settings, env, cluster, run.image, target, reason, run.approver, tl, run.guard)
        reason, commit = back.reason, back.commit
        if back.restored and target is not None:
            reason += f"; rolled back to {target.tag}"
    else:
        reason += ": nothing was changed"
    reason = _record_outcome(run, "interrupted", reason, commit or bump_commit, record_on)
    return ReleaseReport(
        env.name, run.kind, "interrupted", run.image, run.source_commit, tuple(tl.stages), None, reason
    )


def _record_outcome(
    run: Run, result: history.Result, reason: str, commit: str | None, record_on: str | None
) -> str:
    """The outcome of a failed or interrupted run; a failure to write it is added to the reason."""
    try:
        where = commit or record_on or preflight.tip(run.settings)
    except PipelineError as e:
        return f"{reason}; recording it in the history failed too ({first_line(e)})"
    return run.record(where, result, reason, strict=False)
