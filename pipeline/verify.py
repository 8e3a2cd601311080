"""Verify stage: what makes a pin "released": applied, rolled out healthy, and answering its smoke tests.

:func:`run` applies the rendered objects, waits for the rollout and runs the smoke tests, raising
:class:`~pipeline.errors.StageFailed` with the stage that failed; ``release.py`` calls it after a bump,
``revert`` for the release it puts back. Two rules about what counts as verified live here, each in its
own small function so that a faster check may sit in front of them:

- :func:`settled`: git and the cluster agreeing is not "nothing to do". Only a ``succeeded`` record for
  exactly the pinned digest is; without one (a release killed mid-rollout or mid-smoke) the pin is
  verified again, and rolled back if it fails.
- :func:`restore_target`: what a failed release goes back to: the previous pin only if it was verified,
  else the newest release that succeeded; a pin that was never verified is never "last good".

Neighbours: ``apply``, ``rollout`` and ``smoke`` do the work; ``interrupt`` is checked between them;
``history`` holds the records the rules read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import history, images, interrupt, overlays
from .base import Obj
from .config import Environment, Settings
from .errors import Interrupted, PipelineError, StageFailed
from .report import Timeline

if TYPE_CHECKING:
    from .kube import Kube

# Called before each write: raises LeaseLost when another operation took the environment over.
Guard = Callable[[], None]


def _unguarded() -> None:
    """The default :data:`Guard`: no Lease to check."""


@dataclass(frozen=True)
class Verified:
    urls: tuple[str, ...]
    warnings: tuple[str, ...]
    rollout: Mapping[str, Any]


def settled(records: list[history.Record], digest: str | None) -> bool:
    """Whether a release that finds git and the cluster already on ``digest`` has nothing to do.

    Only a ``succeeded`` record for exactly this digest, as its newest record here (no-ops aside), says so.
    """
    return history.verified(records, digest)


def restore_target(
    settings: Settings, records: list[history.Record], old: overlays.Pin | None, failed: str | None
) -> overlays.Pin | None:
    """The release to put back after ``failed`` (a digest): ``old`` if it was verified, else the last good."""
    if old is not None and old.digest and old.digest != failed and history.verified(records, old.digest):
        return old
    good = history.last_good(records, excluding=failed)
    if good is None or not good.digest:
        return None
    repository, _, tag = good.image.rpartition(":")
    return overlays.Pin(settings.image.kustomize_name, repository, tag, good.digest)


def run(
    settings: Settings,
    env: Environment,
    kube: Kube,
    objects: list[Obj],
    tag: str,
    tl: Timeline,
    *,
    suffix: str = "",
    guard: Guard = _unguarded,
    after_apply: Callable[[Timeline], None] | None = None,
) -> Verified:
    """Apply, wait for the rollout, smoke-test; raise StageFailed naming the stage that failed.

    Between stages (and inside the waits) a SIGTERM or Ctrl-C raises
    :class:`~pipeline.errors.Interrupted`, unless the caller is shielded (a rollback).
    """
    from . import apply, rollout, smoke
    from .smoke import targets as smoke_targets

    interrupt.check()
    guard()
    with tl.stage(f"apply{suffix}") as detail:
        try:
            applied = apply.apply_environment(
                settings, env, kube, objects, dry_run=False, progress=tl.progress
            )
        except PipelineError as e:
            raise StageFailed("apply", str(e)) from e
        detail.append(applied.summary())
    if after_apply is not None:
        after_apply(tl)  # a first release's migrations: there was no database before the apply
    interrupt.check()
    with tl.stage(f"rollout{suffix}") as detail:
        try:
            result = rollout.wait(
                kube, applied.workloads, timeout=settings.release.rollout_timeout, on_progress=tl.progress
            )
        except Interrupted:
            raise
        except PipelineError as e:
            # The cluster stopped answering mid-rollout: what runs is unknown, so put the previous back.
            raise StageFailed("rollout", str(e)) from e
        if not result.ok:
            raise StageFailed("rollout", result.diagnosis or result.summary)
        detail.append(result.summary or f"{len(result.workloads)} workload(s) ready")
    interrupt.check()
    with tl.stage(f"smoke{suffix}") as detail:
        try:
            targets = smoke_targets.from_cluster(settings, kube, objects)
        except PipelineError as e:
            raise StageFailed("smoke", str(e)) from e
        if not targets:
            raise StageFailed("smoke", "no NodePort Service or Ingress with an address to test")
        outcome = smoke.run(
            targets,
            env.smoke,
            expected_commit=images.commit_of_tag(tag),
            deadline_seconds=settings.release.smoke_deadline,
            progress=tl.progress,
        )
        interrupt.check()  # an interrupted smoke run stops early: its failures are not the image's
        if not outcome.passed:
            raise StageFailed("smoke", outcome.reason())
        detail.append(f"{len(outcome.outcomes)} checks passed")
    return Verified(tuple(t.label for t in targets), tuple(outcome.warnings), result.to_dict())
