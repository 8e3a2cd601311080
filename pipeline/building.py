"""The source commit's image, built and pushed unless the registry has it: what `invoke build` runs.

Apart from ``release.py`` so that `invoke build` imports only what it needs (``gitops`` for the commit
and the tree's state, ``build`` for the engine and the registry), not the whole release chain: an
unchanged build is one git process and one HTTP request, and most of its time is the process start.
``release.build`` is this function; ``release.release`` calls it when no image is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import gitops, images
from .base import Progress, quiet
from .config import Settings
from .errors import SourceError

if TYPE_CHECKING:
    from .build import BuildResult


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
