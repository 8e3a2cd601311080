"""Secrets declared *external*: created by the pipeline at deploy time, so never in the rendered set.

A reference to such a Secret would look dangling to :mod:`.rules.references`, so the package's ``__init__``
reads their declarations here and hands them to the :class:`~.index.Index`. A file named
``external-secrets.txt`` next to any kustomization a target builds on lists one Secret per line,
optionally followed by a colon and the keys the pipeline puts in it (then ``secretKeyRef`` keys are checked
too); ``#`` starts a comment. The rules' messages name the file as the fix. Uses :mod:`pipeline.render` to
find the kustomizations a target builds on.
"""

from __future__ import annotations

from pathlib import Path

from ..render import kustomization_dirs

EXTERNAL_SECRETS_FILE = "external-secrets.txt"


def read_external_secrets(directory: Path) -> dict[str, frozenset[str] | None]:
    """Secrets declared in ``external-secrets.txt`` files of ``directory`` and the kustomizations below it."""
    declared: dict[str, frozenset[str] | None] = {}
    for current in kustomization_dirs(directory):
        path = current / EXTERNAL_SECRETS_FILE
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, colon, keys = line.partition(":")
            declared[name.strip()] = frozenset(keys.split()) if colon else None
    return declared
