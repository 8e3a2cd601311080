"""Lint rule on selectors: ``selector-matches-nothing``.

A workload whose selector disowns its own pod template (the API server rejects it), and a Service or a
PodDisruptionBudget whose selector selects no pod template of the rendered set. Uses :mod:`..index` (its
selector semantics); registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections.abc import Iterator

from ...base import WORKLOAD_KINDS
from ..findings import Issue
from ..index import Index, label_selector_matches, mapping, pod_templates, selector_text


def selectors_matching_nothing(index: Index) -> Iterator[Issue]:
    """Selectors that select no pod template of the rendered set, and workloads that disown their pods."""
    for owner in index.resources:
        if owner.kind in WORKLOAD_KINDS or owner.kind == "Job":
            selector = mapping(mapping(owner.body.get("spec")).get("selector"))
            for template in pod_templates(owner):
                if selector and not label_selector_matches(selector, template.labels):
                    labels = ",".join(f"{k}={v}" for k, v in template.labels.items()) or "none"
                    yield Issue(
                        owner.ref,
                        f"{owner.ref}: spec.selector {selector_text(selector)} does not match the pod "
                        f"template's labels ({labels}); the API server rejects it. Make "
                        "spec.template.metadata.labels include every label of spec.selector.matchLabels",
                    )
    for svc in index.of_kind("Service"):
        spec = mapping(svc.body.get("spec"))
        selector = mapping(spec.get("selector"))
        if selector and not index.selected(svc.namespace, selector, label_selector=False):
            yield Issue(
                svc.ref,
                f"{svc.ref}: spec.selector {selector_text(selector)} selects no pod template in the "
                "rendered manifests, so the Service has no endpoints. Match the labels of the workload's "
                "spec.template.metadata.labels",
            )
    for pdb in index.of_kind("PodDisruptionBudget"):
        selector = mapping(mapping(pdb.body.get("spec")).get("selector"))
        if not index.selected(pdb.namespace, selector, label_selector=True):
            yield Issue(
                pdb.ref,
                f"{pdb.ref}: spec.selector {selector_text(selector)} selects no pod template, so the budget "
                "protects nothing during node upgrades. Match the workload's pod labels",
            )
