# The official client's models take and return plain dicts as well as its typed objects, which its own stubs
# do not say: these checks are the client's, not this file's.
# mypy: disable-error-code="no-untyped-call,arg-type,union-attr,operator"
"""The official Python client against the sandbox API server: dynamic discovery, apply, watch, auth."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from sandbox.kube.auth import TokenIssuer

from .conftest import RunningKube  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def api(kube: RunningKube) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(str(kube.kubeconfig), context="staging")
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "client-tests"}})
    yield "client-tests"
    core.delete_namespace("client-tests")


def configmap(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def test_dynamic_discovery_finds_builtin_and_gke_kinds(api: client.ApiClient, namespace: str) -> None:
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and "scale" in deployments.subresources
    certs = dyn.resources.get(api_version="networking.gke.io/v1", kind="ManagedCertificate")
    backend = dyn.resources.get(api_version="cloud.google.com/v1", kind="BackendConfig")
    body = {
        "apiVersion": "cloud.google.com/v1",
        "kind": "BackendConfig",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"healthCheck": {"requestPath": "/healthz", "port": 8080}},
    }
    created = backend.server_side_apply(body=body, field_manager="pipeline")
    assert created.spec.healthCheck.requestPath == "/healthz"
    # Custom resources have no schema here: nested objects are maps, each owned itself too.
    fields = created.to_dict()["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:spec"]["f:healthCheck"] == {".": {}, "f:port": {}, "f:requestPath": {}}
    assert certs.get(namespace=namespace).items == []


def test_server_side_apply_conflicts_force_removal_and_dry_run(api: client.ApiClient, namespace: str) -> None:
    cms = dynamic.DynamicClient(api).resources.get(api_version="v1", kind="ConfigMap")
    cms.server_side_apply(body=configmap("shared", namespace, {"a": "1", "b": "2"}), field_manager="alice")
    with pytest.raises(ApiException) as caught:
        cms.server_side_apply(body=configmap("shared", namespace, {"a": "9"}), field_manager="bob")
    assert caught.value.status == 409
    assert 'conflict with \\"alice\\": .data.a' in caught.value.body
    forced = cms.server_side_apply(
        body=configmap("shared", namespace, {"a": "9"}), field_manager="bob", force_conflicts=True
    )
    owners = {e["manager"]: e["fieldsV1"] for e in forced.to_dict()["metadata"]["managedFields"]}
    assert owners == {"alice": {"f:data": {"f:b": {}}}, "bob": {"f:data": {"f:a": {}}}}
    # alice stops applying b: it goes; a stays, bob owns it.
    after = cms.server_side_apply(body=configmap("shared", namespace, {}), field_manager="alice")
    assert after.to_dict()["data"] == {"a": "9"}

    dry = cms.patch(
        body=configmap("dry", namespace, {"x": "1"}),
        name="dry",
        namespace=namespace,
        content_type="application/apply-patch+yaml",
        field_manager="alice",
        dry_run="All",
    )
    assert dry.to_dict()["data"] == {"x": "1"}
    with pytest.raises(ApiException) as missing:
        cms.get(name="dry", namespace=namespace)
    assert missing.value.status == 404


def test_watch_streams_added_modified_deleted(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    start_rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def follow() -> None:
        for event in w.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=start_rv,
            timeout_seconds=10,
            field_selector="metadata.name=watched",
        ):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)
    core.create_namespaced_config_map(namespace, configmap("watched", namespace, {"k": "1"}))
    core.create_namespaced_config_map(namespace, configmap("ignored", namespace, {"k": "1"}))
    core.patch_namespaced_config_map("watched", namespace, {"data": {"k": "2"}})
    core.delete_namespaced_config_map("watched", namespace)
    thread.join(15)
    assert events == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_watch_from_an_expired_resource_version_is_gone(api: client.ApiClient, kube: RunningKube) -> None:
    assert kube.service is not None
    store = kube.service.clusters[0].store
    store._history.clear()  # as if the watch cache had moved on
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", configmap("bump", "default", {}))
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=2
        ):
            pass
    assert caught.value.status == 410


def test_a_watch_that_the_client_drops_releases_its_subscription(kube: RunningKube) -> None:
    assert kube.service is not None
    store = kube.service.clusters[0].store
    before = len(store._subs)
    token, _ = TokenIssuer(kube.home.kube_dir).issue()
    with requests.get(
        f"{kube.server()}/api/v1/namespaces/default/secrets?watch=1",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(kube.home.kube_dir / "ca" / "ca.crt"),
        stream=True,
        timeout=10,
    ) as response:
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        deadline = time.monotonic() + 5
        while len(store._subs) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store._subs) == before + 1
    deadline = time.monotonic() + 5
    while len(store._subs) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(store._subs) == before


def test_status_subresource_and_events_api(api: client.ApiClient, namespace: str) -> None:
    dyn = dynamic.DynamicClient(api)
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    pod = pods.create(
        body={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox:latest"}]},
        },
        namespace=namespace,
    )
    assert pod.status.phase == "Pending" and pod.spec.containers[0].imagePullPolicy == "Always"
    status_api = client.CoreV1Api(api)
    status_api.patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Running"}})
    status_api.patch_namespaced_pod("p", namespace, {"status": {"phase": "Failed"}})
    assert status_api.read_namespaced_pod("p", namespace).status.phase == "Running"
    events = client.EventsV1Api(api)
    events.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "p.1"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reason": "Started",
            "note": "Started container c",
            "type": "Normal",
            "action": "Start",
            "reportingController": "kubelet",
            "reportingInstance": "node",
            "regarding": {"kind": "Pod", "name": "p", "namespace": namespace},
        },
    )
    core_events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=p"
    )
    assert [e.message for e in core_events.items] == ["Started container c"]


def test_wrong_and_expired_tokens_get_401(kube: RunningKube) -> None:
    url = f"{kube.server()}/api/v1/namespaces"
    ca = str(kube.home.kube_dir / "ca" / "ca.crt")
    anonymous = requests.get(url, verify=ca, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["reason"] == "Unauthorized"
    wrong = requests.get(
        url, verify=ca, timeout=10, headers={"Authorization": "Bearer ya29.sandbox.forged.x"}
    )
    assert wrong.status_code == 401
    short = TokenIssuer(kube.home.kube_dir, lifetime_seconds=1)
    token, _ = short.issue()
    good = requests.get(url, verify=ca, timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200
    time.sleep(2.05)
    expired = requests.get(url, verify=ca, timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401
    assert expired.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert requests.get(f"{kube.server()}/version", verify=ca, timeout=10).status_code == 200


def test_state_survives_a_restart(fresh_kube: RunningKube) -> None:
    fresh_kube.kubectl("create", "configmap", "kept", "--from-literal=a=b")
    assert fresh_kube.service is not None
    before = fresh_kube.service.clusters[0].store.get(("", "v1", "configmaps"), "default", "kept")
    fresh_kube.call(fresh_kube.service.stop())
    fresh_kube.service = None
    from sandbox.kube.service import KubeService

    fresh_kube.service = KubeService(fresh_kube.home, fresh_kube.settings, workloads=False)
    fresh_kube.call(fresh_kube.service.start())
    out = fresh_kube.kubectl("get", "configmap", "kept", "-o", "jsonpath={.metadata.uid} {.data.a}").stdout
    assert before is not None and out == f"{before['metadata']['uid']} b"
