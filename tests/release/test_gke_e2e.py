"""GKE access against the sandbox: google-cloud-container + google-auth (WIF ADC), real TLS and tokens."""

from __future__ import annotations

import threading
import time

import pytest
import trustme

from pipeline import gke, kube
from pipeline.errors import TemporaryError
from sandbox.home import free_port

from .conftest import Clusters  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


def test_cluster_access_reaches_the_api_server(clusters: Clusters, staging: gke.ClusterAccess) -> None:
    assert staging.server == clusters.ready["kube"]["clusters"]["staging"]["server"]
    with kube.connect(staging) as k:
        assert k.version()["gitVersion"].startswith("v1.")
        nodes, _ = k.list_objects("v1", "Node")
    addresses = {a["type"]: a["address"] for a in nodes[0]["status"]["addresses"]}
    assert addresses["ExternalIP"] == clusters.ready["kube"]["clusters"]["staging"]["node_ip"]


def test_unknown_cluster(clusters: Clusters, adc: None) -> None:
    with pytest.raises(gke.ClusterNotFound, match="sandbox/local/qa"):
        gke.cluster_access("sandbox", "local", "qa", api_endpoint=clusters.gke_endpoint)


def test_kubeconfig_context_with_exec_plugin(clusters: Clusters) -> None:
    context = kube.KubeContext("prod", clusters.env["KUBECONFIG"])
    with kube.connect(context) as k:
        nodes, _ = k.list_objects("v1", "Node")
    assert nodes[0]["metadata"]["name"].startswith("gke-prod")


def test_watch_outlives_its_token(clusters: Clusters, adc: None) -> None:
    access = gke.cluster_access("sandbox", "local", "staging", api_endpoint=clusters.gke_endpoint)
    first_token = access.tokens.token()
    ns = "default"
    name = f"tick-{free_port()}"
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {},
    }
    span = clusters.token_lifetime * 2 + 2
    with kube.connect(access) as k:
        k.server_side_apply({**config_map, "data": {"n": "0"}}, field_manager="test")
        stream = k.watch("v1", "ConfigMap", namespace=ns, name=name, timeout=span, window=2)

        def writer() -> None:
            for i in range(1, span // 2):
                time.sleep(2)
                k.server_side_apply({**config_map, "data": {"n": str(i)}}, field_manager="test")

        thread = threading.Thread(target=writer)
        thread.start()
        seen = [event.object["data"]["n"] for event in stream]
        thread.join()
        k.delete("v1", "ConfigMap", name, ns)
    assert seen == [str(i) for i in range(span // 2)]
    assert isinstance(access.tokens, gke.GoogleToken) and access.tokens.refreshes >= 2
    # The sandbox really refuses a token past its lifetime: without refreshing, this is what we would get.
    expired = gke.ClusterAccess("expired", access.server, access.ca_pem, gke.StaticToken(first_token))
    with pytest.raises(kube.KubeAuthError) as caught, kube.connect(expired) as k:
        k.list_objects("v1", "Namespace")
    message = str(caught.value)
    assert "401" in message and "gcloud auth application-default login" in message and "\n" not in message
    assert first_token not in message


def test_unreachable_api_server_is_temporary(staging: gke.ClusterAccess) -> None:
    nowhere = gke.ClusterAccess(
        "nowhere", f"https://127.0.0.1:{free_port()}", staging.ca_pem, gke.StaticToken("t")
    )
    with pytest.raises(kube.KubeUnreachable) as caught, kube.connect(nowhere) as k:
        k.list_objects("v1", "Namespace")
    assert isinstance(caught.value, TemporaryError)


def test_wrong_ca_is_named(staging: gke.ClusterAccess) -> None:
    other_ca = trustme.CA().cert_pem.bytes().decode()
    wrong = gke.ClusterAccess("wrong CA", staging.server, other_ca, staging.tokens)
    with pytest.raises(kube.KubeError, match="could not be verified") as caught, kube.connect(wrong) as k:
        k.list_objects("v1", "Namespace")
    assert not isinstance(caught.value, TemporaryError)


def test_an_address_that_is_not_an_api_server_is_named(
    clusters: Clusters, staging: gke.ClusterAccess
) -> None:
    # The Container API stand-in speaks plain HTTP: a TLS client gets no handshake there.
    plain = clusters.gke_endpoint.replace("http://", "https://")
    wrong = gke.ClusterAccess("plain HTTP", plain, staging.ca_pem, staging.tokens)
    with pytest.raises(kube.KubeError, match="TLS handshake") as caught, kube.connect(wrong) as k:
        k.list_objects("v1", "Namespace")
    assert not isinstance(caught.value, TemporaryError)
