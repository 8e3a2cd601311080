"""The one place where stages are chained: build, pre-flight, bump, apply, rollout, smoke, record.

Each public function is what one task runs (``build``, ``bump``, ``release``, ``promote``, ``rollback``,
``plan``). The stages do the work: ``build`` (image), ``preflight`` (render, validate, digest),
``gitops``/``overlays`` (the pin), ``apply``, ``rollout``, ``smoke`` and ``history`` (the record);
``report`` holds what a command returns. Checks that need no side effect (approval, tag syntax, the
overlay's existence) run before anything is written, so a refused command leaves nothing half-done; after
the bump, a failed stage rolls back on its own.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import dbrelease, gitops, gke, history, images, overlays, pin, preflight
from .apply import ApplyResult
from .approval import require_approval
from .base import Progress, first_line, quiet
from .compare import ObjectDiff
from .config import Environment, Settings
from .errors import (
    ConfigError,
    PipelineError,
    ReleaseRefused,
    SourceError,
    StageFailed,
)
from .images import Image
from .report import ReleaseReport, StageResult, Timeline

if TYPE_CHECKING:
    from .build import BuildResult
    from .drift import Declared
    from .driftreport import DriftReport
    from .kube import Kube

__all__ = [
    "ReleaseReport", "StageResult", "bump", "drift", "plan", "promote", "release", "repair", "rollback",
]  # fmt: skip


def build(
    settings: Settings,
    *,
    push: bool,
    allow_dirty: bool,
    force: bool = False,
    progress: Progress = quiet,
) -> BuildResult:
    from . import build as build_stage

    source = gitops.source_state(settings.root, settings.image.context)
    if source.dirty and not allow_dirty:
        raise SourceError(
            f"{settings.image.context}/ has uncommitted changes, "
            f"so sha-{source.commit[:7]} would not describe it",
            "Commit them, or pass --allow-dirty to build a -dirty tag",
        )
    tag = images.source_tag(source.commit, source.dirty)
    # A dirty tree's tag does not identify its content: always rebuild it.
    return build_stage.build(
        settings, source.commit, tag, push=push, force=force or source.dirty, progress=progress
    )


def bump(
    settings: Settings,
    env_name: str,
    tag: str,
    *,
    digest: str | None = None,
    approved_by: str | None = None,
) -> pin.BumpResult:
    """Pin ``tag`` (and ``digest``) in the environment's overlay on the GitOps remote."""
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    images.check_tag(tag)
    if digest is not None:
        images.check_digest(digest)
    if not settings.gitops.remote:
        raise ConfigError("no GitOps remote configured", "Set PIPELINE_GITOPS_REMOTE or [gitops] remote")
    new = overlays.Pin(settings.image.kustomize_name, settings.image_repository, tag, digest)
    return pin.publish(settings, env, new, pin.source_commit(settings, tag), approver)


Kind = Literal["release", "promote", "rollback", "repair"]


@dataclass(frozen=True)
class _Verified:
    urls: tuple[str, ...]
    warnings: tuple[str, ...]
    rollout: Mapping[str, Any]


def _verify(
    settings: Settings,
    env: Environment,
    kube: Kube,
    prepared: preflight.Prepared,
    tl: Timeline,
    suffix: str = "",
    db: dbrelease.Guard | None = None,
) -> _Verified:
    """Apply, wait for the rollout, smoke-test; raise StageFailed naming the stage that failed."""
    from . import apply, rollout, smoke
    from .smoke import targets as smoke_targets

    with tl.stage(f"apply{suffix}") as detail:
        try:
            applied = apply.apply_environment(
                settings, env, kube, prepared.objects, dry_run=False, progress=tl.progress
            )
        except PipelineError as e:
            raise StageFailed("apply", str(e)) from e
        detail.append(applied.summary())
    if db is not None:
        db.after_apply(tl)  # a first release's migrations: there was no database before the apply
    with tl.stage(f"rollout{suffix}") as detail:
        try:
            result = rollout.wait(
                kube, applied.workloads, timeout=settings.release.rollout_timeout, on_progress=tl.progress
            )
        except PipelineError as e:
            # The cluster stopped answering mid-rollout: what runs is unknown, so put the previous back.
            raise StageFailed("rollout", str(e)) from e
        if not result.ok:
            raise StageFailed("rollout", result.diagnosis or result.summary)
        detail.append(result.summary or f"{len(result.workloads)} workload(s) ready")
    with tl.stage(f"smoke{suffix}") as detail:
        try:
            targets = smoke_targets.from_cluster(settings, kube, prepared.objects)
        except PipelineError as e:
            raise StageFailed("smoke", str(e)) from e
        if not targets:
            raise StageFailed("smoke", "no NodePort Service or Ingress with an address to test")
        outcome = smoke.run(
            targets,
            env.smoke,
            expected_commit=images.commit_of_tag(prepared.pin.tag),
            deadline_seconds=settings.release.smoke_deadline,
            progress=tl.progress,
        )
        if not outcome.passed:
            raise StageFailed("smoke", outcome.reason())
        detail.append(f"{len(outcome.outcomes)} checks passed")
    return _Verified(tuple(t.label for t in targets), tuple(outcome.warnings), result.to_dict())


def _actor() -> str:
    import getpass

    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _record(
    settings: Settings,
    commit: str,
    env: Environment,
    kind: Kind,
    result: history.Result,
    image: Image,
    source_commit: str,
    approver: str | None,
    reason: str,
    tl: Timeline,
) -> None:
    with tl.stage("record"):
        entry = history.Record(
            env.name, kind, result, image.ref, image.digest, source_commit, _actor(), _now(), approver,
            reason, tl.seconds(),
        )  # fmt: skip
        history.record(settings, commit, entry)


def _preflight(
    settings: Settings, env: Environment, image: Image, force: bool, stack: contextlib.ExitStack, tl: Timeline
) -> tuple[Image, preflight.Prepared, Kube, ApplyResult]:
    """Everything checked before the bump: digest, past failures, render+validate, cluster, dry run."""
    from . import apply, kube

    with tl.stage("preflight") as detail:
        image = preflight.resolve(settings, image)
        assert image.digest is not None
        if not force:
            preflight.refuse_failed(history.read(settings, env.name), image, env)
        pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
        prepared = preflight.prepare(settings, env, pin)
        detail.append(f"{len(prepared.objects)} objects valid")
        cluster = stack.enter_context(kube.connect(gke.environment_access(settings, env)))
        cluster.version()
        dry = apply.apply_environment(settings, env, cluster, prepared.objects, dry_run=True)
        detail.append("dry run accepted")
    return image, prepared, cluster, dry


def deploy(
    settings: Settings,
    env_name: str,
    image: Image,
    *,
    kind: Kind = "release",
    approved_by: str | None = None,
    force: bool = False,
    progress: Progress = quiet,
    timeline: Timeline | None = None,
    record_on: str | None = None,
) -> ReleaseReport:
    """Pre-flight, bump, apply, rollout, smoke, record; after the bump, a failure rolls back on its own.

    Without a bump the record hangs on ``record_on`` (a repair: the overlay commit it put back), else on
    the remote's tip.
    """
    tl = timeline or Timeline(progress)
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    source_commit = pin.source_commit(settings, image.tag)
    with contextlib.ExitStack() as stack:
        image, prepared, cluster, dry = _preflight(settings, env, image, force, stack, tl)
        if not prepared.changes_git and not dry.changed:
            for name in ("bump", "apply", "rollout", "smoke", "record"):
                tl.skip(name, "nothing changed")
            return ReleaseReport(env.name, kind, "unchanged", image, source_commit, tuple(tl.stages))
        # Before anything is written: refuse a PostgreSQL major upgrade, back up a risky release.
        db = dbrelease.guard(settings, env, cluster, prepared, dry, image.pinned)
        db.take_backup(tl)
        bump_commit: str | None = None
        if prepared.changes_git:
            with tl.stage("bump") as detail:
                bumped = pin.publish(settings, env, prepared.pin, source_commit, approver)
                bump_commit = bumped.commit
                detail.append(f"commit {bump_commit[:12]}" if bump_commit else "already pinned")
        else:
            tl.skip("bump", "overlay already pins this image")
        try:
            db.migrate(tl)
            verified = _verify(settings, env, cluster, prepared, tl, db=db)
        except StageFailed as failure:
            tl.progress(f"{failure.stage} failed: rolling back")
            failure = db.recover(failure, tl)
            return _roll_back(
                settings, env, cluster, image, prepared, failure, kind, approver, source_commit, tl, record_on
            )
        commit = bump_commit or record_on or preflight.tip(settings)
        _record(settings, commit, env, kind, "succeeded", image, source_commit, approver, "", tl)
    return ReleaseReport(
        env.name, kind, "released", image, source_commit, tuple(tl.stages), bump_commit, "", verified.urls,
        verified.warnings, verified.rollout,
    )  # fmt: skip


def _roll_back(
    settings: Settings,
    env: Environment,
    cluster: Kube,
    image: Image,
    prepared: preflight.Prepared,
    failure: StageFailed,
    kind: Kind,
    approver: str | None,
    source_commit: str,
    tl: Timeline,
    record_on: str | None = None,
) -> ReleaseReport:
    """Put the previous release back, in git and in the cluster, and verify it the same way."""
    reason = first_line(failure.args[0])
    result: history.Result = "failed"
    record_commit: str | None = None
    old = prepared.old
    # Only a pin with a digest is a release that can be put back exactly; the overlays ship with a
    # placeholder tag that was never built, which is "nothing to return to", not something to apply.
    if prepared.changes_git and old is not None and old.digest:
        try:
            with tl.stage("revert") as detail:
                reverted = pin.publish(
                    settings, env, old, pin.source_commit(settings, old.tag), approver,
                    message=pin.rollback_message(env.name, old, image, reason),
                )  # fmt: skip
                record_commit = reverted.commit
                detail.append(f"commit {reverted.commit[:12]}" if reverted.commit else "already reverted")
            restored = preflight.prepare(settings, env, old)
            _verify(settings, env, cluster, restored, tl, suffix=" (previous)")
            result = "rolled-back"
        except PipelineError as e:
            reason += f"; restoring {old.tag} failed too: {first_line(e)}"
    elif prepared.changes_git:
        reason += " (no previous release to return to)"
    commit = record_commit or record_on or preflight.tip(settings)
    _record(settings, commit, env, kind, result, image, source_commit, approver, reason, tl)
    return ReleaseReport(
        env.name, kind, result, image, source_commit, tuple(tl.stages), None, reason,
        diagnosis=failure.reason,
    )  # fmt: skip


def parse_image(settings: Settings, ref: str) -> Image:
    """``[registry/]repo:tag[@sha256:…]``, or a bare tag of this project's repository."""
    return images.parse(
        ref, default_repository=settings.image_repository, registry_host=settings.registry.host
    )


def release(
    settings: Settings,
    env_name: str,
    *,
    image_ref: str | None = None,
    approved_by: str | None = None,
    force: bool = False,
    progress: Progress = quiet,
) -> ReleaseReport:
    """`invoke release`: build and push (unless an image is given), then deploy it to the environment."""
    env = settings.environment(env_name)
    require_approval(env, approved_by)
    tl = Timeline(progress)
    if image_ref is None:
        with tl.stage("build") as detail:
            built = build(settings, push=True, allow_dirty=False, progress=progress)
            detail.append(built.skipped or "built and pushed")
        image = built.image
    else:
        image = parse_image(settings, image_ref)
    return deploy(settings, env_name, image, approved_by=approved_by, force=force, timeline=tl)


def promote(
    settings: Settings,
    env_name: str = "prod",
    *,
    from_env: str = "staging",
    approved_by: str | None = None,
    expect_digest: str | None = None,
    progress: Progress = quiet,
) -> ReleaseReport:
    """`invoke promote`: the exact digest that passed ``from_env``, through the same stages."""
    env = settings.environment(env_name)
    source = settings.environment(from_env)
    approver = require_approval(env, approved_by)
    records = history.read(settings, source.name)
    current = preflight.current_pin(settings, source)
    if current is None or current.digest is None:
        raise ReleaseRefused(f"{source.overlay} pins no digest", f"Release to {source.name} first")
    if history.passed(records, current.digest) is None:
        raise ReleaseRefused(
            f"{current.ref} has not passed {source.name}",
            f"Only a digest that released successfully to {source.name} can be promoted",
        )
    if expect_digest and expect_digest != current.digest:
        raise ReleaseRefused(
            f"{source.name} now pins {current.digest}, not {expect_digest}",
            "A newer release replaced it; approve the newer one",
        )
    image = Image(current.new_name, current.tag, current.digest)
    return deploy(settings, env.name, image, kind="promote", approved_by=approver, progress=progress)


def rollback(
    settings: Settings,
    env_name: str,
    *,
    to: str | None = None,
    approved_by: str | None = None,
    progress: Progress = quiet,
) -> ReleaseReport:
    """`invoke rollback`: back to the previous good release (or ``to``: a tag, digest or commit)."""
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    records = history.read(settings, env.name)
    if to is None:
        current = preflight.current_pin(settings, env)
        target = history.last_good(records, excluding=current.digest if current else None)
    else:
        target = history.matching(records, to)
    if target is None or target.digest is None:
        what = f"a successful release matching {to!r}" if to else "an earlier successful release"
        raise ReleaseRefused(f"{env.name} has no {what}", "See `invoke history --env " + env.name + "`")
    repository, _, tag = target.image.rpartition(":")
    image = Image(repository, tag, target.digest)
    # A known-good digest: even one that failed later (say, with a bad config) may be restored.
    return deploy(
        settings, env.name, image, kind="rollback", approved_by=approver, force=True, progress=progress
    )


@dataclass(frozen=True)
class Plan:
    env: str
    image: str
    diffs: tuple[ObjectDiff, ...]


def plan(settings: Settings, env_name: str, *, image_ref: str | None = None) -> Plan:
    """`invoke plan`: the rendered overlay (optionally with another image) against the live objects."""
    from . import apply, kube

    env = settings.environment(env_name)
    if image_ref is not None:
        image = preflight.resolve(settings, parse_image(settings, image_ref))
        pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
    else:
        current = preflight.current_pin(settings, env)
        if current is None:
            raise ReleaseRefused(f"{env.overlay} pins no image yet", "Pass --image, or release first")
        pin = current
    prepared = preflight.prepare(settings, env, pin)
    with kube.connect(gke.environment_access(settings, env)) as cluster:
        diffs = apply.diff_environment(settings, env, cluster, prepared.objects)
    return Plan(env.name, pin.ref, tuple(diffs))


def repair(
    settings: Settings,
    env_name: str,
    *,
    approved_by: str | None = None,
    progress: Progress = quiet,
    state: Declared | None = None,
) -> ReleaseReport:
    """Put back exactly what the last good release declared (``state``), through the verified deploy."""
    from . import drift as drift_stage

    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    state = state or drift_stage.declared(settings, env, history.read(settings, env.name))
    image = drift_stage.repair_image(settings, env, state)
    # A digest that failed later may still be the last good one: force, as a rollback does.
    return deploy(
        settings, env.name, image, kind="repair", approved_by=approver, force=True, progress=progress,
        record_on=state.commit,
    )  # fmt: skip


def drift(
    settings: Settings,
    env_name: str,
    *,
    repair_drift: bool = False,
    approved_by: str | None = None,
    progress: Progress = quiet,
) -> DriftReport:
    """`invoke drift`: the live objects against the last good release; with ``repair_drift``, put it back."""
    import dataclasses

    from . import drift as drift_stage
    from . import kube

    env = settings.environment(env_name)
    approver = require_approval(env, approved_by) if repair_drift else None
    tl = Timeline(progress)
    with tl.stage("declared") as detail:
        state = drift_stage.declared(settings, env, history.read(settings, env.name))
        detail.append(f"{len(state.objects)} objects at overlay commit {state.commit[:12]}")
    with tl.stage("compare") as detail, kube.connect(gke.environment_access(settings, env)) as cluster:
        objects = drift_stage.check(settings, env, cluster, state)
        detail.append(f"{sum(o.drifted for o in objects)} of {len(objects)} differ")
    found = drift_stage.report(env, state, objects, tl.stages)
    if not repair_drift or not found.found:
        return found
    try:
        repaired = repair(settings, env.name, approved_by=approver, progress=progress, state=state)
    except PipelineError as e:
        # Still a report: the findings reach the job summary and the webhook, and the command exits 1.
        return dataclasses.replace(found, repair_error=first_line(e))
    with kube.connect(gke.environment_access(settings, env)) as cluster:
        after = drift_stage.check(settings, env, cluster, state)
    return dataclasses.replace(found, repair=repaired, after=tuple(after))
