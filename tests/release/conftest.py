"""Fixtures for the release stages: a tiny Google stand-in for fast tests, and the sandbox's clusters.

``google_stub`` is a real HTTP server on loopback that answers what google-auth and google-cloud-container
send (``POST /token`` for an ``authorized_user`` refresh, ``GET /v1/projects/.../clusters/...``), so the
fast tests exercise the real client libraries, not mocks. ``clusters`` starts the sandbox with clusters
(a temp home, its own ports and node addresses) for the end-to-end tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trustme

if TYPE_CHECKING:
    from pipeline.gke import ClusterAccess


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
    token_lifetime: int

    @property
    def gke_endpoint(self) -> str:
        return self.env["PIPELINE_GKE_ENDPOINT"]

    def access(self, env: str) -> ClusterAccess:
        """How to reach cluster ``env``, looked up like GKE (Container API + google-auth)."""
        from pipeline import gke

        info = self.ready["kube"]
        return gke.cluster_access(info["project"], info["location"], env, api_endpoint=self.gke_endpoint)


# What release.py reads from os.environ (the app's Secret, Application Default Credentials).
PROCESS_ENV = ("GOOGLE_APPLICATION_CREDENTIALS", "CAMPUS_POSTGRES_PASSWORD", "CAMPUS_ADMIN_PASS")


@contextlib.contextmanager
def process_env(environ: dict[str, str]) -> Iterator[None]:
    """This process's environment carries ``environ``'s credentials, as a user's shell would."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PROCESS_ENV:
            patch.setenv(name, environ[name])
        yield


@contextlib.contextmanager
def running_sandbox(home_dir: Path, node_ips: str, **extra: str) -> Iterator[Clusters]:
    """A sandbox of its own (``home_dir``, free ports, ``node_ips``) with staging and prod; purged after."""
    from sandbox import control
    from sandbox.home import Home, free_port

    home = Home(home_dir)
    home.ensure_settings(
        {
            "SANDBOX_REGISTRY_PORT": str(free_port()),
            "SANDBOX_CLUSTERS": "staging,prod",
            "SANDBOX_NODE_IPS": node_ips,
            "SANDBOX_API_PORT": str(free_port()),
            "SANDBOX_GKE_PORT": str(free_port()),
            "SANDBOX_INGRESS_PORT": str(free_port()),
            **extra,
        }
    )
    ready = control.up(home, ROOT)
    settings = home.load_settings()
    assert settings is not None
    try:
        yield Clusters(dict(ready.get("env", {})), ready, home.path, settings.token_lifetime_seconds)
    finally:
        # The database claims are Retain volumes meant to outlive `down`; a test sandbox leaves none.
        control.purge(home)
        _remove_test_images(ready.get("env", {}).get("PIPELINE_REGISTRY", ""))


@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    """The release tests' sandbox: node IPs beside the user's 127.0.0.2/3, so both can run at once."""
    with running_sandbox(
        tmp_path_factory.mktemp("sandbox-release"),
        "127.0.0.42,127.0.0.43",
        # Short, so that refreshing during a rollout is exercised for real.
        SANDBOX_TOKEN_LIFETIME=os.environ.get("RELEASE_TEST_TOKEN_LIFETIME", "6"),
    ) as made:
        yield made


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def seeded_clone(tmp: Path, clusters: Clusters, **extra: str) -> tuple[Path, Path, dict[str, str]]:
    """A clone of this checkout's HEAD with its own bare remote, and the environment that points at both
    and at the sandbox (what `eval "$(invoke sandbox.env)"` gives a user, plus ``extra``)."""
    clone, remote = tmp / "clone", tmp / "remote.git"
    git("clone", "-q", str(ROOT), str(clone))
    git("init", "-q", "--bare", "-b", "main", str(remote))
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=clone)
    environ = {
        **clusters.env,
        "PIPELINE_GITOPS_REMOTE": str(remote),
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        **extra,
    }
    return clone, remote, environ


def _remove_test_images(registry: str) -> None:
    """The kubelet pulled our test images into the local engine; they name a registry that is now gone."""
    import docker

    if not registry:
        return
    client = docker.from_env()
    for image in client.images.list(filters={"reference": f"{registry}/release-test/*"}):
        for tag in image.tags:
            # Still used by a container the sandbox left behind? Its own tests report that.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, force=True)


@dataclass(frozen=True)
class Images:
    """Backend images in the sandbox's registry: one that serves, one that crashes, one that is missing."""

    good: str
    crash: str
    missing: str


def build_images(registry: str, username: str, password: str, workdir: Path) -> Images:
    """Build the real backend (``build.sh`` + its Dockerfile) and a crashing variant; push both."""
    import shutil
    import subprocess

    import docker

    repository = f"{registry}/release-test/backend"
    context = workdir / "good"
    (context / "bin").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sh", "build.sh"],
        cwd=ROOT / "backend",
        env={
            **os.environ,
            "BACKEND_OUTPUT": str(context / "bin" / "backend"),
            "SOURCE_COMMIT": "releasetest",
        },
        check=True,
        capture_output=True,
    )
    shutil.copy(ROOT / "backend" / "Dockerfile", context / "Dockerfile")
    client = docker.from_env()
    client.images.build(path=str(context), tag=f"{repository}:good", rm=True)
    crash = workdir / "crash"
    crash.mkdir(exist_ok=True)
    # The backend exits with code 3 at start when CRASH_ON_START is set (backend/README.md).
    (crash / "Dockerfile").write_text(f"FROM {repository}:good\nENV CRASH_ON_START=1\n")
    client.images.build(path=str(crash), tag=f"{repository}:crash", rm=True)
    auth = {"username": username, "password": password}
    for tag in ("good", "crash"):
        for line in client.images.push(repository, tag, auth_config=auth, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"pushing {repository}:{tag}: {line['error']}")
        # The cluster pulls from the registry; a local copy would hide a broken push.
        client.images.remove(f"{repository}:{tag}", force=True)
    return Images(f"{repository}:good", f"{repository}:crash", f"{repository}:no-such-tag")


@pytest.fixture(scope="session")
def images(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Images:
    env = clusters.env
    return build_images(
        env["PIPELINE_REGISTRY"],
        env["DOCKERHUB_USERNAME"],
        env["DOCKERHUB_TOKEN"],
        tmp_path_factory.mktemp("images"),
    )


@pytest.fixture(scope="session")
def adc(clusters: Clusters) -> Iterator[None]:
    """Application Default Credentials pointing at the sandbox (as `invoke sandbox.env` exports them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", clusters.env["GOOGLE_APPLICATION_CREDENTIALS"])
        yield


@pytest.fixture(scope="session")
def staging(clusters: Clusters, adc: None) -> Any:
    """How to reach the sandbox's staging cluster, looked up like GKE (Container API + google-auth)."""
    return clusters.access("staging")


def deployment(namespace: str, image: str, name: str = "web", **spec: Any) -> list[dict[str, Any]]:
    """A Namespace and a one-replica Deployment of the backend (no database: /healthz answers 200)."""
    probe: dict[str, Any] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
    probe.update(spec.pop("probe", {}))
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "ports": [{"containerPort": 8080}],
                                "readinessProbe": probe,
                            }
                        ]
                    },
                },
                **spec,
            },
        },
    ]
