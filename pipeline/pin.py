"""Bump stage: pin an image in an environment's overlay on the GitOps remote, as one commit.

``overlays`` makes the one-line edit, ``gitops`` commits and pushes it from the pipeline's own clone (with
retries when the remote moved); this module says what the commit is: its message (with ``[skip ci]``, the
image, the digest, the source commit and the approver) and, for an automatic rollback, the revert's
message with the reason. ``release.py`` calls :func:`publish` for a bump and for a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import gitops, images, overlays
from .config import Environment, Settings
from .errors import SourceError
from .images import Image


@dataclass(frozen=True)
class BumpResult:
    env: str
    commit: str | None  # None when the overlay already pinned this image
    bump: overlays.Bump | None
    attempts: int


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


def source_commit(settings: Settings, tag: str) -> str:
    """The full source commit a ``sha-`` tag names (or the checkout's, or "unknown")."""
    short = images.commit_of_tag(tag)
    if short:
        return gitops.resolve_commit(settings.root, short) or short
    try:
        return gitops.source_state(settings.root, settings.image.context).commit
    except SourceError:
        return "unknown"


def publish(
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


def rollback_message(env: str, restored: overlays.Pin, failed: Image, reason: str) -> str:
    lines = [
        f"rollback({env}): {restored.name} back to {restored.tag} [skip ci]",
        "",
        f"Reason: {reason}",
        f"Failed-Image: {failed.pinned}",
        f"Restored-Image: {restored.ref}",
    ]
    return "\n".join(lines) + "\n"
