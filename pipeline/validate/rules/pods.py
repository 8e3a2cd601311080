"""Lint rules on what each pod template declares about itself: ``missing-probes``, ``missing-resources``.

Without a readinessProbe a rollout cannot tell a broken release from a good one; without resource requests
the scheduler packs blindly and the pod is evicted first. Both are warnings. Uses :mod:`..index`;
registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections.abc import Iterator

from ...base import ROLLOUT_KINDS
from ..findings import Issue
from ..index import Index, mapping


def missing_probes(index: Index) -> Iterator[Issue]:
    """Without a readinessProbe a rollout counts a pod ready as soon as it starts."""
    for template in index.templates:
        if template.owner.kind not in ROLLOUT_KINDS:
            continue
        for container in template.containers():
            if "readinessProbe" not in container:
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} has no readinessProbe, so a "
                    "rollout cannot tell a broken release from a good one (and traffic reaches pods that are "
                    "not ready). Add one (httpGet on a health endpoint, or tcpSocket)",
                    "warning",
                )


def missing_resources(index: Index) -> Iterator[Issue]:
    """Without requests the scheduler packs blindly and the pod is the first evicted (BestEffort)."""
    for template in index.templates:
        for container in template.containers():
            requests = mapping(mapping(container.get("resources")).get("requests"))
            if not requests.get("cpu") and not requests.get("memory"):
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} has no resources.requests, so "
                    "it is scheduled blindly and evicted first under memory pressure. Set cpu and memory "
                    "requests (and a memory limit)",
                    "warning",
                )
