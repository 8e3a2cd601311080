"""Apply stage on plain dicts: order, labels, the Secret from the environment, normalising and redaction."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from pipeline import apply, applyset, appsecret, compare, errors
from pipeline.errors import ConfigError

SPEC = appsecret.SecretSpec(
    "backend-core-secrets",
    {"POSTGRES_PASSWORD": "CAMPUS_POSTGRES_PASSWORD", "ADMIN_PASS": "CAMPUS_ADMIN_PASS"},
)


def obj(kind: str, name: str, namespace: str | None = "campus", api: str = "v1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def test_order_puts_dependencies_first_and_ingress_last() -> None:
    rendered = [
        obj("Ingress", "web", api="networking.k8s.io/v1"),
        obj("Deployment", "web", api="apps/v1"),
        obj("Service", "web"),
        obj("ManagedCertificate", "cert", api="networking.gke.io/v1"),
        obj("ConfigMap", "cfg"),
        obj("PersistentVolumeClaim", "data"),
        obj("StorageClass", "gold", None, "storage.k8s.io/v1"),
        obj("Secret", "s"),
        obj("CustomResourceDefinition", "x", None, "apiextensions.k8s.io/v1"),
        obj("Namespace", "campus", None),
        obj("Deployment", "db", api="apps/v1"),
    ]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in applyset.order(rendered)]
    assert kinds == [
        ("Namespace", "campus"),
        ("CustomResourceDefinition", "x"),
        ("StorageClass", "gold"),
        ("PersistentVolumeClaim", "data"),
        ("Secret", "s"),
        ("ConfigMap", "cfg"),
        ("Service", "web"),
        # Same kind: the overlay's order is kept.
        ("Deployment", "web"),
        ("Deployment", "db"),
        ("ManagedCertificate", "cert"),
        ("Ingress", "web"),
    ]


def test_labelled_marks_ours_without_touching_the_input() -> None:
    original = obj("ConfigMap", "cfg")
    original["metadata"]["labels"] = {"app": "web"}
    marked = applyset.labelled(original, "staging", "applyset-x-v1")
    assert marked["metadata"]["labels"] == {
        "app": "web",
        "app.kubernetes.io/managed-by": "campus-pipeline",
        "campus-pipeline/env": "staging",
        "applyset.kubernetes.io/part-of": "applyset-x-v1",
    }
    assert original["metadata"]["labels"] == {"app": "web"}


def test_applyset_id_follows_kep_3659() -> None:
    digest = hashlib.sha256(b"campus-pipeline-staging.campus.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    set_id = applyset.applyset_id("campus-pipeline-staging", "campus")
    assert set_id == expected
    assert len(set_id) <= 63  # a label value


def test_group_kind_and_key_ignore_the_version() -> None:
    assert applyset.group_kind(obj("Deployment", "w", api="apps/v1")) == "Deployment.apps"
    assert applyset.group_kind(obj("ConfigMap", "c")) == "ConfigMap"
    assert applyset.key(obj("HorizontalPodAutoscaler", "h", api="autoscaling/v1")) == applyset.key(
        obj("HorizontalPodAutoscaler", "h", api="autoscaling/v2")
    )


def test_inventory_namespace_is_the_overlays() -> None:
    objects = [
        obj("Namespace", "campus", None),
        obj("ConfigMap", "a"),
        obj("Service", "b"),
        obj("Pod", "x", "other"),
    ]
    assert applyset.inventory_namespace(objects) == "campus"
    assert applyset.inventory_namespace([obj("Namespace", "campus", None)]) == "default"


def test_secret_is_built_from_the_environment() -> None:
    secret = SPEC.build({"CAMPUS_POSTGRES_PASSWORD": "pg-pass", "CAMPUS_ADMIN_PASS": "admin-pass"}, "campus")
    assert secret["metadata"] == {"name": "backend-core-secrets", "namespace": "campus"}
    assert base64.b64decode(secret["data"]["POSTGRES_PASSWORD"]) == b"pg-pass"
    assert base64.b64decode(secret["data"]["ADMIN_PASS"]) == b"admin-pass"


def test_missing_secret_variables_are_named_and_values_never_shown() -> None:
    with pytest.raises(errors.SecretEnvMissing) as caught:
        SPEC.build({"CAMPUS_POSTGRES_PASSWORD": "pg-pass", "CAMPUS_ADMIN_PASS": ""}, "campus")
    message = str(caught.value)
    assert "CAMPUS_ADMIN_PASS" in message and "is not set" in message
    assert "pg-pass" not in message and "CAMPUS_POSTGRES_PASSWORD" not in message
    assert isinstance(caught.value, ConfigError)
    assert "\n" not in message


def test_missing_secret_stops_apply_before_connecting() -> None:
    from pipeline.gke import ClusterAccess, StaticToken

    # Nothing listens on this address: the error must come from the environment check, not the network.
    nowhere = ClusterAccess("test cluster", "https://127.0.0.1:9", "", StaticToken("t"))
    with pytest.raises(errors.SecretEnvMissing):
        apply.apply(nowhere, [obj("ConfigMap", "c")], secret=SPEC, environ={}, inventory="staging")


def test_duplicates_are_refused() -> None:
    from pipeline.gke import ClusterAccess, StaticToken

    nowhere = ClusterAccess("test cluster", "https://127.0.0.1:9", "", StaticToken("t"))
    with pytest.raises(errors.ApplyError, match="appears twice"):
        apply.apply(nowhere, [obj("ConfigMap", "c"), obj("ConfigMap", "c")], inventory="staging")


def test_normalized_drops_what_the_server_owns() -> None:
    live = obj("Deployment", "w", api="apps/v1")
    live["metadata"].update(
        resourceVersion="7",
        generation=3,
        uid="u",
        creationTimestamp="2025-01-01T00:00:00Z",
        managedFields=[{"manager": "x"}],
        annotations={"deployment.kubernetes.io/revision": "3"},
    )
    live["status"] = {"replicas": 1}
    assert compare.normalized(live) == obj("Deployment", "w", api="apps/v1")


def test_redacted_hides_secret_values_and_last_applied() -> None:
    secret = obj("Secret", "s")
    secret["data"] = {"A": "c2VjcmV0"}
    secret["metadata"]["annotations"] = {compare.LAST_APPLIED: '{"data":{"A":"c2VjcmV0"}}'}
    shown = compare.redacted(secret)
    assert "c2VjcmV0" not in repr(shown)
    assert shown["data"] == {"A": "<redacted>"}
    assert secret["data"] == {"A": "c2VjcmV0"}  # the input is untouched


def test_secret_key_changes() -> None:
    before = {"data": {"A": "MQ==", "B": "Mg==", "C": "Mw=="}}
    after = {"data": {"A": "MQ==", "B": "OQ==", "D": "NA=="}}
    assert compare.secret_key_changes(before, after) == [
        ("A", "unchanged"),
        ("B", "changed"),
        ("C", "removed"),
        ("D", "added"),
    ]
    assert compare.secret_key_changes(None, after)[0] == ("A", "added")


def test_unified_diff_names_the_object() -> None:
    before = obj("ConfigMap", "cfg")
    before["data"] = {"DOMAIN": "old"}
    after = obj("ConfigMap", "cfg")
    after["data"] = {"DOMAIN": "new"}
    text = compare.unified(before, after, "configmap/cfg")
    assert "--- live/configmap/cfg" in text and "-  DOMAIN: old" in text and "+  DOMAIN: new" in text


def test_result_summary_and_workloads() -> None:
    result = apply.ApplyResult(
        dry_run=False,
        objects=(
            apply.ObjectResult("ConfigMap", "campus", "cfg", "unchanged"),
            apply.ObjectResult("Deployment", "campus", "web", "configured"),
            apply.ObjectResult("Deployment", "campus", "db", "unchanged"),
        ),
        kept=(apply.ObjectResult("PersistentVolumeClaim", "campus", "old", "kept", "would prune, kept"),),
    )
    assert result.changed
    assert result.workloads == [("Deployment", "campus", "web"), ("Deployment", "campus", "db")]
    assert result.changed_workloads == [("Deployment", "campus", "web")]
    assert result.summary() == "1 configured, 2 unchanged, 1 kept"
    assert result.to_dict()["changed"] is True
    unchanged = apply.ApplyResult(False, (apply.ObjectResult("ConfigMap", "campus", "cfg", "unchanged"),))
    assert not unchanged.changed
