"""Pre-flight stage: everything a release checks before it writes anything.

The overlay at the GitOps remote's tip with the new pin, rendered once and validated (``render``,
``validate``); the image's digest as the registry has it (``build.lookup``); a digest that already failed
in this environment refused unless forced (``history``). ``release.py`` runs these, then the server-side
dry run, before the bump: a refusal here leaves no commit and no change in the cluster.
"""

from __future__ import annotations

import contextlib
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import gitops, gkecache, history, overlays
from .base import Obj
from .config import Environment, Settings
from .errors import ImageNotFound, ReleaseRefused, ValidationFailed
from .images import Image

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .kube import Kube
    from .report import Timeline


@dataclass(frozen=True)
class Prepared:
    """The objects a release will apply, and whether its pin changes git."""

    pin: overlays.Pin
    old: overlays.Pin | None
    objects: list[Obj]
    changes_git: bool
    # The remote's tip that was rendered (with ``pin`` applied on top).
    base: str = ""


def prepare(settings: Settings, env: Environment, pin: overlays.Pin) -> Prepared:
    """The overlay at the remote's tip with ``pin`` applied, rendered and validated; nothing is written."""
    from . import render, validate

    with tempfile.TemporaryDirectory(prefix="campus-release-") as tmp:
        root = Path(tmp)
        base = gitops.snapshot(settings, root)
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
    return Prepared(pin, old, list(rendered.objects), bumped is not None, base)


def resolve(settings: Settings, image: Image) -> Image:
    """The image with its registry digest; refuses (before anything is written) an image that is absent."""
    from . import build

    found = build.lookup(settings, image.tag, repository=image.repository)
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


def refuse_failed(records: list[history.Record], image: Image, env: Environment) -> None:
    """Refuse a digest whose latest release in ``env`` failed (``--force`` skips this check)."""
    if image.digest and image.digest in history.failed_digests(records):
        raise ReleaseRefused(
            f"{image.ref}@{image.digest[:19]}… failed in {env.name} before",
            "Release a fixed image, or pass --force to try this digest again",
        )


def current_pin(settings: Settings, env: Environment) -> overlays.Pin | None:
    """What the environment's overlay pins at the remote's tip."""
    with tempfile.TemporaryDirectory(prefix="campus-pin-") as tmp:
        gitops.snapshot(settings, Path(tmp))
        return overlays.read_pin(
            overlays.kustomization(Path(tmp) / env.overlay), settings.image.kustomize_name
        )


def tip(settings: Settings) -> str:
    """The GitOps remote's tip commit."""
    with tempfile.TemporaryDirectory(prefix="campus-tip-") as tmp:
        return gitops.snapshot(settings, Path(tmp))


def _cluster(settings: Settings, env: Environment) -> Kube:
    from . import kube

    cluster = kube.connect(gkecache.environment_access(settings, env))
    try:
        cluster.version()
    except BaseException:
        cluster.close()
        raise
    return cluster


def _close(future: Future[Kube]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def run(
    settings: Settings,
    env: Environment,
    image: Image,
    force: bool,
    records: list[history.Record],
    stack: contextlib.ExitStack,
    tl: Timeline,
) -> tuple[Image, Prepared, Kube, ApplyResult]:
    """Everything checked before the bump: digest, past failures, render+validate, cluster, dry run.

    The independent parts overlap (each mostly waits on a registry, git, GKE or kustomize): the registry
    lookup, the render and validation of the pinned overlay, and the GKE lookup with the cluster's first
    answer; their failures are reported in that order, so the first refusal a user sees is the same as
    when they ran one after another. ``records`` are the environment's, read under its Lease
    (``operation.records``). The server-side dry run needs both the objects and the cluster, so it comes
    last (its requests overlap too: ``apply``).
    """
    from . import apply

    with tl.stage("preflight") as detail, ThreadPoolExecutor(4, thread_name_prefix="preflight") as pool:
        resolving = pool.submit(resolve, settings, image)
        connecting = pool.submit(_cluster, settings, env)
        # The pin needs the digest: known up front for a digest-pinned image, else after the lookup.
        preparing: Future[Prepared] | None = None
        if image.digest:
            pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
            preparing = pool.submit(prepare, settings, env, pin)
        try:
            image = resolving.result()
            assert image.digest is not None
            if not force:
                refuse_failed(records, image, env)
            if preparing is None:
                pin = overlays.Pin(settings.image.kustomize_name, image.repository, image.tag, image.digest)
                preparing = pool.submit(prepare, settings, env, pin)
            prepared = preparing.result()
            detail.append(f"{len(prepared.objects)} objects valid")
            cluster = stack.enter_context(connecting.result())
        except BaseException:
            connecting.add_done_callback(_close)  # a refusal must not leak the connection made meanwhile
            raise
        dry = apply.apply_environment(settings, env, cluster, prepared.objects, dry_run=True)
        detail.append("dry run accepted")
    return image, prepared, cluster, dry
