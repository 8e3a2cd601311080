"""How the cluster's refusals read: each client exception becomes one actionable line (``kube.translate``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pipeline import kube
from pipeline.errors import TemporaryError

HINT = "Run `gcloud auth application-default login` or check Workload Identity Federation"


def refusal(status: int, message: str = "", **details: Any) -> ApiException:
    body: dict[str, Any] = {"kind": "Status", "status": "Failure", "message": message, "code": status}
    if details:
        body["details"] = details
    return ApiException(status=status, reason="x", body=json.dumps(body))


def test_401_names_the_credentials_fix() -> None:
    error = kube.translate(refusal(401, "Unauthorized"), "applying Deployment campus/web", auth_hint=HINT)
    assert isinstance(error, kube.KubeAuthError)
    assert str(error) == (
        "applying Deployment campus/web: the API server refused our credentials (401 Unauthorized). "
        + HINT
        + "."
    )


def test_403_names_verb_and_resource() -> None:
    message = 'deployments.apps "web" is forbidden: User "ci@p.iam" cannot patch resource "deployments"'
    error = kube.translate(
        refusal(403, message),
        "applying Deployment campus/web",
        auth_hint=HINT,
        verb="patch",
        resource="deployments.apps",
    )
    assert isinstance(error, kube.KubeForbidden)
    assert "cannot patch resource" in str(error) and "permission to patch deployments.apps" in str(error)


def test_409_conflict_names_the_other_manager_and_fields() -> None:
    message = 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    causes = [
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl-edit"', "field": ".spec.replicas"}
    ]
    error = kube.translate(
        refusal(409, message, causes=causes), "applying Deployment campus/web", auth_hint=HINT
    )
    assert isinstance(error, kube.KubeConflict)
    assert error.managers == ("kubectl-edit",) and error.fields == (".spec.replicas",)
    assert "conflict with kubectl-edit on .spec.replicas" in str(error)


def test_422_carries_the_servers_message_on_one_line() -> None:
    message = 'Service "bad" is invalid:\nspec.ports[0].port: Invalid value: 0: must be between 1 and 65535'
    error = kube.translate(refusal(422, message), "applying Service campus/bad", auth_hint=HINT)
    assert isinstance(error, kube.KubeInvalid) and isinstance(error, ValueError)
    assert "spec.ports[0].port: Invalid value" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("status", [429, 500, 503, 0])
def test_overload_and_no_answer_are_temporary(status: int) -> None:
    error = kube.translate(ApiException(status=status, reason="busy"), "listing pods", auth_hint=HINT)
    assert isinstance(error, kube.KubeUnreachable) and isinstance(error, TemporaryError)


def test_secret_values_are_redacted_even_if_the_server_echoes_them() -> None:
    message = "Secret campus/s is invalid: data[PASSWORD]: Invalid value: hunter2hunter2 (c2VjcmV0LXZhbHVl)"
    error = kube.translate(
        refusal(422, message),
        "applying Secret campus/s",
        auth_hint=HINT,
        redact=["hunter2hunter2", "c2VjcmV0LXZhbHVl"],
    )
    assert "hunter2" not in str(error) and "c2VjcmV0" not in str(error) and "<redacted>" in str(error)


def test_resource_paths() -> None:
    deployments = kube.Resource("apps/v1", "Deployment", "deployments", True)
    assert deployments.path("campus", "web") == "/apis/apps/v1/namespaces/campus/deployments/web"
    assert deployments.group == "apps"
    nodes = kube.Resource("v1", "Node", "nodes", False)
    assert nodes.path("ignored") == "/api/v1/nodes" and nodes.group == ""
