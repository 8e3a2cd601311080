"""Where two objects differ and who owns each field, on plain dicts shaped like the API server's."""

from __future__ import annotations

from typing import Any

from pipeline.fields import Owner, differences, dotted, owners, owns

BACKEND = (("name", "backend"),)


def deployment(image: str, replicas: int, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "campus", "annotations": dict(annotations)},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "backend", "image": image, "ports": [{"containerPort": 8080}]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                }
            },
        },
    }


def test_differences_match_named_items_and_give_both_values() -> None:
    live = deployment("backend:other", 3, team="oncall")
    declared = deployment("backend:pinned", 1, team="oncall")
    found = {dotted(d.path): (d.live, d.declared) for d in differences(live, declared)}
    assert found == {
        "spec.replicas": (3, 1),
        "spec.template.spec.containers[name=backend].image": ("backend:other", "backend:pinned"),
    }


def test_a_field_on_one_side_only_is_marked_unset() -> None:
    live = deployment("a", 1)
    declared = deployment("a", 1)
    declared["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "x"}]
    (d,) = differences(live, declared)
    assert d.where == "spec.template.spec.containers[name=backend].env"
    assert (d.live_set, d.declared_set, d.declared) == (False, True, [{"name": "MODE", "value": "x"}])


def test_lists_without_names_are_compared_whole() -> None:
    live = {"spec": {"ports": [{"port": 80}, {"port": 443}]}}
    declared = {"spec": {"ports": [{"port": 80}]}}
    (d,) = differences(live, declared)
    assert d.path == ("spec", "ports") and d.live == [{"port": 80}, {"port": 443}]
    assert differences(declared, declared) == []


MANAGED = [
    {
        "manager": "campus-pipeline",
        "operation": "Apply",
        "fieldsV1": {
            "f:spec": {
                "f:template": {
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"backend"}': {".": {}, "f:name": {}, "f:ports": {}},
                            'k:{"name":"sidecar"}': {".": {}, "f:image": {}, "f:name": {}},
                        }
                    }
                }
            }
        },
    },
    {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    },
    {
        "manager": "kubectl-set",
        "operation": "Update",
        "fieldsV1": {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"backend"}': {"f:image": {}}}}}}
        },
    },
    {
        "manager": "kubectl-annotate",
        "operation": "Update",
        "fieldsV1": {"f:metadata": {"f:annotations": {"f:team": {}}}},
    },
]


def test_owners_follow_keyed_items_and_subresources() -> None:
    obj = {"metadata": {"managedFields": MANAGED}}
    image = ("spec", "template", "spec", "containers", BACKEND, "image")
    assert owners(obj, image) == [Owner("kubectl-set", "Update")]
    assert owners(obj, ("spec", "replicas")) == [Owner("kubectl", "Update", "scale")]
    assert str(owners(obj, ("spec", "replicas"))[0]) == "kubectl (/scale)"
    sidecar = ("spec", "template", "spec", "containers", (("name", "sidecar"),), "image")
    assert [o.manager for o in owners(obj, sidecar)] == ["campus-pipeline"]
    assert [o.manager for o in owners(obj, ("metadata", "annotations", "team"))] == ["kubectl-annotate"]
    assert owners(obj, ("metadata", "labels")) == []
    assert owners({}, ("spec",)) == []


def test_an_atomic_field_owns_what_is_inside_it() -> None:
    fields = {
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"backend"}': {"f:ports": {}}}}}}
    }
    ports = ("spec", "template", "spec", "containers", BACKEND, "ports")
    assert owns(fields, ports)
    assert owns(fields, (*ports, "containerPort"))
    assert not owns(fields, ("spec", "template", "spec", "containers", BACKEND, "image"))
