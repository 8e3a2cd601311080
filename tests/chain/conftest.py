"""The chain's reliability tests on a sandbox of their own (node addresses 127.0.0.63-64), two clones of the
project sharing one GitOps remote (as two machines would), and the command run as a user runs it, in the
background when a test must kill it. Built from tests/release/conftest.py's helpers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import config, gke, kube
from tests.release.conftest import ROOT, Clusters, Images, build_images, git, running_sandbox

NODE_IPS = "127.0.0.63,127.0.0.64"
NAMESPACE = "campus"
BACKEND = "backend-core-deployment"
OVERLAY = "overlays/staging/kustomization.yaml"


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox-chain"), NODE_IPS) as made:
        yield made


@dataclass(frozen=True)
class Variants:
    """Images in the sandbox's registry: the backend, two more good builds of it, and one that crashes."""

    good: str
    b: str
    c: str
    crash: str


@pytest.fixture(scope="module")
def images(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Variants:
    import docker

    env = clusters.env
    base: Images = build_images(
        env["PIPELINE_REGISTRY"],
        env["DOCKERHUB_USERNAME"],
        env["DOCKERHUB_TOKEN"],
        tmp_path_factory.mktemp("img"),
    )
    auth = {"username": env["DOCKERHUB_USERNAME"], "password": env["DOCKERHUB_TOKEN"]}
    repository, _, _ = base.good.rpartition(":")
    client = docker.from_env()
    client.images.pull(repository, "good", auth_config=auth)
    for name in ("b", "c"):
        context = tmp_path_factory.mktemp(f"variant-{name}")
        # Another digest of the same working backend, as a new build would be.
        (context / "Dockerfile").write_text(f"FROM {base.good}\nENV VARIANT={name}\n")
        client.images.build(path=str(context), tag=f"{repository}:good-{name}", rm=True)
        for line in client.images.push(
            repository, f"good-{name}", auth_config=auth, stream=True, decode=True
        ):
            assert "error" not in line, line
        client.images.remove(f"{repository}:good-{name}", force=True)
    client.images.remove(base.good, force=True)
    return Variants(base.good, f"{repository}:good-b", f"{repository}:good-c", base.crash)


class Background:
    """A command started in its own session (``setsid cmd &``), its stderr read line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.err: list[str] = []
        self.out: list[str] = []
        self.changed = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        self.ended_at: float | None = None
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self.changed:
                into.append(line)
                self.changed.notify_all()
        if into is self.err:
            self.ended_at = time.monotonic()  # stderr closes when the command ends

    def wait_for(self, text: str, timeout: float) -> None:
        """Until a line of stderr contains ``text``; fails the test if the command ends first."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(text in line for line in self.err):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    pytest.fail(f"no {text!r} in the output (rc {self.proc.poll()}):\n{self.stderr}")
                self.changed.wait(0.1)

    def signal_group(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        rc = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return subprocess.CompletedProcess(self.proc.args, rc, self.stdout, self.stderr)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


@dataclass
class Project:
    """Two clones of the project (two machines) and their one GitOps remote, on the sandbox."""

    clones: tuple[Path, Path]
    remote: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters

    def args(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]

    def env(self, clone: int) -> dict[str, str]:
        return {**self.environ, "PIPELINE_ROOT": str(self.clones[clone])}

    def invoke(self, *args: str, clone: int = 0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.args(*args),
            env=self.env(clone),
            cwd=self.clones[clone],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )

    def start(self, *args: str, clone: int = 0) -> Background:
        return Background(self.args(*args), self.env(clone), self.clones[clone])

    def pinned(self) -> str:
        """``name:tag@digest`` that staging's overlay pins on the remote."""
        text = git("--git-dir", str(self.remote), "show", f"main:{OVERLAY}")
        entry = next(e for e in yaml.safe_load(text)["images"] if e["name"] == "backend")
        return f"{entry['newName']}:{entry['newTag']}" + (
            f"@{entry['digest']}" if entry.get("digest") else ""
        )

    def access(self) -> gke.ClusterAccess:
        return self.clusters.access("staging")

    def running(self) -> tuple[str, set[str]]:
        """The Deployment's image and the images of its pods that are not on their way out."""
        with kube.connect(self.access()) as k:
            deployment = k.get("apps/v1", "Deployment", BACKEND, NAMESPACE)
            pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector="app=backend-core")
        assert deployment is not None
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        live = {
            p["spec"]["containers"][0]["image"] for p in pods if not p["metadata"].get("deletionTimestamp")
        }
        return str(image), live

    @property
    def node_ip(self) -> str:
        return str(self.clusters.ready["kube"]["clusters"]["staging"]["node_ip"])


@pytest.fixture(scope="module")
def project(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    tmp = tmp_path_factory.mktemp("chain")
    first, remote = tmp / "machine-a", tmp / "remote.git"
    second = tmp / "machine-b"
    git("clone", "-q", str(ROOT), str(first))
    git("init", "-q", "--bare", "-b", "main", str(remote))
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=first)
    git("clone", "-q", str(ROOT), str(second))
    environ = {
        **clusters.env,
        "PIPELINE_GITOPS_REMOTE": str(remote),
        "PIPELINE_IMAGE_REPOSITORY": f"chain-e2e/backend-{uuid.uuid4().hex[:8]}",
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
    }
    settings = config.load(first, environ)
    made = Project((first, second), remote, environ, settings, clusters)
    with pytest.MonkeyPatch.context() as patch:
        # The tests look at the cluster as the pipeline does: google.auth.default() reads this.
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", environ["GOOGLE_APPLICATION_CREDENTIALS"])
        yield made
        with contextlib.suppress(Exception), kube.connect(made.access()) as k:
            k.delete("v1", "Namespace", NAMESPACE)
