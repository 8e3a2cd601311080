"""The GKE stand-in and the token endpoint, through Google's own libraries."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import google.auth
import google.auth.transport.requests
import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import Credentials
from google.cloud import container_v1
from kubernetes import client, config

from sandbox.kube.auth import exec_credential
from sandbox.kube.kubeconfig import project_root

from .conftest import RunningKube  # type: ignore[import-not-found]


@pytest.fixture
def adc(kube: RunningKube, monkeypatch: pytest.MonkeyPatch) -> Iterator[Credentials]:
    """Application Default Credentials as the pipeline gets them: from GOOGLE_APPLICATION_CREDENTIALS."""
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", str(kube.home.kube_dir / "application_default_credentials.json")
    )
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    yield credentials


def test_adc_refresh_gets_a_token_with_the_configured_lifetime(adc: Credentials, kube: RunningKube) -> None:
    adc.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    assert adc.token and adc.valid and adc.expiry is not None
    assert kube.service is not None and kube.service.tokens is not None
    assert kube.service.tokens.check(adc.token)
    remaining = adc.expiry - dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert dt.timedelta(minutes=59) < remaining <= dt.timedelta(minutes=60, seconds=1)


def test_container_client_gets_the_cluster_over_rest(adc: Credentials, kube: RunningKube) -> None:
    assert kube.service is not None
    client = container_v1.ClusterManagerClient(
        credentials=adc, transport="rest", client_options={"api_endpoint": kube.service.gke_endpoint}
    )
    cluster = client.get_cluster(name="projects/sandbox/locations/local/clusters/staging")
    staging = kube.settings.clusters[0]
    assert cluster.endpoint == f"{staging.node_ip}:{staging.api_port}"
    assert cluster.status == container_v1.Cluster.Status.RUNNING
    assert cluster.current_master_version.startswith("1.31.")
    ca = base64.b64decode(cluster.master_auth.cluster_ca_certificate)
    assert ca == (kube.home.kube_dir / "ca" / "ca.crt").read_bytes()
    # What the pipeline does next: https://{endpoint} verified with that CA, with the same token.
    response = requests.get(
        f"https://{cluster.endpoint}/api/v1/namespaces/default",
        headers={"Authorization": f"Bearer {adc.token}"},
        verify=str(kube.home.kube_dir / "ca" / "ca.crt"),
        timeout=10,
    )
    assert response.json()["metadata"]["name"] == "default"
    listed = client.list_clusters(parent="projects/sandbox/locations/local")
    assert sorted(c.name for c in listed.clusters) == ["prod", "staging"]
    with pytest.raises(exceptions.NotFound, match="clusters/nope"):
        client.get_cluster(name="projects/sandbox/locations/local/clusters/nope")


def test_container_api_refuses_missing_and_wrong_tokens(kube: RunningKube) -> None:
    assert kube.service is not None
    url = f"{kube.service.gke_endpoint}/v1/projects/sandbox/locations/local/clusters/staging"
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_exec_credential_plugin(kube: RunningKube) -> None:
    credential = exec_credential(kube.home)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    expiry = dt.datetime.strptime(credential["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert expiry.replace(tzinfo=dt.UTC) > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)
    assert kube.service is not None and kube.service.tokens is not None
    assert kube.service.tokens.check(credential["status"]["token"])
    # The command kubectl runs, as the kubeconfig names it.
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "token", "--home", str(kube.home.path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=project_root(),
        timeout=30,
    )
    assert json.loads(out.stdout)["kind"] == "ExecCredential"


def test_clients_refresh_an_expired_token(fresh_kube: RunningKube) -> None:
    """Tokens live two seconds here: a long-lived client re-runs the exec plugin once its token expires."""
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(fresh_kube.kubeconfig), context="prod"
    )
    try:
        core = client.CoreV1Api(api)
        assert core.read_namespace("default").to_dict()["metadata"]["name"] == "default"
        time.sleep(2.1)
        assert core.read_namespace("default").to_dict()["metadata"]["name"] == "default"
    finally:
        api.close()
    assert "default" in fresh_kube.kubectl("get", "namespaces", context="prod").stdout
