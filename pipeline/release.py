"""The one place where stages are chained: build -> pin -> commit and push (later: apply, rollout, smoke).

Each function here is what one task runs. Checks that need no side effect (approval, tag syntax, the
overlay's existence) run before anything is written, so a refused command leaves nothing half-done.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from . import build as build_stage
from . import gitops, overlays
from .config import Environment, Settings
from .errors import (
    ApprovalRequired,
    ConfigError,
    ImageNotFound,
    PipelineError,
    ReleaseRefused,
    SmokeError,
    SourceError,
    ValidationFailed,
)

# A name or an e-mail, "asha (interactive)" from a terminal confirmation; nothing that could forge a trailer.
_APPROVER = re.compile(r"[\w .@'+()-]{1,80}")


@dataclass(frozen=True)
class BumpResult:
    env: str
    commit: str | None  # None when the overlay already pinned this image
    bump: overlays.Bump | None
    attempts: int


def require_approval(env: Environment, approved_by: str | None) -> str | None:
    """The approver's name, checked; refuses a protected environment without one."""
    if approved_by is not None:
        name = approved_by.strip()
        if not _APPROVER.fullmatch(name):
            raise ConfigError(
                f"--approved-by {approved_by!r} is not a plain name", "Give a name or an e-mail"
            )
        return name
    if env.protected:
        raise ApprovalRequired(
            f"{env.name} is protected: refusing to change it without an approver",
            "Pass --approved-by NAME (CI: only from a job bound to a protected environment), "
            "or run it at a terminal and confirm",
        )
    return None


def build(
    settings: Settings,
    *,
    push: bool,
    allow_dirty: bool,
    force: bool = False,
    progress: build_stage.Progress = lambda _: None,
) -> build_stage.BuildResult:
    source = gitops.source_state(settings.root, settings.image.context)
    if source.dirty and not allow_dirty:
        raise SourceError(
            f"{settings.image.context}/ has uncommitted changes, "
            f"so sha-{source.commit[:7]} would not describe it",
            "Commit them, or pass --allow-dirty to build a -dirty tag",
        )
    tag = build_stage.source_tag(source.commit, source.dirty)
    # A dirty tree's tag does not identify its content: always rebuild it.
    return build_stage.build(
        settings, source.commit, tag, push=push, force=force or source.dirty, progress=progress
    )


def commit_message(env: str, bump: overlays.Bump, source_commit: str, approved_by: str | None) -> str:
    # "[skip ci]": the bump lands on the branch whose pushes start releases; it must not start another.
    lines = [
        f"deploy({env}): {bump.new.name} {bump.new.tag} [skip ci]",
        "",
        f"Environment: {env}",
        f"Image: {bump.new.new_name}:{bump.new.tag}",
        f"Tag: {bump.new.tag}",
        f"Digest: {bump.new.digest or 'none (tag only)'}",
        f"Source-Commit: {source_commit}",
        f"Previous: {bump.old.ref if bump.old else 'none'}",
    ]
    if approved_by:
        lines += ["", f"Approved-by: {approved_by}"]
    return "\n".join(lines) + "\n"


def _source_commit(settings: Settings, tag: str) -> str:
    match = re.fullmatch(r"sha-([0-9a-f]{7,40})(-dirty)?", tag)
    if match:
        return gitops.resolve_commit(settings.root, match.group(1)) or match.group(1)
    try:
        return gitops.source_state(settings.root, settings.image.context).commit
    except SourceError:
        return "unknown"


def bump(
    settings: Settings,
    env_name: str,
    tag: str,
    *,
    digest: str | None = None,
    approved_by: str | None = None,
) -> BumpResult:
    """Pin ``tag`` (and ``digest``) in the environment's overlay on the GitOps remote."""
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    build_stage.check_tag(tag)
    if digest is not None:
        build_stage.check_digest(digest)
    if not settings.gitops.remote:
        raise ConfigError("no GitOps remote configured", "Set PIPELINE_GITOPS_REMOTE or [gitops] remote")
    new = overlays.Pin(settings.image.kustomize_name, settings.image_repository, tag, digest)
    return _publish(settings, env, new, _source_commit(settings, tag), approver)


def _publish(
    settings: Settings,
    env: Environment,
    new: overlays.Pin,
    source_commit: str,
    approver: str | None,
    message: str | None = None,
) -> BumpResult:
    def change(clone: Path) -> overlays.Bump | None:
        return overlays.pin(overlays.kustomization(clone / env.overlay), new, clone)

    def compose(b: overlays.Bump) -> str:
        return message or commit_message(env.name, b, source_commit, approver)

    published, result = gitops.publish(settings, change, compose)
    return BumpResult(env.name, published.commit, result, published.attempts)


# --- the release chain (issue 4) ---------------------------------------------------------------------------

Status = Literal["ok", "failed", "skipped"]
Kind = Literal["release", "promote", "rollback"]


@dataclass(frozen=True)
class StageResult:
    name: str
    status: Status
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class ReleaseReport:
    env: str
    kind: str  # release, promote, rollback
    # released, unchanged (nothing to do), rolled-back (failed, previous release restored), failed
    result: str
    image: build_stage.Image | None
    source_commit: str
    stages: tuple[StageResult, ...]
    bump_commit: str | None = None
    reason: str = ""
    urls: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    rollout: Mapping[str, Any] | None = None
    # The whole story of a failure (events, log lines); ``reason`` is its first line.
    diagnosis: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("released", "unchanged")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class _Timeline:
    """Times each stage and remembers how it ended, for the summary table and the history record."""

    def __init__(self, progress: build_stage.Progress) -> None:
        self.progress = progress
        self.stages: list[StageResult] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        self.progress(f"[{name}]")
        start = time.monotonic()
        try:
            yield detail
        except BaseException as e:
            why = e.reason if isinstance(e, _Failed) else str(e)
            self.stages.append(StageResult(name, "failed", time.monotonic() - start, _first_line(why)))
            raise
        self.stages.append(StageResult(name, "ok", time.monotonic() - start, "; ".join(detail)))

    def skip(self, name: str, why: str) -> None:
        self.stages.append(StageResult(name, "skipped", 0.0, why))

    def seconds(self) -> dict[str, float]:
        return {s.name: round(s.seconds, 2) for s in self.stages if s.status != "skipped"}


def _first_line(e: BaseException | str) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return textwrap.shorten(line, 300, placeholder=" …")


class _Failed(Exception):
    """A stage after the bump failed: roll back."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


def _access(settings: Settings, env: Environment) -> Any:
    from . import gke, kube

    if env.kube_context:
        return kube.KubeContext(env.kube_context, os.environ.get("KUBECONFIG"))
    return gke.cluster_access(
        env.gke_project, env.gke_location, env.gke_cluster, api_endpoint=settings.release.gke_endpoint or None
    )


def _secret_spec(settings: Settings) -> Any:
    from . import apply

    return apply.SecretSpec(settings.secret.name, dict(settings.secret.keys), settings.secret.namespace)


@dataclass(frozen=True)
class _Prepared:
    pin: overlays.Pin
    old: overlays.Pin | None
    objects: list[dict[str, Any]]
    changes_git: bool


def _prepare(settings: Settings, env: Environment, pin: overlays.Pin) -> _Prepared:
    """The overlay at the remote's tip with ``pin`` applied, rendered and validated; nothing is written."""
    from . import render, validate

    with tempfile.TemporaryDirectory(prefix="campus-release-") as tmp:
        root = Path(tmp)
        gitops.snapshot(settings, root)
        path = overlays.kustomization(root / env.overlay)
        old = overlays.read_pin(path, pin.name)
        bumped = overlays.pin(path, pin, root)
        rendered = render.kustomize_build(root / env.overlay)
        report = validate.validate_rendered(
            root / env.overlay, rendered, placeholder_images=[settings.image.kustomize_name]
        )
        if report.errors:
            raise ValidationFailed(
                f"{env.overlay} does not validate "
                f"({len(report.errors)} error(s), first: {report.errors[0].message})",
                [f.message for f in report.errors],
                "Run `invoke validate` and fix the manifests",
            )
    return _Prepared(pin, old, list(rendered.objects), bumped is not None)


def _node_ip(kube: Any) -> str:
    nodes, _ = kube.list_objects("v1", "Node")
    for node in nodes:
        for address in node.get("status", {}).get("addresses", []):
            if address.get("type") == "ExternalIP":
                return str(address["address"])
    raise SmokeError("no node has an ExternalIP", "NodePort smoke tests need a public node address")


def _smoke_targets(settings: Settings, kube: Any, objects: list[dict[str, Any]]) -> list[Any]:
    """NodePort and Ingress addresses as the API reports them, so a test reaches what users reach."""
    from . import smoke

    targets: list[smoke.Target] = []
    ca = Path(settings.release.ingress_ca_bundle) if settings.release.ingress_ca_bundle else None
    for obj in objects:
        meta = obj.get("metadata", {})
        if obj.get("kind") == "Service" and obj.get("spec", {}).get("type") == "NodePort":
            live = kube.get("v1", "Service", meta["name"], meta.get("namespace"))
            ports = (live or {}).get("spec", {}).get("ports", [])
            if ports and ports[0].get("nodePort"):
                targets.append(smoke.Target.nodeport(_node_ip(kube), int(ports[0]["nodePort"])))
        elif obj.get("kind") == "Ingress":
            live = kube.get("networking.k8s.io/v1", "Ingress", meta["name"], meta.get("namespace")) or {}
            lb = live.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}]
            ip = lb[0].get("ip")
            hosts = [r["host"] for r in obj.get("spec", {}).get("rules", []) if r.get("host")]
            if ip and hosts:
                targets.append(
                    smoke.Target.ingress(ip, hosts[0], ca_bundle=ca, port=settings.release.ingress_port)
                )
    return targets


def _expected_commit(tag: str) -> str | None:
    match = re.fullmatch(r"sha-([0-9a-f]{7,40})(-dirty)?", tag)
    return match.group(1) if match else None


def _verify(
    settings: Settings,
    env: Environment,
    kube: Any,
    objects: list[dict[str, Any]],
    tag: str,
    tl: _Timeline,
    suffix: str = "",
) -> tuple[tuple[str, ...], tuple[str, ...], Mapping[str, Any]]:
    """Apply, wait for the rollout, smoke-test; raise _Failed naming the stage that failed."""
    from . import rollout, smoke

    with tl.stage(f"apply{suffix}") as detail:
        try:
            applied = _apply(settings, env, kube, objects, dry_run=False, progress=tl.progress)
        except PipelineError as e:
            raise _Failed("apply", str(e)) from e
        detail.append(applied.summary())
    with tl.stage(f"rollout{suffix}") as detail:
        try:
            result = rollout.wait(
                kube, applied.workloads, timeout=settings.release.rollout_timeout, on_progress=tl.progress
            )
        except PipelineError as e:
            # The cluster stopped answering mid-rollout: what runs is unknown, so put the previous back.
            raise _Failed("rollout", str(e)) from e
        if not result.ok:
            raise _Failed("rollout", result.diagnosis or result.summary)
        detail.append(result.summary or f"{len(result.workloads)} workload(s) ready")
    with tl.stage(f"smoke{suffix}") as detail:
        try:
            targets = _smoke_targets(settings, kube, objects)
        except PipelineError as e:
            raise _Failed("smoke", str(e)) from e
        if not targets:
            raise _Failed("smoke", "no NodePort Service or Ingress with an address to test")
        outcome = smoke.run(
            targets,
            env.smoke,
            expected_commit=_expected_commit(tag),
            deadline_seconds=settings.release.smoke_deadline,
            progress=tl.progress,
        )
        if not outcome.passed:
            raise _Failed("smoke", outcome.reason())
        detail.append(f"{len(outcome.outcomes)} checks passed")
    return tuple(t.label for t in targets), tuple(outcome.warnings), result.to_dict()


def _actor() -> str:
    import getpass

    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def deploy(
    settings: Settings,
    env_name: str,
    image: build_stage.Image,
    *,
    kind: Kind = "release",
    approved_by: str | None = None,
    force: bool = False,
    progress: build_stage.Progress = lambda _: None,
    timeline: _Timeline | None = None,
) -> ReleaseReport:
    """Pre-flight, bump, apply, rollout, smoke, record; after the bump, a failure rolls back on its own."""
    from . import history, kube

    tl = timeline or _Timeline(progress)
    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    source_commit = _source_commit(settings, image.tag)
    with contextlib.ExitStack() as stack:
        with tl.stage("preflight") as detail:
            image = _resolve(settings, image)
            assert image.digest is not None
            records = history.read(settings, env.name)
            if not force and image.digest in history.failed_digests(records):
                raise ReleaseRefused(
                    f"{image.ref}@{image.digest[:19]}… failed in {env.name} before",
                    "Release a fixed image, or pass --force to try this digest again",
                )
            pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
            prepared = _prepare(settings, env, pin)
            detail.append(f"{len(prepared.objects)} objects valid")
            cluster = stack.enter_context(kube.connect(_access(settings, env)))
            cluster.version()
            dry = _apply(settings, env, cluster, prepared.objects, dry_run=True)
            detail.append("dry run accepted")
        if not prepared.changes_git and not dry.changed:
            for name in ("bump", "apply", "rollout", "smoke", "record"):
                tl.skip(name, "nothing changed")
            return ReleaseReport(env.name, kind, "unchanged", image, source_commit, tuple(tl.stages))
        bump_commit: str | None = None
        if prepared.changes_git:
            with tl.stage("bump") as detail:
                result = _publish(settings, env, pin, source_commit, approver)
                bump_commit = result.commit
                detail.append(f"commit {bump_commit[:12]}" if bump_commit else "already pinned")
        else:
            tl.skip("bump", "overlay already pins this image")
        try:
            urls, warnings, rollout_data = _verify(settings, env, cluster, prepared.objects, image.tag, tl)
        except _Failed as failure:
            tl.progress(f"{failure.stage} failed: rolling back")
            return _roll_back(
                settings, env, cluster, image, prepared, failure, kind, approver, source_commit, tl
            )
        with tl.stage("record"):
            commit = bump_commit or _tip(settings)
            entry = history.Record(
                env.name, kind, "succeeded", image.ref, image.digest, source_commit, _actor(), _now(),
                approver, "", tl.seconds(),
            )  # fmt: skip
            history.record(settings, commit, entry)
    return ReleaseReport(
        env.name, kind, "released", image, source_commit, tuple(tl.stages), bump_commit, "", urls, warnings,
        rollout_data,
    )  # fmt: skip


def _resolve(settings: Settings, image: build_stage.Image) -> build_stage.Image:
    """The image with its registry digest; refuses (before anything is written) an image that is absent."""
    found = build_stage.lookup(settings, image.tag, repository=image.repository)
    if found is None:
        raise ImageNotFound(
            f"{image.ref} is not in the registry", "Build and push it first (`invoke build --push`)"
        )
    if image.digest and found.digest != image.digest:
        raise ReleaseRefused(
            f"{image.ref} now has digest {found.digest}, not the {image.digest} asked for",
            "The tag was pushed again; release by the digest the registry has, or rebuild",
        )
    return found


def _apply(
    settings: Settings,
    env: Environment,
    cluster: Any,
    objects: list[dict[str, Any]],
    *,
    dry_run: bool,
    progress: build_stage.Progress = lambda _: None,
) -> Any:
    from . import apply

    return apply.apply(
        cluster,
        objects,
        secret=_secret_spec(settings),
        field_manager=settings.release.field_manager,
        dry_run=dry_run,
        prune=True,
        inventory=env.name,
        environ=os.environ,
        on_progress=progress,
    )


def _tip(settings: Settings) -> str:
    with tempfile.TemporaryDirectory(prefix="campus-tip-") as tmp:
        return gitops.snapshot(settings, Path(tmp))


def rollback_message(env: str, restored: overlays.Pin, failed: build_stage.Image, reason: str) -> str:
    lines = [
        f"rollback({env}): {restored.name} back to {restored.tag} [skip ci]",
        "",
        f"Reason: {reason}",
        f"Failed-Image: {failed.pinned}",
        f"Restored-Image: {restored.ref}",
    ]
    return "\n".join(lines) + "\n"


def _roll_back(
    settings: Settings,
    env: Environment,
    cluster: Any,
    image: build_stage.Image,
    prepared: _Prepared,
    failure: _Failed,
    kind: Kind,
    approver: str | None,
    source_commit: str,
    tl: _Timeline,
) -> ReleaseReport:
    """Put the previous release back, in git and in the cluster, and verify it the same way."""
    from . import history

    reason = _first_line(failure.args[0])
    result: history.Result = "failed"
    record_commit: str | None = None
    old = prepared.old
    # Only a pin with a digest is a release that can be put back exactly; the overlays ship with a
    # placeholder tag that was never built, which is "nothing to return to", not something to apply.
    if prepared.changes_git and old is not None and old.digest:
        try:
            with tl.stage("revert") as detail:
                reverted = _publish(
                    settings, env, old, _source_commit(settings, old.tag), approver,
                    message=rollback_message(env.name, old, image, reason),
                )  # fmt: skip
                record_commit = reverted.commit
                detail.append(f"commit {reverted.commit[:12]}" if reverted.commit else "already reverted")
            restored = _prepare(settings, env, old)
            _verify(settings, env, cluster, restored.objects, old.tag, tl, suffix=" (previous)")
            result = "rolled-back"
        except (_Failed, PipelineError) as e:
            reason += f"; restoring {old.tag} failed too: {_first_line(e)}"
    elif prepared.changes_git:
        reason += " (no previous release to return to)"
    with tl.stage("record"):
        entry = history.Record(
            env.name, kind, result, image.ref, image.digest, source_commit,
            _actor(), _now(), approver, reason, tl.seconds(),
        )  # fmt: skip
        history.record(settings, record_commit or _tip(settings), entry)
    return ReleaseReport(
        env.name, kind, result, image, source_commit, tuple(tl.stages), None, reason,
        diagnosis=failure.reason,
    )  # fmt: skip


def parse_image(settings: Settings, ref: str) -> build_stage.Image:
    """``[registry/]repo:tag[@sha256:…]``, or a bare tag of this project's repository."""
    ref = ref.strip()
    name, _, digest = ref.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        repository, _, tag = name.rpartition(":")
    else:
        repository, tag = (settings.image_repository, name) if "/" not in name else (name, "")
    if not tag:
        raise ConfigError(f"--image {ref!r} has no tag", "Give it as repository:tag[@sha256:...]")
    if "/" in repository and "." not in repository.split("/")[0] and ":" not in repository.split("/")[0]:
        repository = f"{settings.registry.host}/{repository}"
    build_stage.check_tag(tag)
    return build_stage.Image(repository, tag, build_stage.check_digest(digest) if digest else None)


def release(
    settings: Settings,
    env_name: str,
    *,
    image_ref: str | None = None,
    approved_by: str | None = None,
    force: bool = False,
    progress: build_stage.Progress = lambda _: None,
) -> ReleaseReport:
    """`invoke release`: build and push (unless an image is given), then deploy it to the environment."""
    env = settings.environment(env_name)
    require_approval(env, approved_by)
    tl = _Timeline(progress)
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
    progress: build_stage.Progress = lambda _: None,
) -> ReleaseReport:
    """`invoke promote`: the exact digest that passed ``from_env``, through the same stages."""
    from . import history

    env = settings.environment(env_name)
    source = settings.environment(from_env)
    approver = require_approval(env, approved_by)
    records = history.read(settings, source.name)
    current = _current_pin(settings, source)
    if current is None or current.digest is None:
        raise ReleaseRefused(f"{source.overlay} pins no digest", f"Release to {source.name} first")
    passed = next((r for r in records if r.digest == current.digest and r.result == "succeeded"), None)
    if passed is None:
        raise ReleaseRefused(
            f"{current.ref} has not passed {source.name}",
            f"Only a digest that released successfully to {source.name} can be promoted",
        )
    if expect_digest and expect_digest != current.digest:
        raise ReleaseRefused(
            f"{source.name} now pins {current.digest}, not {expect_digest}",
            "A newer release replaced it; approve the newer one",
        )
    image = build_stage.Image(current.new_name, current.tag, current.digest)
    return deploy(settings, env.name, image, kind="promote", approved_by=approver, progress=progress)


def _current_pin(settings: Settings, env: Environment) -> overlays.Pin | None:
    with tempfile.TemporaryDirectory(prefix="campus-pin-") as tmp:
        gitops.snapshot(settings, Path(tmp))
        return overlays.read_pin(
            overlays.kustomization(Path(tmp) / env.overlay), settings.image.kustomize_name
        )


def rollback(
    settings: Settings,
    env_name: str,
    *,
    to: str | None = None,
    approved_by: str | None = None,
    progress: build_stage.Progress = lambda _: None,
) -> ReleaseReport:
    """`invoke rollback`: back to the previous good release (or ``to``: a tag, digest or commit)."""
    from . import history

    env = settings.environment(env_name)
    approver = require_approval(env, approved_by)
    records = history.read(settings, env.name)
    current = _current_pin(settings, env)
    if to is None:
        target = history.last_good(records, excluding=current.digest if current else None)
    else:
        target = next(
            (r for r in records if (r.result == "succeeded" and to in (r.image.rsplit(":", 1)[-1], r.digest))
             or (len(to) >= 7 and r.commit.startswith(to))),
            None,
        )  # fmt: skip
    if target is None or target.digest is None:
        what = f"a successful release matching {to!r}" if to else "an earlier successful release"
        raise ReleaseRefused(f"{env.name} has no {what}", "See `invoke history --env " + env.name + "`")
    repository, _, tag = target.image.rpartition(":")
    image = build_stage.Image(repository, tag, target.digest)
    # A known-good digest: even one that failed later (say, with a bad config) may be restored.
    return deploy(
        settings, env.name, image, kind="rollback", approved_by=approver, force=True, progress=progress
    )


@dataclass(frozen=True)
class Plan:
    env: str
    image: str
    diffs: tuple[Any, ...]


def plan(settings: Settings, env_name: str, *, image_ref: str | None = None) -> Plan:
    """`invoke plan`: the rendered overlay (optionally with another image) against the live objects."""
    from . import apply, kube

    env = settings.environment(env_name)
    current = _current_pin(settings, env)
    if image_ref is not None:
        image = _resolve(settings, parse_image(settings, image_ref))
        pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
    elif current is not None:
        pin = current
    else:
        raise ReleaseRefused(f"{env.overlay} pins no image yet", "Pass --image, or release first")
    prepared = _prepare(settings, env, pin)
    with kube.connect(_access(settings, env)) as cluster:
        diffs = apply.diff(
            cluster,
            prepared.objects,
            secret=_secret_spec(settings),
            field_manager=settings.release.field_manager,
            inventory=env.name,
            environ=os.environ,
        )
    return Plan(env.name, pin.ref, tuple(diffs))
