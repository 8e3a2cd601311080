"""A drift report's verdict, exit code and text, on hand-made reports."""

from __future__ import annotations

import dataclasses

from pipeline.driftreport import DriftReport, FieldDrift, ObjectDrift, headline, lines, markdown
from pipeline.images import Image
from pipeline.report import ReleaseReport

IMAGE = "registry.example/campus/backend:sha-1a2b3c4"
SCALED = FieldDrift("spec.replicas", "replicas", 3, 1, ("kubectl (/scale)",))
HPA = FieldDrift("spec.replicas", "replicas", 4, 1, ("kube-controller-manager (/scale)",))


def report(*objects: ObjectDrift) -> DriftReport:
    return DriftReport("staging", "ab12" * 10, IMAGE, "sha256:" + "0" * 64, objects)


def repair(result: str) -> ReleaseReport:
    return ReleaseReport("staging", "repair", result, Image(IMAGE.rsplit(":", 1)[0], "sha-1a2b3c4"), "", ())


def test_equal_is_exit_0_and_owned_elsewhere_is_not_drift() -> None:
    equal = report(ObjectDrift("Deployment", "campus", "backend", "equal", owned_elsewhere=(HPA,)))
    assert (equal.result, equal.exit_code, equal.found) == ("equal", 0, False)
    assert headline(equal).startswith("drift staging: none, 1 objects as declared by the release of " + IMAGE)
    assert (
        "  Deployment campus/backend: spec.replicas owned by kube-controller-manager (/scale) (not drift)"
        in (lines(equal))
    )


def test_drift_is_exit_3_repaired_too_and_a_failed_repair_is_1() -> None:
    found = report(
        ObjectDrift("Deployment", "campus", "backend", "changed", (SCALED,)),
        ObjectDrift("ConfigMap", "campus", "config", "missing"),
        ObjectDrift("Service", "campus", "backend", "equal"),
    )
    assert (found.result, found.exit_code) == ("drift", 3)
    assert lines(found)[1:] == [
        "  Deployment campus/backend: replicas scaled by hand: "
        "spec.replicas: live 3, declared 1 (by kubectl (/scale))",
        "  ConfigMap campus/config: missing (deleted by hand)",
    ]
    assert "| ConfigMap campus/config | missing (deleted by hand) |" in markdown(found)
    fixed = dataclasses.replace(
        found, repair=repair("released"), after=(ObjectDrift("ConfigMap", "campus", "config", "equal"),)
    )
    assert (fixed.result, fixed.exit_code) == ("repaired", 3)
    still = dataclasses.replace(fixed, after=found.objects)
    assert (still.result, still.exit_code) == ("repair-failed", 1)
    rolled_back = dataclasses.replace(fixed, repair=repair("rolled-back"))
    assert rolled_back.exit_code == 1
    refused = dataclasses.replace(found, repair_error="a release may be under way")
    assert (refused.result, refused.exit_code) == ("repair-failed", 1)
    assert "  repair: not done: a release may be under way" in lines(refused)


def test_a_kept_claim_does_not_fail_a_repair() -> None:
    claim = ObjectDrift("PersistentVolumeClaim", "campus", "old-data", "undeclared", repairable=False)
    fixed = dataclasses.replace(report(claim), repair=repair("released"), after=(claim,))
    assert fixed.result == "repaired"
