"""Apply stage against the sandbox: the project's real staging overlay, its Secret, prune, conflicts, plan."""

from __future__ import annotations

import base64
import copy
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline import apply, appsecret, errors, gke, kube, render, rollout

from .conftest import ROOT, Clusters, Images  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

SECRET = appsecret.SecretSpec(
    "backend-core-secrets",
    {"POSTGRES_PASSWORD": "CAMPUS_POSTGRES_PASSWORD", "ADMIN_PASS": "CAMPUS_ADMIN_PASS"},
)
ENVIRON = {"CAMPUS_POSTGRES_PASSWORD": "pg-e2e-Secret-1", "CAMPUS_ADMIN_PASS": "admin-e2e-Secret-2"}


def staging_overlay(image: str) -> list[dict[str, Any]]:
    """The project's staging overlay as the pipeline renders it, the backend image pinned to ``image``."""
    objects = render.render(ROOT / "overlays" / "staging")
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "backend-core-deployment":
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return objects


def test_staging_overlay_applies_then_reapplies_as_no_op(staging: gke.ClusterAccess, images: Images) -> None:
    objects = staging_overlay(images.good)
    # Pre-flight: the whole overlay as a server-side dry run (the namespace does not exist yet).
    preview = apply.apply(staging, objects, secret=SECRET, environ=ENVIRON, inventory="staging", dry_run=True)
    assert preview.dry_run and all(o.action == "created" for o in preview.objects)
    with kube.connect(staging) as k:
        assert k.get("v1", "Namespace", "campus") is None

    progress: list[str] = []
    first = apply.apply(
        staging,
        objects,
        secret=SECRET,
        environ=ENVIRON,
        inventory="staging",
        prune=True,
        on_progress=progress.append,
    )
    kinds = [o.kind for o in first.objects]
    assert kinds[:3] == ["Namespace", "StorageClass", "PersistentVolumeClaim"] and kinds[-1] == "Ingress"
    assert kinds.index("Secret") < kinds.index("Deployment")
    assert {o.action for o in first.objects} == {"created"}
    assert ("Secret", "campus", "backend-core-secrets") in [
        (o.kind, o.namespace, o.name) for o in first.objects
    ]
    assert not any(value in line for line in progress for value in ENVIRON.values())

    with kube.connect(staging) as k:
        secret = k.get("v1", "Secret", "backend-core-secrets", "campus")
        assert secret is not None
        assert base64.b64decode(secret["data"]["ADMIN_PASS"]).decode() == ENVIRON["CAMPUS_ADMIN_PASS"]
        labels = secret["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "campus-pipeline"
        assert labels["campus-pipeline/env"] == "staging"
        deployment = k.get("apps/v1", "Deployment", "backend-core-deployment", "campus")
        assert deployment is not None
        managers = {
            m["manager"] for m in deployment["metadata"]["managedFields"] if m["operation"] == "Apply"
        }
        assert managers == {"campus-pipeline"}

    started = time.monotonic()
    second = apply.apply(staging, objects, secret=SECRET, environ=ENVIRON, inventory="staging", prune=True)
    assert not second.changed, second.summary()
    assert {o.action for o in second.objects} == {"unchanged"}
    assert second.changed_workloads == []
    assert time.monotonic() - started < 5

    # plan: nothing to change; then a changed password shows as a changed key, never as a value.
    assert {
        d.action for d in apply.diff(staging, objects, secret=SECRET, environ=ENVIRON, inventory="staging")
    } == {"unchanged"}
    changed_env = {**ENVIRON, "CAMPUS_ADMIN_PASS": "another-admin-Secret-3"}
    changed = copy.deepcopy(objects)
    for obj in changed:
        if obj["kind"] == "ConfigMap":
            obj["data"]["EMAIL_ID"] = "ops@iitk.ac.in"
    diffs = {
        d.ref: d
        for d in apply.diff(staging, changed, secret=SECRET, environ=changed_env, inventory="staging")
    }
    secret_diff = diffs["Secret campus/backend-core-secrets"]
    assert secret_diff.action == "change"
    assert dict(secret_diff.secret_keys) == {"ADMIN_PASS": "changed", "POSTGRES_PASSWORD": "unchanged"}
    config_diff = diffs["ConfigMap campus/backend-core-config"]
    assert config_diff.action == "change" and "+  EMAIL_ID: ops@iitk.ac.in" in config_diff.diff
    assert "resourceVersion" not in config_diff.diff and "managedFields" not in config_diff.diff
    shown = repr(list(diffs.values()))
    for value in (*ENVIRON.values(), changed_env["CAMPUS_ADMIN_PASS"]):
        assert value not in shown and base64.b64encode(value.encode()).decode() not in shown
    # Where the variables are not set (a laptop), the plan still runs; the Secret is neither compared
    # nor taken for an object to prune.
    unset = {d.ref: d for d in apply.diff(staging, objects, secret=SECRET, environ={}, inventory="staging")}
    assert unset["Secret campus/backend-core-secrets"].action == "unknown"
    assert "CAMPUS_POSTGRES_PASSWORD" in unset["Secret campus/backend-core-secrets"].note
    assert {d.action for d in unset.values()} == {"unchanged", "unknown"}
    # The dry runs changed nothing.
    assert not apply.apply(staging, objects, secret=SECRET, environ=ENVIRON, inventory="staging").changed


def test_staging_overlay_rolls_out_with_its_database(staging: gke.ClusterAccess, images: Images) -> None:
    import docker

    try:
        docker.from_env().images.get("postgres:15-bookworm")
    except docker.errors.ImageNotFound:
        pytest.skip("the sandbox has not built postgres:15-bookworm (no registry can serve it here)")
    objects = staging_overlay(images.good)
    result = apply.apply(staging, objects, secret=SECRET, environ=ENVIRON, inventory="staging", prune=True)
    # The backend becomes ready only once PostgreSQL (from its claim) answers with the Secret's password.
    outcome = rollout.wait(staging, result.workloads, timeout=240)
    assert outcome.ok, outcome.diagnosis
    assert {w.name for w in outcome.workloads} == {"backend-core-deployment", "db-core-deployment"}


def test_missing_secret_variable_applies_nothing(staging: gke.ClusterAccess) -> None:
    ns = f"nosecret-{uuid.uuid4().hex[:6]}"
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    spec = appsecret.SecretSpec("app-secrets", {"PASSWORD": "CAMPUS_TEST_UNSET_VARIABLE"}, namespace=ns)
    with pytest.raises(errors.SecretEnvMissing, match="CAMPUS_TEST_UNSET_VARIABLE"):
        apply.apply(staging, objects, secret=spec, environ={}, inventory=ns)
    with kube.connect(staging) as k:
        assert k.get("v1", "Namespace", ns) is None


def _set(ns: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kept-config", "namespace": ns},
            "data": {"a": "1"},
        },
        *extra,
    ]


def test_prune_deletes_what_left_but_never_a_claim(staging: gke.ClusterAccess) -> None:
    ns = f"prune-{uuid.uuid4().hex[:6]}"
    leaving = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old-config", "namespace": ns}}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "old-service", "namespace": ns},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
    }
    first = apply.apply(staging, _set(ns, leaving, claim, service), inventory=ns, prune=True)
    assert first.count("created") == 5
    with kube.connect(staging) as k:
        # Not ours: same namespace, no labels. Prune must leave it alone.
        k.server_side_apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "someone-elses", "namespace": ns}},
            field_manager="someone",
        )

    preview = apply.apply(staging, _set(ns), inventory=ns, prune=True, dry_run=True)
    assert sorted(o.ref for o in preview.pruned) == [
        f"ConfigMap {ns}/old-config",
        f"Service {ns}/old-service",
    ]
    with kube.connect(staging) as k:
        assert k.get("v1", "ConfigMap", "old-config", ns) is not None  # a dry run deletes nothing

    result = apply.apply(staging, _set(ns), inventory=ns, prune=True)
    assert sorted(o.ref for o in result.pruned) == [f"ConfigMap {ns}/old-config", f"Service {ns}/old-service"]
    assert [(o.ref, o.action) for o in result.kept] == [(f"PersistentVolumeClaim {ns}/data", "kept")]
    assert "would prune, kept" in result.kept[0].note
    with kube.connect(staging) as k:
        assert k.get("v1", "ConfigMap", "old-config", ns) is None
        assert k.get("v1", "Service", "old-service", ns) is None
        assert k.get("v1", "PersistentVolumeClaim", "data", ns) is not None
        assert k.get("v1", "ConfigMap", "someone-elses", ns) is not None
    # Still reported on the next run, until a person deletes it; nothing else happens.
    again = apply.apply(staging, _set(ns), inventory=ns, prune=True)
    assert not again.pruned and [o.ref for o in again.kept] == [f"PersistentVolumeClaim {ns}/data"]
    assert {o.action for o in again.objects} == {"unchanged"}


def test_a_kind_that_left_entirely_is_still_pruned(staging: gke.ClusterAccess) -> None:
    ns = f"kinds-{uuid.uuid4().hex[:6]}"
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    try:
        apply.apply(staging, _set(ns, budget), inventory=ns, prune=True)
    except kube.UnknownKind:
        pytest.skip("the sandbox does not serve PodDisruptionBudgets")
    result = apply.apply(staging, _set(ns), inventory=ns, prune=True)
    assert [o.ref for o in result.pruned] == [f"PodDisruptionBudget {ns}/web"]


def test_fields_changed_by_hand_are_taken_back(staging: gke.ClusterAccess) -> None:
    ns = f"conflict-{uuid.uuid4().hex[:6]}"
    apply.apply(staging, _set(ns), inventory=ns)
    with kube.connect(staging) as k:
        # What `kubectl apply --server-side --force-conflicts` by a person would do.
        k.server_side_apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kept-config", "namespace": ns},
                "data": {"a": "9"},
            },
            field_manager="kubectl",
            force=True,
        )
    with pytest.raises(kube.KubeConflict) as caught:
        apply.apply(staging, _set(ns), inventory=ns, force_conflicts=False)
    assert caught.value.managers == ("kubectl",) and "kubectl" in str(caught.value)
    result = apply.apply(staging, _set(ns), inventory=ns)
    taken = [o for o in result.objects if o.note]
    assert [(o.ref, o.action) for o in taken] == [(f"ConfigMap {ns}/kept-config", "configured")]
    assert "took over" in taken[0].note and "kubectl" in taken[0].note
    with kube.connect(staging) as k:
        live = k.get("v1", "ConfigMap", "kept-config", ns)
    assert live is not None and live["data"] == {"a": "1"}


def test_kubeconfig_context_works_the_same(clusters: Clusters) -> None:
    ns = f"context-{uuid.uuid4().hex[:6]}"
    context = kube.KubeContext("prod", clusters.env["KUBECONFIG"])
    first = apply.apply(context, _set(ns), inventory=ns)
    assert first.count("created") == 2
    assert not apply.apply(context, _set(ns), inventory=ns).changed


def test_invalid_object_is_one_line_from_the_server(staging: gke.ClusterAccess) -> None:
    ns = f"invalid-{uuid.uuid4().hex[:6]}"
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {"ports": [{"port": "eighty"}]},
    }
    with pytest.raises(kube.KubeError) as caught:
        apply.apply(staging, _set(ns, bad), inventory=ns)
    assert f"Service {ns}/bad" in str(caught.value) and "\n" not in str(caught.value)


def test_render_of_the_project_has_no_secret() -> None:
    # The Secret exists only at deploy time: the rendered overlay must never carry it.
    assert not [o for o in render.render(Path(ROOT / "overlays" / "staging")) if o["kind"] == "Secret"]
