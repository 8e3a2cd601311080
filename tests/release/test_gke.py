"""GKE authentication against a real HTTP stand-in of Google's token endpoint and Container API.

The real ``google-auth`` and ``google-cloud-container`` (REST transport) talk to it; nothing is mocked.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any

import pytest

from pipeline import gke
from pipeline.errors import TemporaryError

from .conftest import GoogleStub  # type: ignore[import-not-found]

PROJECT, LOCATION, CLUSTER = "campus-staging", "asia-south1-a", "staging"


def test_cluster_access_reads_endpoint_and_ca(google_stub: GoogleStub) -> None:
    access = gke.cluster_access(
        PROJECT, LOCATION, CLUSTER, api_endpoint=google_stub.url, credentials=google_stub.credentials()
    )
    assert access.server == "https://127.0.0.2"
    assert access.ca_pem == google_stub.ca_pem
    assert access.description == "GKE cluster campus-staging/asia-south1-a/staging"
    # The Container API was asked with the credentials' token, and that token is what the cluster gets.
    path, auth = google_stub.lookups[-1]
    assert path.startswith("/v1/projects/campus-staging/locations/asia-south1-a/clusters/staging")
    assert auth == f"Bearer {access.tokens.token()}"
    assert "token" not in repr(access).lower().replace("tokens", "")


def test_unknown_cluster_is_one_line_naming_it(google_stub: GoogleStub) -> None:
    with pytest.raises(gke.ClusterNotFound) as caught:
        gke.cluster_access(
            PROJECT, LOCATION, "nope", api_endpoint=google_stub.url, credentials=google_stub.credentials()
        )
    message = str(caught.value)
    assert "campus-staging/asia-south1-a/nope" in message and "gke_cluster" in message
    assert "\n" not in message


def test_refused_credentials_say_what_to_run(google_stub: GoogleStub) -> None:
    google_stub.token_status = 400  # invalid_grant: a revoked or expired refresh token
    with pytest.raises(gke.GoogleAuthError) as caught:
        gke.cluster_access(
            PROJECT, LOCATION, CLUSTER, api_endpoint=google_stub.url, credentials=google_stub.credentials()
        )
    message = str(caught.value)
    assert "gcloud auth application-default login" in message and "Workload Identity Federation" in message
    assert "refresh-me" not in message and "not-a-secret" not in message


def test_unreachable_endpoint_is_temporary() -> None:
    from google.oauth2 import credentials

    make: Any = credentials.Credentials
    creds = make(
        token="t",
        expiry=datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1),
    )
    with pytest.raises(gke.GkeUnreachable) as caught:
        gke.cluster_access(PROJECT, LOCATION, CLUSTER, api_endpoint="http://127.0.0.1:9", credentials=creds)
    assert isinstance(caught.value, TemporaryError)
    assert "127.0.0.1:9" in str(caught.value)


def test_missing_settings_are_refused_before_any_call() -> None:
    with pytest.raises(gke.GkeError, match="gke_project"):
        gke.cluster_access("", LOCATION, CLUSTER)


def test_token_is_refreshed_before_it_expires(google_stub: GoogleStub) -> None:
    google_stub.token_lifetime = 2
    tokens = gke.GoogleToken(google_stub.credentials(), "test")
    first = tokens.token()
    assert tokens.token() == first  # cached while fresh
    # The margin is a quarter of the lifetime here (0.5 s of 2 s): after 1.6 s a new token is due.
    time.sleep(1.6)
    second = tokens.token()
    assert second != first
    assert google_stub.refreshes == 2


def test_token_refresh_is_serialised_across_threads(google_stub: GoogleStub) -> None:
    tokens = gke.GoogleToken(google_stub.credentials(), "test")
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(tokens.token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert google_stub.refreshes == 1 and set(seen) == {"token-1"}
    tokens.invalidate()
    assert tokens.token() == "token-2"


def test_decode_ca_refuses_garbage() -> None:
    with pytest.raises(gke.GkeError, match="clusterCaCertificate"):
        gke._decode_ca("bm90IGEgY2VydA==", "GKE cluster p/l/c")


def test_a_broken_credentials_file_is_named(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Measured on main: "no Application Default Credentials found", whichever file was wrong.
    broken = tmp_path / "adc.json"
    for content in (None, "not json", '{"type": "authorized_user"}'):
        if content is not None:
            broken.write_text(content)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(broken))
        with pytest.raises(gke.GoogleAuthError) as caught:
            gke.cluster_access(PROJECT, LOCATION, CLUSTER, api_endpoint="http://127.0.0.1:9")
        message = str(caught.value)
        assert f"{broken} (GOOGLE_APPLICATION_CREDENTIALS) cannot be used" in message, message
        assert "\n" not in message


def test_an_oauth_error_from_federation_is_one_line(
    google_stub: GoogleStub, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workload Identity Federation (what CI uses): the token exchange answers invalid_grant. Measured on
    # main: google.auth's OAuthError escaped as a traceback.
    subject = tmp_path / "subject-token"
    subject.write_text("not-a-jwt")
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps(
            {
                "type": "external_account",
                "audience": "//iam.googleapis.com/locations/global/workloadIdentityPools/p/providers/p",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": f"{google_stub.url}/token",
                "credential_source": {"file": str(subject)},
            }
        )
    )
    google_stub.token_status = 400
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    with pytest.raises(gke.GoogleAuthError) as caught:
        gke.cluster_access(PROJECT, LOCATION, CLUSTER, api_endpoint=google_stub.url)
    message = str(caught.value)
    assert f"the credentials from {adc} (GOOGLE_APPLICATION_CREDENTIALS) were refused" in message, message
    assert "invalid_grant" in message and "\n" not in message and "not-a-jwt" not in message
