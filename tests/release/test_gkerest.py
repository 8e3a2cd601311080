"""gkerest: GKE's endpoint, CA and tokens over plain HTTPS, against the Google stand-in on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline import config, gkerest
from pipeline.access import ClusterAccess

from .conftest import GoogleStub  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
STAGING = config.Environment(
    "staging", "overlays/staging", gke_project="campus-staging", gke_location="asia-south1-a",
    gke_cluster="staging",
)  # fmt: skip


def _settings(stub: GoogleStub) -> config.Settings:
    return config.load(ROOT, {"PIPELINE_GKE_ENDPOINT": stub.url})


@pytest.fixture
def adc(google_stub: GoogleStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "adc.json"
    info = {
        "type": "authorized_user",
        "client_id": "pipeline-tests",
        "client_secret": "not-a-secret",
        "refresh_token": "refresh-me",
        "token_uri": f"{google_stub.url}/token",
    }
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def test_access_reads_endpoint_ca_and_token(google_stub: GoogleStub, adc: Path) -> None:
    found = gkerest.access(_settings(google_stub), STAGING)
    assert isinstance(found, ClusterAccess)
    assert found.server == "https://127.0.0.2" and found.ca_pem == google_stub.ca_pem
    assert found.tokens.token() == "token-1" and google_stub.refreshes == 1
    assert "token-1" not in repr(found)


def test_token_is_fetched_again_before_it_expires(google_stub: GoogleStub, adc: Path) -> None:
    google_stub.token_lifetime = 2
    found = gkerest.access(_settings(google_stub), STAGING)
    assert found is not None and found.tokens.token() == "token-1"
    time.sleep(1.6)  # past three quarters of the lifetime
    assert found.tokens.token() == "token-2"
    found.tokens.invalidate()
    assert found.tokens.token() == "token-3"


def test_anything_it_cannot_do_is_none(google_stub: GoogleStub, adc: Path, tmp_path: Path) -> None:
    settings = _settings(google_stub)
    unknown = config.Environment(
        "staging", "overlays/staging", gke_project="campus-staging", gke_location="x", gke_cluster="nope"
    )
    assert gkerest.access(settings, unknown) is None  # no such cluster: gke says so, with its hint
    assert gkerest.access(settings, config.Environment("dev", "o", kube_context="kind-dev")) is None
    google_stub.token_status = 401
    assert gkerest.access(settings, STAGING) is None
    adc.write_text(json.dumps({"type": "service_account", "private_key": "not-here"}))
    assert gkerest.access(settings, STAGING) is None
