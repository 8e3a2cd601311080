"""Validate stage: check what an overlay renders to before anything is committed or applied.

``invoke validate`` calls :func:`validate` with one or more kustomize directories (by default every
environment's overlay); ``release`` calls :func:`validate_rendered` on what it is about to apply. Each
target is rendered by :mod:`pipeline.render`, then checked in two passes:

1. **Schema** (:mod:`.schema`), offline and strict: every object against the Kubernetes OpenAPI schemas
   bundled by the ``kubernetes-validate`` package, or -- for GKE's ``ManagedCertificate``,
   ``BackendConfig`` and ``FrontendConfig`` -- against the schemas shipped with the pipeline in
   ``crds/`` (unknown fields and wrong types are errors). Other CRDs are a ``no-schema`` warning: not
   checked, not wrong.
2. **Lint** (:mod:`.rules`): what a schema cannot see because it needs more than one object (a Service's
   selector and the pods it selects, an Ingress and the Service it names) or knowledge of the images we
   run (where the official postgres image keeps its data). The pass builds one :class:`~.index.Index` of
   the rendered objects; each rule is a small function over it, and :data:`RULES` lists them all.

Findings are data (:class:`Finding`, :class:`ValidationReport`, in :mod:`.findings`); this package logs
nothing and prints nothing, ``tasks.py`` does. Its neighbours: ``render`` (kustomize, upstream),
``overlays`` (edits the kustomizations we check) and ``release`` (which stops while the report has errors).

Secrets created at deploy time from the environment are not in the rendered set, so a reference to them
would look dangling. They are declared *external* in one of two ways: the ``external_secrets`` argument
(for callers that keep the list in configuration, e.g. a future ``pipeline.toml`` key), or -- with no
annotation on any object -- a file named ``external-secrets.txt`` next to any kustomization the target
builds on (:mod:`.external`). It lists one Secret per line, optionally followed by a colon and the keys
the pipeline puts in it (then ``secretKeyRef`` keys are checked too); ``#`` starts a comment::

    # Created by the pipeline from the environment at deploy time (never in git).
    backend-core-secrets: POSTGRES_PASSWORD ADMIN_PASS
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from ..render import Rendered, kustomization_dirs, kustomize_build
from .external import EXTERNAL_SECRETS_FILE, read_external_secrets
from .findings import Finding, Issue, Severity, ValidationReport
from .index import Index
from .rules import RULES, Rule, lint
from .schema import check_schema, check_version

__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "EXTERNAL_SECRETS_FILE",
    "RULES",
    "Finding",
    "Index",
    "Issue",
    "Rule",
    "Severity",
    "ValidationReport",
    "check_schema",
    "lint",
    "read_external_secrets",
    "validate",
    "validate_rendered",
]

# GKE's regular release channel; `kubernetes-validate` bundles schemas for 1.25 and later.
DEFAULT_KUBERNETES_VERSION = "1.31"


def validate(
    targets: Sequence[Path],
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    external_secrets: Collection[str] = (),
    placeholder_images: Collection[str] = (),
) -> ValidationReport:
    """Render each kustomize directory in ``targets`` and check what it renders to.

    ``external_secrets``: Secrets created at deploy time (not in git), on top of those declared in
    ``external-secrets.txt`` files. ``placeholder_images``: image names the base uses and every overlay
    must pin with kustomize ``images:`` (fine unpinned in a base, an error in an overlay).
    Raises RenderError when a target does not render, ConfigError for an unsupported version.
    """
    check_version(kubernetes_version)
    findings: list[Finding] = []
    checked = 0
    for target in targets:
        report = validate_rendered(
            Path(target),
            kustomize_build(Path(target)),
            kubernetes_version=kubernetes_version,
            external_secrets=external_secrets,
            placeholder_images=placeholder_images,
        )
        findings.extend(report.findings)
        checked += report.objects_checked
    return ValidationReport(findings=tuple(findings), objects_checked=checked)


def validate_rendered(
    directory: Path,
    rendered: Rendered,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    external_secrets: Collection[str] = (),
    placeholder_images: Collection[str] = (),
) -> ValidationReport:
    """Check what ``directory`` rendered to (a release renders once and applies the objects it checked)."""
    objects = rendered.objects
    declared: dict[str, frozenset[str] | None] = {name: None for name in external_secrets}
    declared.update(read_external_secrets(directory))
    index = Index.build(
        str(directory),
        objects,
        overlay=len(kustomization_dirs(directory)) > 1,
        placeholder_images=placeholder_images,
        external_secrets=declared,
        kustomize_warnings=rendered.warnings,
    )
    findings = [f for obj in objects if (f := check_schema(str(directory), obj, kubernetes_version))]
    findings.extend(lint(index))
    return ValidationReport(findings=tuple(findings), objects_checked=len(objects))
