"""Shared fixtures: a real sandbox registry (with auth), and small real projects with bare git remotes."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import config
from sandbox import control
from sandbox.home import Home, free_port

ROOT = Path(__file__).resolve().parent.parent

OVERLAY = """\
# Staging pins the backend image here; the pipeline edits only the images: entry.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base   # shared objects

images:
  # Set by `invoke bump`; do not edit by hand.
  - name: backend
    newName: {registry}/{repository}
    newTag: sha-0000000   # placeholder until the first release
"""

TOML = """\
[image]
repository = "{repository}"
kustomize_name = "backend"
context = "app"
dockerfile = "Dockerfile"

[environments.staging]
overlay = "overlays/staging"

[environments.prod]
overlay = "overlays/prod"
protected = true
"""


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture(scope="session")
def sandbox_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sandbox with the registry and git remote only (no clusters), on free ports, for the session."""
    home = Home(tmp_path_factory.mktemp("sandbox-home"))
    home.ensure_settings({"SANDBOX_REGISTRY_PORT": str(free_port()), "SANDBOX_CLUSTERS": ""})
    ready = control.up(home, ROOT)
    yield ready
    control.down(home)


@dataclass
class Project:
    root: Path
    remote: Path
    env: dict[str, str]

    def settings(self, **overrides: str) -> config.Settings:
        return config.load(self.root, {**self.env, **overrides})

    def remote_file(self, path: str, ref: str = "main") -> str:
        return git("--git-dir", str(self.remote), "show", f"{ref}:{path}")

    def remote_log(self) -> list[str]:
        return git("--git-dir", str(self.remote), "log", "--format=%s", "main").splitlines()

    def push(self, *tags: str) -> dict[str, str]:
        """Push the project's image under each tag (a label per tag, so each has its own digest); the
        registry's digests. `bump` pins only what the registry has."""
        import docker

        repository = self.settings().image_repository
        auth = {"username": self.env["DOCKERHUB_USERNAME"], "password": self.env["DOCKERHUB_TOKEN"]}
        client = docker.from_env()
        digests: dict[str, str] = {}
        for tag in tags:
            client.images.build(path=str(self.root / "app"), tag=f"{repository}:{tag}", labels={"tag": tag})
            for line in client.images.push(repository, tag, auth_config=auth, stream=True, decode=True):
                assert "error" not in line, line
                digests[tag] = line.get("aux", {}).get("Digest", digests.get(tag, ""))
            client.images.remove(f"{repository}:{tag}", force=True)
        return digests


@pytest.fixture
def project(tmp_path: Path, sandbox_ready: dict[str, Any]) -> Project:
    """A tiny committed project (FROM scratch image, two overlays) with its own bare remote."""
    registry = sandbox_ready["env"]["PIPELINE_REGISTRY"]
    repository = f"test/app-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (root / "app" / "hello.txt").write_text(f"hello {repository}\n")
    (root / "pipeline.toml").write_text(TOML.format(repository=repository))
    for env in ("staging", "prod"):
        (root / "overlays" / env).mkdir(parents=True)
        text = OVERLAY.format(registry=registry, repository=repository).replace("Staging", env.title())
        (root / "overlays" / env / "kustomization.yaml").write_text(text)
    git("init", "-q", "-b", "main", cwd=root)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init", cwd=root)
    git("add", "-A", cwd=root)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "project", cwd=root)
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(remote))
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=root)
    env = {
        **{k: v for k, v in sandbox_ready["env"].items() if k != "PIPELINE_GITOPS_REMOTE"},
        "PIPELINE_GITOPS_REMOTE": str(remote),
        "HOME": os.environ.get("HOME", "/root"),
        "PATH": os.environ["PATH"],
    }
    return Project(root, remote, env)
