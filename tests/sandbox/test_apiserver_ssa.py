"""Server-side apply and the patch types: managedFields in the wire format, conflicts, removal, merges."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sandbox.kube import ssa
from sandbox.kube.store import DEPLOYMENTS, SERVICES

NOW = "2024-05-01T12:00:00Z"


def applied(replicas: int = 2, sidecar: bool = True) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [
        {
            "name": "app",
            "image": "web:1",
            "ports": [{"containerPort": 8080}],
            "env": [{"name": "MODE", "value": "prod"}],
        }
    ]
    if sidecar:
        containers.append({"name": "side", "image": "busybox", "args": ["sleep", "1d"]})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
        },
    }


def test_apply_records_fields_v1_as_kube_apiserver_does() -> None:
    obj = ssa.apply(DEPLOYMENTS, None, applied(), manager="kubectl", force=False, now=NOW)
    (entry,) = obj["metadata"]["managedFields"]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": NOW,
        "fieldsType": "FieldsV1",
    }
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"app"}': {
                            ".": {},
                            "f:env": {'k:{"name":"MODE"}': {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
                            },
                        },
                        'k:{"name":"side"}': {".": {}, "f:args": {}, "f:image": {}, "f:name": {}},
                    }
                },
            },
        },
    }


def _with_update(obj: dict[str, Any], manager: str, change: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    change(new)
    new["metadata"]["managedFields"] = ssa.update_managed_fields(
        DEPLOYMENTS, obj, new, manager, NOW, subresource=None
    )
    return new


def test_conflict_with_another_manager_then_force_moves_ownership() -> None:
    live = ssa.apply(DEPLOYMENTS, None, applied(), manager="kubectl", force=False, now=NOW)
    live = _with_update(live, "hpa", lambda o: o["spec"].update(replicas=7))
    with pytest.raises(ssa.ApplyConflict) as caught:
        ssa.apply(DEPLOYMENTS, live, applied(replicas=3), manager="kubectl", force=False, now=NOW)
    assert (
        str(caught.value)
        == f'Apply failed with 1 conflict: conflict with "hpa" using apps/v1 at {NOW}: .spec.replicas'
    )
    assert caught.value.causes() == [
        {
            "type": "FieldManagerConflict",
            "message": f'conflict with "hpa" using apps/v1 at {NOW}',
            "field": ".spec.replicas",
        }
    ]
    # The same value is no conflict: both own it.
    shared = ssa.apply(DEPLOYMENTS, live, applied(replicas=7), manager="kubectl", force=False, now=NOW)
    assert [e["manager"] for e in shared["metadata"]["managedFields"]] == ["kubectl", "hpa"]
    forced = ssa.apply(DEPLOYMENTS, live, applied(replicas=3), manager="kubectl", force=True, now=NOW)
    assert forced["spec"]["replicas"] == 3
    assert [e["manager"] for e in forced["metadata"]["managedFields"]] == ["kubectl"]


def test_fields_dropped_from_the_applied_config_are_removed_unless_owned_elsewhere() -> None:
    live = ssa.apply(DEPLOYMENTS, None, applied(), manager="kubectl", force=False, now=NOW)
    live = _with_update(live, "other", lambda o: o["metadata"]["labels"].update(team="a"))
    smaller = applied(sidecar=False)
    del smaller["metadata"]["labels"]
    after = ssa.apply(DEPLOYMENTS, live, smaller, manager="kubectl", force=False, now=NOW)
    assert [c["name"] for c in after["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert after["metadata"]["labels"] == {"team": "a"}


def test_service_ports_merge_by_port_and_protocol() -> None:
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"ports": [{"port": 5432}]},
    }
    obj = ssa.apply(SERVICES, None, svc, manager="a", force=False, now=NOW)
    ports = obj["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:ports"]
    assert list(ports) == ['k:{"port":5432,"protocol":"TCP"}']
    other = copy.deepcopy(svc)
    other["spec"]["ports"] = [{"port": 9187, "name": "metrics"}]
    merged = ssa.apply(SERVICES, obj, other, manager="b", force=False, now=NOW)
    assert [p["port"] for p in merged["spec"]["ports"]] == [5432, 9187]


def test_strategic_merge_patch_directives() -> None:
    live = applied()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                    "containers": [{"name": "app", "image": "web:2"}, {"name": "new", "image": "x"}],
                }
            }
        },
        "metadata": {"labels": {"app": None, "tier": "front"}},
    }
    out = ssa.strategic_merge_patch(DEPLOYMENTS, live, patch)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["side", "app", "new"]
    assert containers[1]["ports"] == [{"containerPort": 8080}] and containers[1]["image"] == "web:2"
    assert out["metadata"]["labels"] == {"tier": "front"}
    deleted = ssa.strategic_merge_patch(
        DEPLOYMENTS,
        live,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
    )
    assert [c["name"] for c in deleted["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_json_patch_and_merge_patch() -> None:
    doc = {"a": {"b": [1, 2]}, "c": 1}
    assert ssa.json_patch(
        doc, [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "remove", "path": "/c"}]
    ) == {"a": {"b": [1, 2, 3]}}
    with pytest.raises(ssa.PatchError):
        ssa.json_patch(doc, [{"op": "test", "path": "/c", "value": 2}])
    assert ssa.merge_patch(doc, {"a": {"b": None}, "d": 1}) == {"a": {}, "c": 1, "d": 1}
