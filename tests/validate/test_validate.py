"""pipeline.validate: the blog's seed, golden cases per rule, the project's own overlays, bad input.

Golden cases live in cases/<name>/: a kustomize directory plus expected.txt, one "rule Kind/name" per
finding (repeat a line for repeated findings; '#' lines are comments). To add a rule, add a case.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, RenderError
from pipeline.validate import RULES, Finding, ValidationReport, validate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = sorted(p.parent for p in (HERE / "cases").glob("*/expected.txt"))
# The pipeline's placeholder image (pipeline.toml [image] kustomize_name).
PLACEHOLDERS = ("backend",)


def summary(report: ValidationReport) -> list[str]:
    return sorted(f"{f.rule} {f.obj}" for f in report.findings)


def expected(case: Path) -> list[str]:
    lines = (case / "expected.txt").read_text().splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def seed() -> ValidationReport:
    return validate([HERE / "seed"])


@pytest.mark.parametrize(
    ("rule", "obj", "detail"),
    [
        ("container-port-mismatch", "Service/backend-core", "containerPort 8000"),
        ("unpinned-image", "Deployment/db-core-deployment", "'postgres'"),
        (
            "postgres-data-not-persisted",
            "Deployment/db-core-deployment",
            "/var/lib/postgresql/puppylove_data",
        ),
        ("plaintext-secret", "ConfigMap/backend-core-config", "ADMIN_PASS"),
        ("plaintext-secret", "Deployment/db-core-deployment", "POSTGRES_PASSWORD"),
        ("dangling-reference", "Ingress/my-ingress", "'your-backend-service'"),
        ("rwo-volume-rolling-update", "Deployment/db-core-deployment", "Recreate"),
    ],
)
def test_seed_mistakes_are_each_named(seed: ValidationReport, rule: str, obj: str, detail: str) -> None:
    matching = [f for f in seed.findings if f.rule == rule and f.obj == obj and detail in f.message]
    assert matching, f"no {rule} finding for {obj} mentioning {detail}:\n" + "\n".join(
        map(str, seed.findings)
    )
    assert all(f.severity == "error" for f in matching)


def test_seed_postgres_finding_says_pgdata_is_unset(seed: ValidationReport) -> None:
    (finding,) = [f for f in seed.findings if f.rule == "postgres-data-not-persisted"]
    assert "PGDATA unset" in finding.message


def test_seed_fails_validation(seed: ValidationReport) -> None:
    assert not seed.ok
    assert seed.objects_checked == 7
    assert len(seed.errors) + len(seed.warnings) == len(seed.findings)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path) -> None:
    report = validate([case], placeholder_images=PLACEHOLDERS)
    assert summary(report) == expected(case), "\n".join(map(str, report.findings))
    for finding in report.findings:
        assert finding.obj in finding.message, f"the message should name the object: {finding}"
        assert finding.target == str(case)


def test_every_rule_has_a_golden_case() -> None:
    covered = {line.split()[0] for case in CASES for line in expected(case)}
    rules = {rule_id for rule_id, _ in RULES} | {"schema", "no-schema"}
    assert rules - covered == set()


@pytest.mark.parametrize("target", ["manifests", "overlays/staging", "overlays/prod"])
def test_project_manifests_have_no_errors(target: str) -> None:
    report = validate([ROOT / target], placeholder_images=PLACEHOLDERS)
    assert report.errors == (), "\n".join(map(str, report.errors))
    # Not even a warning: GKE's ManagedCertificate is checked against the schema shipped with the pipeline.
    assert summary(report) == []


def test_both_overlays_in_one_report() -> None:
    targets = [ROOT / "overlays" / "staging", ROOT / "overlays" / "prod"]
    report = validate(targets, placeholder_images=PLACEHOLDERS)
    assert report.ok
    assert report.objects_checked == 21
    assert report.findings == ()


def test_each_finding_names_its_target_in_a_report_of_several() -> None:
    targets = [HERE / "cases" / "certificate-host-mismatch", HERE / "cases" / "gke-health-check"]
    report = validate(targets)
    assert [(f.target, f.rule) for f in report.findings] == [
        (str(targets[0]), "certificate-host-mismatch"),
        (str(targets[1]), "gke-health-check"),
    ]


def test_a_misspelt_field_of_a_gke_kind_fails_validation_naming_it() -> None:
    report = validate([HERE / "cases" / "gke-crds-unknown-field"])
    assert not report.ok
    (finding,) = [f for f in report.findings if f.obj == "ManagedCertificate/web-cert"]
    assert finding.severity == "error"
    assert "spec: Additional properties are not allowed ('domain' was unexpected)" in finding.message


def test_external_secrets_argument_satisfies_references() -> None:
    case = HERE / "cases" / "dangling-pod-references"
    without = validate([case])
    with_external = validate([case], external_secrets=["web-secrets"])
    assert len(with_external.findings) == len(without.findings) - 1
    assert not any("'web-secrets'" in f.message for f in with_external.findings)


def test_the_base_placeholder_needs_declaring() -> None:
    report = validate([ROOT / "manifests"])  # no placeholder_images: `image: backend` is just unpinned
    assert [f"{f.rule} {f.obj}" for f in report.errors] == [
        "unpinned-image Deployment/backend-core-deployment"
    ]


def test_malformed_yaml_is_a_render_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n- app.yaml\n namePrefix: x-\n")
    with pytest.raises(RenderError, match=r"kustomization\.yaml:3"):
        validate([tmp_path])


def test_unsupported_kubernetes_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no bundled schemas"):
        validate([ROOT / "manifests"], kubernetes_version="1.12")


def test_an_older_kubernetes_version_is_used_for_the_schemas() -> None:
    report = validate([HERE / "cases" / "schema-wrong-type"], kubernetes_version="1.29")
    (finding,) = [f for f in report.findings if f.rule == "schema"]
    assert "Kubernetes 1.29 schema" in finding.message


def test_findings_are_frozen_data() -> None:
    finding = Finding("overlays/prod", "Service/x", "selector-matches-nothing", "Service/x: ...")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.rule = "other"  # type: ignore[misc]
    report = ValidationReport(findings=(finding,), objects_checked=1)
    assert json.loads(json.dumps(dataclasses.asdict(report)))["findings"][0]["severity"] == "error"
    assert report.errors == (finding,)
    assert not report.ok
