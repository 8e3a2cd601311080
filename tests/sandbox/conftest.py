"""Fixtures of the sandbox's Kubernetes side: the KubeService (API servers, GKE stand-in, token endpoint)
running in a thread of its own on loopback addresses distinct from the defaults, with kubectl pointed at
it through the kubeconfig it writes. No Docker: ``workloads=False``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.home import ClusterSettings, Home, Settings, free_port
from sandbox.kube.service import KubeService

# The API servers report v1.31, for which google-cloud-cli's kubectl dispatcher would pick this binary;
# calling it directly saves the dispatcher's own /version request on every command.
KUBECTL = next(
    (p for p in ("/usr/lib/google-cloud-sdk/bin/kubectl.1.31",) if Path(p).exists()),
    shutil.which("kubectl") or "/usr/bin/kubectl",
)
STAGING_IP, PROD_IP = "127.0.0.12", "127.0.0.13"


def kube_settings(lifetime: int = 3600) -> Settings:
    return Settings(
        registry_port=free_port(),
        registry_user="sandbox",
        registry_password="unused",
        gke_port=free_port(),
        token_lifetime_seconds=lifetime,
        # Tests name their namespaces; the user's sandbox defaults kubectl to the app's.
        default_namespace="",
        clusters=(
            ClusterSettings("staging", STAGING_IP, free_port(STAGING_IP)),
            ClusterSettings("prod", PROD_IP, free_port(PROD_IP)),
        ),
    )


@dataclass
class RunningKube:
    """A KubeService on its own event loop thread; blocking clients (kubectl, kubernetes) talk to it."""

    home: Home
    settings: Settings
    service: KubeService | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    thread: threading.Thread | None = None

    def start(self) -> RunningKube:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="kube-service")
        self.thread.start()
        self.service = KubeService(self.home, self.settings, workloads=False)
        self.call(self.service.start())
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if self.service is not None:
            self.call(self.service.stop())
            self.service = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        self.loop.close()

    @property
    def kubeconfig(self) -> Path:
        return self.home.kube_dir / "kubeconfig"

    def env(self) -> dict[str, str]:
        assert self.service is not None
        return {**os.environ, **self.service.describe()["env"]}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, context: str = "staging"
    ) -> subprocess.CompletedProcess[str]:
        cache = self.home.path / "kubectl-cache"
        result = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(self.kubeconfig),
                "--context",
                context,
                "--cache-dir",
                str(cache),
                *args,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(),
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def server(self, cluster: str = "staging") -> str:
        assert self.service is not None
        return str(self.service.describe()["kube"]["clusters"][cluster]["server"])


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKube]:
    """One sandbox Kubernetes side for the whole session (tests use their own namespaces)."""
    home = Home(tmp_path_factory.mktemp("kube-home"))
    running = RunningKube(home, kube_settings()).start()
    yield running
    running.stop()


@pytest.fixture
def fresh_kube(tmp_path: Path) -> Iterator[RunningKube]:
    """A sandbox of the test's own (restarts, short token lifetimes)."""
    running = RunningKube(Home(tmp_path / "home"), kube_settings(lifetime=2)).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox(engine: docker.DockerClient) -> Iterator[str]:
    """A tiny image made offline: static busybox as /bin/sh and friends, and a page for ``httpd``."""
    from sandbox.kube.pgimage import RootFS, build_image, static_busybox

    tag = f"sandbox-test/busybox:{uuid.uuid4().hex[:8]}"
    rootfs = RootFS()
    rootfs.add_host_file(static_busybox(), "/bin/busybox")
    for applet in ("sh", "sleep", "httpd", "wget", "cat", "echo", "ls"):
        rootfs.add_symlink(f"/bin/{applet}", "busybox")
    rootfs.add_file("/www/index.html", b"hello from busybox\n")
    rootfs.add_dir("/tmp", 0o1777)
    build_image(engine, tag, rootfs, ['CMD ["/bin/sh"]'], "test")
    yield tag
    engine.images.remove(tag, force=True)
