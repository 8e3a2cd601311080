"""fingerprint: what the no-op check compares, as pure functions over dicts."""

from __future__ import annotations

import copy

from pipeline import fingerprint
from pipeline.fingerprint import Fingerprint


def _deployment(replicas_owner: str = "campus-pipeline") -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "backend",
            "namespace": "campus",
            "resourceVersion": "10",
            "managedFields": [
                {"manager": replicas_owner, "operation": "Apply", "time": "t1", "fieldsV1": {"f:spec": {}}},
                {
                    "manager": "deployment-controller",
                    "operation": "Update",
                    "subresource": "status",
                    "time": "t2",
                    "fieldsV1": {"f:status": {}},
                },
            ],
        },
    }


def test_status_writes_do_not_change_the_members_hash() -> None:
    before = _deployment()
    after = copy.deepcopy(before)
    after["metadata"]["managedFields"][1]["time"] = "t3"  # type: ignore[index]
    after["metadata"]["resourceVersion"] = "11"  # type: ignore[index]
    assert fingerprint.members([before]) == fingerprint.members([after])


def test_another_writer_a_deletion_or_an_addition_changes_it() -> None:
    base = fingerprint.members([_deployment()])
    assert fingerprint.members([_deployment("kubectl-edit")]) != base
    assert fingerprint.members([]) != base
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "campus"}}
    assert fingerprint.members([_deployment(), service]) != base


def test_members_hash_ignores_order_and_duplicates() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "campus"}}
    assert fingerprint.members([_deployment(), service]) == fingerprint.members([service, _deployment()])
    assert fingerprint.members([service, service]) == fingerprint.members([service])


def test_inputs_differ_with_any_input() -> None:
    args = ("tree1", "reg/app:sha-1", "sha256:" + "a" * 64, ["env"], ["/bin/true"])
    base = fingerprint.inputs(*args)
    assert fingerprint.inputs(*args) == base
    for i, other in enumerate(("tree2", "reg/app:sha-2", "sha256:" + "b" * 64, ["env2"], ["/bin/false"])):
        changed = list(args)
        changed[i] = other
        assert fingerprint.inputs(*changed) != base  # type: ignore[arg-type]


def test_annotation_round_trip_and_garbage() -> None:
    made = Fingerprint("i", "m", "o", ("/api/v1/namespaces/campus/services",))
    parent = {"metadata": {"name": "p", "namespace": "campus", "annotations": {}}}
    written = fingerprint.annotated(parent, made)
    assert list(written["metadata"]["annotations"]) == [fingerprint.ANNOTATION]
    assert fingerprint.read(written) == made
    for text in ("", "not json", '{"v": 99}', "[1]"):
        assert fingerprint.read({"metadata": {"annotations": {fingerprint.ANNOTATION: text}}}) is None
    assert fingerprint.read(None) is None
