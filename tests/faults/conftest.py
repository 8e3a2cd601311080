"""One sandbox for the fault-injection and load tests (node addresses 127.0.0.72-73), and their helpers.

The project is a clone of this checkout whose GitOps remote is the sandbox's own (so the sandbox's
"refuse pushes" switch applies to it); releases use pre-built images (``--image``): the real backend, a
crashing variant, and small variants of the good one (a label each, so every release is a real change).
Faults are thrown through the sandbox's control interface (``sandbox.faultclient``), never by patching
the pipeline. Each test records a row (fault, what was done, the diagnosis line, the checks) that
``scripts/reliability-report`` turns into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import config, gke, kube
from sandbox.faultclient import FaultClient
from sandbox.home import Home
from tests.release.conftest import ROOT, Clusters, Images, build_images, git, process_env, running_sandbox

NAMESPACE = "campus"
BACKEND = "backend-core-deployment"
NODE_PORT = 30100
OVERLAY = "overlays/{env}/kustomization.yaml"
RESULTS = ROOT / "test-artifacts" / "reliability"


@dataclass
class Project:
    clone: Path
    remote: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters
    images: Images
    faults: FaultClient
    variants: Iterator[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def node_ip(self, env: str) -> str:
        return str(self.clusters.ready["kube"]["clusters"][env]["node_ip"])

    def main(self) -> str:
        return git("--git-dir", str(self.remote), "rev-parse", "main").strip()

    def pin(self, env: str) -> str:
        """``name:tag@digest`` as the remote's overlay pins the backend."""
        text = git("--git-dir", str(self.remote), "show", f"main:{OVERLAY.format(env=env)}")
        entry = next(e for e in yaml.safe_load(text)["images"] if e["name"] == "backend")
        return f"{entry['newName']}:{entry['newTag']}@{entry.get('digest', '')}"

    def access(self, env: str) -> gke.ClusterAccess:
        return self.clusters.access(env)

    def running(self, env: str) -> tuple[str, bool]:
        """The backend Deployment's image, and whether its rollout is complete with every pod ready."""
        with kube.connect(self.access(env)) as k:
            deployment = k.get("apps/v1", "Deployment", BACKEND, NAMESPACE)
        assert deployment is not None
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        spec, status = deployment["spec"], deployment.get("status") or {}
        want = spec.get("replicas", 1)
        done = (
            status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == want
            and status.get("availableReplicas") == want
            and status.get("replicas") == want
        )
        return str(image), done

    def invoke(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env(),
            cwd=self.clone,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]

    def env(self) -> dict[str, str]:
        return {**self.environ, "PIPELINE_ROOT": str(self.clone)}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env=self.env(),
            cwd=self.clone,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def when_bumped(
        self, before: str, action: Callable[[], object], timeout: float = 120
    ) -> threading.Thread:
        """Run ``action`` (in a thread) as soon as the remote's main moves past ``before``."""

        def watch() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.main() != before:
                    action()
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def record(self, **row: Any) -> None:
        self.rows.append(row)


def last_line(proc: subprocess.CompletedProcess[str] | tuple[int, str, str]) -> str:
    err = proc.stderr if isinstance(proc, subprocess.CompletedProcess) else proc[2]
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def build_variants(images: Images, env: dict[str, str], workdir: Path, count: int) -> list[str]:
    """``count`` images that serve like the good one, each with its own digest (one label differs)."""
    import docker

    client = docker.from_env()
    repository = images.good.rsplit(":", 1)[0]
    auth = {"username": env["DOCKERHUB_USERNAME"], "password": env["DOCKERHUB_TOKEN"]}
    client.images.pull(repository, "good", auth_config=auth)
    refs = []
    for number in range(count):
        context = workdir / f"v{number}"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(f"FROM {images.good}\nLABEL fault-e2e.variant={number}\n")
        tag = f"v{number}-{uuid.uuid4().hex[:6]}"
        client.images.build(path=str(context), tag=f"{repository}:{tag}", rm=True)
        for line in client.images.push(repository, tag, auth_config=auth, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"pushing {repository}:{tag}: {line['error']}")
        client.images.remove(f"{repository}:{tag}", force=True)
        refs.append(f"{repository}:{tag}")
    return refs


@pytest.fixture(scope="package")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox-faults"), "127.0.0.72,127.0.0.73") as made:
        yield made


@pytest.fixture(scope="package")
def project(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    tmp = tmp_path_factory.mktemp("faults")
    env = clusters.env
    images = build_images(
        env["PIPELINE_REGISTRY"], env["DOCKERHUB_USERNAME"], env["DOCKERHUB_TOKEN"], tmp / "img"
    )
    variants = build_variants(images, env, tmp / "variants", 16)
    # The sandbox's own remote, so that its fault switch (a pre-receive hook) applies to the releases.
    remote = Path(env["PIPELINE_GITOPS_REMOTE"])
    clone = tmp / "clone"
    git("clone", "-q", str(remote), str(clone))
    environ = {
        **env,
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(ROOT),
    }
    settings = config.load(clone, environ)
    with process_env(environ):
        made = Project(
            clone,
            remote,
            environ,
            settings,
            clusters,
            images,
            FaultClient(Home(clusters.home)),
            iter(variants),
        )
        try:
            yield made
        finally:
            made.faults.clear()
            made.faults.allow_git_pushes()


@pytest.fixture(scope="module")
def rows(project: Project, request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """The rows one module records, written to test-artifacts/reliability/<module>.json at its end."""
    project.rows = []
    yield project.rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = Path(str(request.module.__file__)).stem
    (RESULTS / f"{name}.json").write_text(json.dumps(project.rows, indent=2) + "\n")
