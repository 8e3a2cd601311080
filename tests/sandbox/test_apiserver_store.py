"""The object store: metadata Kubernetes maintains, selectors, deletion semantics, watch history, disk."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube.store import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    AlreadyExists,
    Conflict,
    Gone,
    NotFound,
    Store,
    parse_field_selector,
    parse_label_selector,
)


def deployment(name: str = "web", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
    }


def test_create_sets_server_metadata_and_a_global_resource_version() -> None:
    store = Store()
    a = store.create(DEPLOYMENTS, deployment("a"), manager="test")
    b = store.create(CONFIGMAPS, {"metadata": {"name": "b", "namespace": "x"}}, manager="test")
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert a["metadata"]["generation"] == 1 and "generation" not in b["metadata"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert (b["apiVersion"], b["kind"]) == ("v1", "ConfigMap")
    with pytest.raises(AlreadyExists, match=r'deployments\.apps "a" already exists'):
        store.create(DEPLOYMENTS, deployment("a"), manager="test")


def test_generate_name() -> None:
    store = Store()
    pod = store.create(PODS, {"metadata": {"generateName": "web-", "namespace": "default"}}, manager="t")
    assert pod["metadata"]["name"].startswith("web-") and len(pod["metadata"]["name"]) == 9


def test_generation_moves_with_spec_not_status_or_metadata() -> None:
    store = Store()
    obj = store.create(DEPLOYMENTS, deployment(), manager="test")
    obj["metadata"]["labels"]["extra"] = "1"
    obj = store.update(DEPLOYMENTS, obj, manager="test")
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["replicas"] = 3
    obj = store.update(DEPLOYMENTS, obj, manager="test")
    assert obj["metadata"]["generation"] == 2
    obj["status"] = {"replicas": 3}
    obj = store.update(DEPLOYMENTS, obj, manager="sandbox-controller", subresource="status")
    assert obj["metadata"]["generation"] == 2 and obj["status"] == {"replicas": 3}
    # A main-resource write keeps the status (Deployments have a status subresource).
    obj["status"] = {"replicas": 99}
    obj = store.update(DEPLOYMENTS, obj, manager="test")
    assert obj["status"] == {"replicas": 3}


def test_stale_resource_version_conflicts_and_no_op_keeps_it() -> None:
    store = Store()
    obj = store.create(DEPLOYMENTS, deployment(), manager="test")
    same = store.update(DEPLOYMENTS, copy.deepcopy(obj), manager="test")
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    changed = copy.deepcopy(obj)
    changed["spec"]["replicas"] = 2
    store.update(DEPLOYMENTS, changed, manager="test")
    with pytest.raises(Conflict, match="the object has been modified"):
        store.update(DEPLOYMENTS, changed, manager="test")
    with pytest.raises(NotFound):
        store.update(DEPLOYMENTS, deployment("absent"), manager="test")


def test_update_managed_fields_follow_who_changed_what() -> None:
    store = Store()
    obj = store.create(DEPLOYMENTS, deployment(), manager="creator")
    obj["spec"]["replicas"] = 5
    obj = store.update(DEPLOYMENTS, obj, manager="scaler")
    owners = {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}
    assert owners["scaler"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners["creator"]["f:spec"]
    assert owners["creator"]["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}


def test_selectors() -> None:
    obj = {
        "metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}},
        "status": {"phase": "Running"},
    }
    assert parse_label_selector("app=web,tier in (front,back),!canary")(obj)
    assert not parse_label_selector("app notin (web)")(obj)
    assert parse_label_selector("tier,app!=db")(obj)
    assert parse_field_selector("metadata.name=a,status.phase!=Pending")(obj)
    assert not parse_field_selector("status.phase=Pending")(obj)


def test_field_selectors_as_kubectl_describe_sends_them_for_events() -> None:
    store = Store()
    for i, (kind, name) in enumerate([("Pod", "web-1"), ("Pod", "web-2"), ("Deployment", "web-1")]):
        store.create(
            ("", "v1", "events"),
            {
                "metadata": {"name": f"e{i}", "namespace": "default"},
                "involvedObject": {"kind": kind, "name": name, "namespace": "default"},
            },
            manager="t",
        )
    found, _ = store.list(
        ("", "v1", "events"),
        "default",
        field_selector="involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.kind=Pod",
    )
    assert [e["metadata"]["name"] for e in found] == ["e0"]


def test_finalizers_hold_deletion_until_removed() -> None:
    store = Store()
    cm = {"metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/keep"]}}
    store.create(CONFIGMAPS, cm, manager="t")
    marked = store.delete(CONFIGMAPS, "default", "held")
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    live = store.get(CONFIGMAPS, "default", "held")
    assert live is not None
    live["metadata"]["finalizers"] = []
    store.update(CONFIGMAPS, live, manager="t")
    assert store.get(CONFIGMAPS, "default", "held") is None


def _owned(store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    dep = store.create(DEPLOYMENTS, deployment(), manager="t")
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep["metadata"]["uid"]}
    rs = store.create(
        REPLICASETS,
        {"metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [ref]}},
        manager="t",
    )
    rs_ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": rs["metadata"]["uid"]}
    store.create(
        PODS,
        {"metadata": {"name": "web-1-a", "namespace": "default", "ownerReferences": [rs_ref]}},
        manager="t",
    )
    return dep, rs


def test_owner_references_cascade_and_orphan() -> None:
    store = Store()
    _owned(store)
    store.delete(DEPLOYMENTS, "default", "web")
    assert store.get(REPLICASETS, "default", "web-1") is None
    assert store.get(PODS, "default", "web-1-a") is None

    store = Store()
    _owned(store)
    store.delete(DEPLOYMENTS, "default", "web", propagation="Orphan")
    rs = store.get(REPLICASETS, "default", "web-1")
    assert rs is not None and "ownerReferences" not in rs["metadata"]


def test_deleting_a_namespace_deletes_its_objects() -> None:
    store = Store()
    store.create(NAMESPACES, {"metadata": {"name": "app"}}, manager="t")
    store.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "app"}}, manager="t")
    store.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "other"}}, manager="t")
    marked = store.delete(NAMESPACES, None, "app")
    assert marked is not None and marked["status"]["phase"] == "Terminating" and store.terminating("app")
    # Deleting what it holds still works meanwhile (kubectl delete -f of a file that starts with it).
    store.create(CONFIGMAPS, {"metadata": {"name": "d", "namespace": "app"}}, manager="t")
    assert store.delete(CONFIGMAPS, "app", "d") is not None
    deadline = time.monotonic() + 5
    while store.get(NAMESPACES, None, "app") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(NAMESPACES, None, "app") is None
    assert store.get(CONFIGMAPS, "app", "c") is None
    assert store.get(CONFIGMAPS, "other", "c") is not None


def test_subscriptions_replay_recent_history_and_refuse_older() -> None:
    async def scenario() -> None:
        store = Store(history=3)
        first = store.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "d"}}, manager="t")
        since = first["metadata"]["resourceVersion"]
        store.create(CONFIGMAPS, {"metadata": {"name": "b", "namespace": "d"}}, manager="t")
        with store.subscribe(CONFIGMAPS, since=since) as sub:
            store.delete(CONFIGMAPS, "d", "a")
            seen = [sub.queue.get_nowait() for _ in range(2)]
            assert [(t, o["metadata"]["name"]) for t, _, o in seen] == [("ADDED", "b"), ("DELETED", "a")]
        for name in "cdef":
            store.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": "d"}}, manager="t")
        with pytest.raises(Gone, match="too old resource version"):
            store.subscribe(CONFIGMAPS, since=since)

    asyncio.run(scenario())


def test_state_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path)
    created = store.create(DEPLOYMENTS, deployment(), manager="t")
    store.close()
    again = Store(tmp_path)
    assert again.get(DEPLOYMENTS, "default", "web") == created
    later = again.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "default"}}, manager="t")
    assert int(later["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert (tmp_path / "objects.json").stat().st_mode & 0o777 == 0o600
