"""Lint rules on the render as a whole: ``duplicate-object`` and ``kustomize-warning``.

What is wrong before any single object is looked at: the same object rendered twice, and the deprecations
kustomize itself warned about while rendering (handed over by :mod:`pipeline.render` through the index).
Uses :mod:`..index`; registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..findings import Issue
from ..index import Index


def duplicate_objects(index: Index) -> Iterator[Issue]:
    """The same object twice (e.g. under two apiVersions): the cluster keeps whichever is applied last."""
    counts = Counter(
        (r.group.split(".")[0] if r.group else "", r.kind, r.namespace, r.name) for r in index.resources
    )
    for (_, kind, namespace, name), count in counts.items():
        if count > 1:
            where = f" in namespace {namespace}" if namespace else ""
            yield Issue(
                f"{kind}/{name}",
                f"{kind}/{name}{where} is rendered {count} times (different apiVersions of one object); "
                "the cluster keeps only the last one applied. Keep one and delete the others",
            )


def kustomize_warnings(index: Index) -> Iterator[Issue]:
    """kustomize's own deprecation warnings: the next major version turns them into errors."""
    for warning in index.kustomize_warnings:
        ref = f"Kustomization/{Path(index.target).name}"
        yield Issue(ref, f"{ref} ({index.target}): kustomize says: {warning}", "warning")
