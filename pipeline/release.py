"""The one place where stages are chained: build, pre-flight, bump, apply, rollout, smoke, record.

Each public function is what one task runs (``build``, ``bump``, ``release``, ``promote``, ``rollback``,
``plan``). The stages do the work: ``build`` (image), ``preflight`` (render, validate, digest),
``gitops``/``overlays`` (the pin), ``verify`` (apply, rollout, smoke), ``revert`` (the rollback) and
``operation``/``history`` (the record); ``report`` holds what a command returns. Checks that need no side
effect (approval, tag syntax, the overlay's existence) run before anything is written, so a refused
command leaves nothing half-done; after the bump, a failed stage rolls back on its own.

Release, promote, rollback and repair run one at a time per environment: each holds the environment's
Lease (``lease``) and checks it before every write, and notes SIGTERM/Ctrl-C (``interrupt``) to stop at
the next safe point, rolling back what it had changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import (
    building,
    dbrelease,
    gkecache,
    history,
    images,
    interrupt,
    lease,
    noop,
    operation,
    overlays,
    pin,
    preflight,
    revert,
    verify,
)
from .approval import require_approval
from .base import Progress, first_line, quiet
from .compare import ObjectDiff
from .config import Environment, Settings
from .errors import ConfigError, Interrupted, PipelineError, ReleaseRefused, StageFailed
from .images import Image
from .report import ReleaseReport, StageResult, Timeline

if TYPE_CHECKING:
    from .drift import Declared
    from .driftreport import DriftReport

__all__ = [
    "ReleaseReport", "StageResult", "bump", "drift", "plan", "promote", "release", "repair", "rollback",
]  # fmt: skip


build = building.build


def bump(
    settings: Settings,
    env_name: str,
    tag: str,
    *,
    digest: str | None = None,
    approved_by: str | None = None,
) -> pin.BumpResult:
    """Pin ``tag`` with its registry digest (``digest``, when given, must be it) on the GitOps remote."""
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    images.check_tag(tag)
    if digest is not None:
        images.check_digest(digest)
    if not settings.gitops.remote:
        raise ConfigError("no GitOps remote configured", "Set PIPELINE_GITOPS_REMOTE or [gitops] remote")
    # Pinned with the registry's digest: a tag the registry lacks would deploy nothing, and a pin without
    # its digest would drop the one the overlay had. A --digest that is not the tag's is refused.
    image = preflight.resolve(settings, Image(settings.image_repository, tag, digest))
    new = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
    return pin.publish(settings, env, new, pin.source_commit(settings, tag), approver)


Kind = operation.Kind


@contextlib.contextmanager
def exclusive(
    settings: Settings, env: Environment, kind: Kind, wait: float | None, progress: Progress
) -> Iterator[verify.Guard]:
    """The environment's Lease and SIGTERM/Ctrl-C handling, for one operation; yields the write guard."""
    with interrupt.handled(), lease.held(settings, env, kind, wait=wait, progress=progress) as held:
        yield held.check


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
    guard: verify.Guard = lambda: None,
) -> ReleaseReport:
    """Pre-flight, bump, apply, rollout, smoke, record; after the bump, a failure rolls back on its own.

    Call it holding the environment's Lease (``guard`` checks it before each write). Without a bump the
    record hangs on ``record_on`` (a repair: the overlay commit it put back), else on the remote's tip.
    """
    tl = timeline or Timeline(progress)
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    source_commit = pin.source_commit(settings, image.tag)
    with contextlib.ExitStack() as stack:
        records = operation.records(settings, env, guard, tl)
        image, prepared, cluster, dry = preflight.run(settings, env, image, force, records, stack, tl)
        if not prepared.changes_git and not dry.changed:
            if verify.settled(records, image.digest):
                for name in ("bump", "apply", "rollout", "smoke", "record"):
                    tl.skip(name, "nothing changed")
                noop.remember_unchanged(settings, env, cluster, image, prepared.objects, prepared.base)
                return ReleaseReport(env.name, kind, "unchanged", image, source_commit, tuple(tl.stages))
            tl.progress(f"{env.name} runs {image.ref}, but no release of it succeeded here: verifying it")
        interrupt.check()  # nothing written yet: stop plainly
        # Before anything is written: refuse a PostgreSQL major upgrade, back up a risky release.
        db = dbrelease.guard(settings, env, cluster, prepared, dry, image.pinned)
        db.take_backup(tl)
        run = operation.Run(settings, env, kind, image, source_commit, approver, tl, guard)
        run.start()
        bump_commit: str | None = None
        try:
            interrupt.check()
            if prepared.changes_git:
                guard()
                with tl.stage("bump") as detail:
                    bumped = pin.publish(settings, env, prepared.pin, source_commit, approver)
                    bump_commit = bumped.commit
                    detail.append(f"commit {bump_commit[:12]}" if bump_commit else "already pinned")
            else:
                tl.skip("bump", "overlay already pins this image")
            db.migrate(tl)
            verified = verify.run(
                settings, env, cluster, prepared.objects, prepared.pin.tag, tl, guard=guard,
                after_apply=db.after_apply,
            )  # fmt: skip
        except StageFailed as failure:
            tl.progress(f"{failure.stage} failed: rolling back")
            failure = db.recover(failure, tl)
            return revert.after_failure(
                run, cluster, prepared, records, failure.args[0], failure.reason, record_on
            )
        except Interrupted as stop:
            return revert.after_interrupt(run, cluster, prepared, records, stop, bump_commit, record_on)
        commit = bump_commit or record_on or preflight.tip(settings)
        run.record(commit, "succeeded")
        with tl.stage("fingerprint"):
            noop.remember(settings, env, cluster, image, prepared.objects, prepared.base, commit)
    return ReleaseReport(
        env.name, kind, "released", image, source_commit, tuple(tl.stages), bump_commit, "", verified.urls,
        verified.warnings, verified.rollout,
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
    wait: float | None = None,
) -> ReleaseReport:
    """`invoke release`: build and push (unless an image is given), then deploy it to the environment.

    ``wait``: seconds to wait for another operation on the environment (None: ``[release] lock_wait``).
    """
    env = settings.environment(env_name)
    require_approval(env, approved_by)
    tl = Timeline(progress)
    if image_ref is None:
        with tl.stage("build") as detail:
            built = build(settings, push=True, allow_dirty=False, progress=progress)
            detail.append(built.skipped or "built and pushed")
        image = built.image
    else:
        # An image the registry does not have is refused before the Lease: nothing in the cluster changes.
        image = preflight.resolve(settings, parse_image(settings, image_ref))
    # Nothing new, seen from cheap facts that need no Lease (noop.py writes nothing); else the full path.
    same = None if force else noop.shortcut(settings, env, image, tl)
    if same is not None:
        source = pin.source_commit(settings, same.tag)
        return ReleaseReport(env.name, "release", "unchanged", same, source, tuple(tl.stages))
    with exclusive(settings, env, "release", wait, progress) as guard:
        return deploy(
            settings, env_name, image, approved_by=approved_by, force=force, timeline=tl, guard=guard
        )


def promote(
    settings: Settings,
    env_name: str = "prod",
    *,
    from_env: str = "staging",
    approved_by: str | None = None,
    expect_digest: str | None = None,
    progress: Progress = quiet,
    wait: float | None = None,
) -> ReleaseReport:
    """`invoke promote`: the exact digest that passed ``from_env``, through the same stages."""
    env = settings.environment(env_name)
    source = settings.environment(from_env)
    approver = require_approval(env, approved_by)
    if expect_digest is not None:
        images.check_digest(expect_digest)
    with exclusive(settings, env, "promote", wait, progress) as guard:
        return _promote(settings, env, source, approver, expect_digest, progress, guard)


def _promote(
    settings: Settings,
    env: Environment,
    source: Environment,
    approver: str | None,
    expect_digest: str | None,
    progress: Progress,
    guard: verify.Guard,
) -> ReleaseReport:
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
    return deploy(
        settings, env.name, image, kind="promote", approved_by=approver, progress=progress, guard=guard
    )


def rollback(
    settings: Settings,
    env_name: str,
    *,
    to: str | None = None,
    approved_by: str | None = None,
    progress: Progress = quiet,
    wait: float | None = None,
) -> ReleaseReport:
    """`invoke rollback`: back to the previous good release (or ``to``: a tag, digest or commit)."""
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    # Knowable up front, so refused before the Lease and the cluster are touched; chosen again under the
    # Lease, where history can no longer change under us.
    _rollback_target(settings, env, to)
    with exclusive(settings, env, "rollback", wait, progress) as guard:
        return _rollback(settings, env, to, approver, progress, guard)


def _rollback_target(settings: Settings, env: Environment, to: str | None) -> history.Record:
    records = history.read(settings, env.name)
    if to is None:
        current = preflight.current_pin(settings, env)
        target = history.last_good(records, excluding=current.digest if current else None)
    else:
        target = history.matching(records, to)
    if target is None or target.digest is None:
        what = f"successful release matching {to!r}" if to else "earlier successful release"
        raise ReleaseRefused(f"{env.name} has no {what}", "See `invoke history --env " + env.name + "`")
    return target


def _rollback(
    settings: Settings,
    env: Environment,
    to: str | None,
    approver: str | None,
    progress: Progress,
    guard: verify.Guard,
) -> ReleaseReport:
    target = _rollback_target(settings, env, to)
    repository, _, tag = target.image.rpartition(":")
    image = Image(repository, tag, target.digest)
    # A known-good digest: even one that failed later (say, with a bad config) may be restored.
    return deploy(
        settings, env.name, image, kind="rollback", approved_by=approver, force=True, progress=progress,
        guard=guard,
    )  # fmt: skip


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
    with kube.connect(gkecache.environment_access(settings, env)) as cluster:
        diffs = apply.diff_environment(settings, env, cluster, prepared.objects)
    return Plan(env.name, pin.ref, tuple(diffs))


def repair(
    settings: Settings,
    env_name: str,
    *,
    approved_by: str | None = None,
    progress: Progress = quiet,
    state: Declared | None = None,
    wait: float | None = None,
) -> ReleaseReport:
    """Put back exactly what the last good release declared (``state``), through the verified deploy."""
    from . import drift as drift_stage

    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    with exclusive(settings, env, "repair", wait, progress) as guard:
        state = state or drift_stage.declared(settings, env, history.read(settings, env.name))
        image = drift_stage.repair_image(settings, env, state)
        # A digest that failed later may still be the last good one: force, as a rollback does.
        return deploy(
            settings, env.name, image, kind="repair", approved_by=approver, force=True, progress=progress,
            record_on=state.commit, guard=guard,
        )  # fmt: skip


def drift(
    settings: Settings,
    env_name: str,
    *,
    repair_drift: bool = False,
    approved_by: str | None = None,
    progress: Progress = quiet,
    wait: float | None = None,
) -> DriftReport:
    """`invoke drift`: the live objects against the last good release; with ``repair_drift``, put it back."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from . import drift as drift_stage
    from . import kube

    env = settings.environment(env_name)
    approver = require_approval(env, approved_by) if repair_drift else None
    tl = Timeline(progress)
    # The cluster's address and token are looked up, and the client library imported, while git and
    # kustomize say what was declared.
    with ThreadPoolExecutor(2, thread_name_prefix="access") as pool:
        pool.submit(kube.preload)
        access = pool.submit(gkecache.environment_access, settings, env)
        with tl.stage("declared") as detail:
            state = drift_stage.declared(settings, env, history.read(settings, env.name))
            detail.append(f"{len(state.objects)} objects at overlay commit {state.commit[:12]}")
        reached = access.result()
    with tl.stage("compare") as detail, kube.connect(reached) as cluster:
        objects = drift_stage.check(settings, env, cluster, state)
        detail.append(f"{sum(o.drifted for o in objects)} of {len(objects)} differ")
    found = drift_stage.report(env, state, objects, tl.stages)
    if not repair_drift or not found.found:
        return found
    try:
        repaired = repair(settings, env.name, approved_by=approver, progress=progress, state=state, wait=wait)
    except PipelineError as e:
        # Still a report: the findings reach the job summary and the webhook, and the command exits 1.
        return dataclasses.replace(found, repair_error=first_line(e))
    with kube.connect(gkecache.environment_access(settings, env)) as cluster:
        after = drift_stage.check(settings, env, cluster, state)
    return dataclasses.replace(found, repair=repaired, after=tuple(after))
