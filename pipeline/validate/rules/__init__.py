"""The lint pass: what a schema cannot see, one small rule per problem, grouped by concern.

Each rule is a function from the :class:`~..index.Index` of one target to the :class:`~..findings.Issue`
values it finds; :data:`RULES` gives each its id and the order findings are reported in, and :func:`lint`
runs them all. The rules live in one module per concern: :mod:`.rendering` (the render as a whole),
:mod:`.names`, :mod:`.ports`, :mod:`.selectors`, :mod:`.references`, :mod:`.ingress`, :mod:`.images`,
:mod:`.storage`, :mod:`.secrets` and :mod:`.pods`. The package's ``__init__`` calls :func:`lint`; tests
read :data:`RULES` to check that every rule has a golden case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..findings import Finding, Issue
from ..index import Index
from .images import unpinned_images
from .ingress import gke_ingress_health_checks, managed_certificate_hosts
from .names import invalid_names
from .pods import missing_probes, missing_resources
from .ports import container_port_mismatch, nodeports_out_of_range, port_conflicts
from .references import dangling_references, unknown_service_hosts
from .rendering import duplicate_objects, kustomize_warnings
from .secrets import plaintext_secrets
from .selectors import selectors_matching_nothing
from .storage import (
    gke_storage_classes,
    postgres_data_not_persisted,
    rwo_volume_rolling_update,
    storage_reclaim_delete,
)

__all__ = ["RULES", "Rule", "lint"]

Rule = Callable[[Index], Iterable[Issue]]

# The registry: every lint rule, by id, in the order findings are reported.
RULES: tuple[tuple[str, Rule], ...] = (
    ("duplicate-object", duplicate_objects),
    ("invalid-name", invalid_names),
    ("nodeport-out-of-range", nodeports_out_of_range),
    ("port-conflict", port_conflicts),
    ("selector-matches-nothing", selectors_matching_nothing),
    ("container-port-mismatch", container_port_mismatch),
    ("dangling-reference", dangling_references),
    ("certificate-host-mismatch", managed_certificate_hosts),
    ("unpinned-image", unpinned_images),
    ("postgres-data-not-persisted", postgres_data_not_persisted),
    ("plaintext-secret", plaintext_secrets),
    ("rwo-volume-rolling-update", rwo_volume_rolling_update),
    ("storage-reclaim-delete", storage_reclaim_delete),
    ("unknown-service-host", unknown_service_hosts),
    ("gke-storage-class", gke_storage_classes),
    ("gke-health-check", gke_ingress_health_checks),
    ("missing-probes", missing_probes),
    ("missing-resources", missing_resources),
    ("kustomize-warning", kustomize_warnings),
)


def lint(index: Index) -> list[Finding]:
    """Run every rule of :data:`RULES` over one target's index."""
    findings: list[Finding] = []
    for rule_id, rule in RULES:
        seen: set[Issue] = set()
        for issue in rule(index):
            if issue not in seen:
                seen.add(issue)
                findings.append(Finding(index.target, issue.obj, rule_id, issue.message, issue.severity))
    return findings
