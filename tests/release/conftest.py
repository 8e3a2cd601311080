"""Fixtures for the release stages: a tiny Google stand-in for fast tests, and the sandbox's clusters.

``google_stub`` is a real HTTP server on loopback that answers what google-auth and google-cloud-container
send (``POST /token`` for an ``authorized_user`` refresh, ``GET /v1/projects/.../clusters/...``), so the
fast tests exercise the real client libraries, not mocks. ``clusters`` starts the sandbox with clusters
(a temp home, its own ports and node addresses) for the end-to-end tests.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme


@dataclass
class GoogleStub:
    """State of the stand-in: what it answers and what it was asked."""

    url: str
    ca_pem: str
    token_lifetime: int = 3600
    token_status: int = 200
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    refreshes: int = 0
    lookups: list[tuple[str, str]] = field(default_factory=list)  # (path, authorization header)
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def credentials(self) -> Any:
        from google.oauth2 import credentials

        make: Any = credentials.Credentials
        return make(
            token=None,
            refresh_token="refresh-me",
            token_uri=f"{self.url}/token",
            client_id="pipeline-tests",
            client_secret="not-a-secret",
        )


def _handler(stub: GoogleStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows failures well enough."""

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/token":
                self._send(404, {"error": "not_found"})
                return
            if stub.token_status != 200:
                self._send(
                    stub.token_status, {"error": "invalid_grant", "error_description": "Token revoked"}
                )
                return
            # Slow enough that concurrent callers would overlap if the token source did not serialise them.
            time.sleep(0.05)
            with stub.lock:
                stub.refreshes += 1
                token = f"token-{stub.refreshes}"
                stub.issued.append(token)
            self._send(
                200, {"access_token": token, "expires_in": stub.token_lifetime, "token_type": "Bearer"}
            )

        def do_GET(self) -> None:
            stub.lookups.append((self.path, self.headers.get("Authorization", "")))
            auth = self.headers.get("Authorization", "")
            if auth.removeprefix("Bearer ") not in stub.issued:
                self._send(401, {"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}})
                return
            found = stub.clusters.get(self.path.split("?")[0])
            if found is None:
                self._send(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})
                return
            self._send(200, found)

    return Handler


@pytest.fixture
def google_stub() -> Iterator[GoogleStub]:
    ca = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(GoogleStub("", "")))
    stub = GoogleStub(f"http://127.0.0.1:{server.server_address[1]}", ca.cert_pem.bytes().decode())
    server.RequestHandlerClass = _handler(stub)
    stub.clusters["/v1/projects/campus-staging/locations/asia-south1-a/clusters/staging"] = {
        "name": "staging",
        "endpoint": "127.0.0.2",
        "status": "RUNNING",
        "masterAuth": {"clusterCaCertificate": base64.b64encode(stub.ca_pem.encode()).decode()},
    }
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


# --- the sandbox, with clusters (end-to-end tests) ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Clusters:
    """A running sandbox with clusters, as the pipeline sees it: environment variables only."""

    env: dict[str, str]
    ready: dict[str, Any]
    home: Path

    @property
    def gke_endpoint(self) -> str:
        return self.env["PIPELINE_GKE_ENDPOINT"]


def _sandbox_has_clusters() -> bool:
    # The Kubernetes side of the sandbox lands separately; until its API server exists, skip.
    return (ROOT / "sandbox" / "kube" / "apiserver.py").exists()


@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    """A sandbox of its own (temp home, free ports, node IPs beside the user's) with staging and prod."""
    if not _sandbox_has_clusters():
        pytest.skip("the sandbox has no Kubernetes API server yet")
    from sandbox import control
    from sandbox.home import Home, free_port

    home = Home(tmp_path_factory.mktemp("sandbox-release"))
    home.ensure_settings(
        {
            "SANDBOX_REGISTRY_PORT": str(free_port()),
            "SANDBOX_CLUSTERS": "staging,prod",
            # Not the user's 127.0.0.2/3, so a developer's sandbox can run beside the tests.
            "SANDBOX_NODE_IPS": "127.0.0.42,127.0.0.43",
            "SANDBOX_API_PORT": str(free_port()),
            "SANDBOX_GKE_PORT": str(free_port()),
            "SANDBOX_INGRESS_PORT": str(free_port()),
            # Short, so that refreshing during a rollout is exercised for real.
            "SANDBOX_TOKEN_LIFETIME": os.environ.get("RELEASE_TEST_TOKEN_LIFETIME", "8"),
        }
    )
    ready = control.up(home, ROOT)
    try:
        yield Clusters(dict(ready.get("env", {})), ready, home.path)
    finally:
        control.down(home)
