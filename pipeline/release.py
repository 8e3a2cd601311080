"""The one place where stages are chained: build -> pin -> commit and push (later: apply, rollout, smoke).

Each function here is what one task runs. Checks that need no side effect (approval, tag syntax, the
overlay's existence) run before anything is written, so a refused command leaves nothing half-done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import build as build_stage
from . import gitops, overlays
from .config import Environment, Settings
from .errors import ApprovalRequired, ConfigError, SourceError

_APPROVER = re.compile(r"[\w .@'+-]{1,80}")


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
    source_commit = _source_commit(settings, tag)

    def change(clone: Path) -> overlays.Bump | None:
        return overlays.pin(overlays.kustomization(clone / env.overlay), new, clone)

    def message(b: overlays.Bump) -> str:
        return commit_message(env.name, b, source_commit, approver)

    published, result = gitops.publish(settings, change, message)
    return BumpResult(env.name, published.commit, result, published.attempts)
