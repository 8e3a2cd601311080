"""The GitHub stand-in: a bare repository seeded once from the project's HEAD.

Not a process: ``control.up`` creates it before the daemon starts and leaves it alone afterwards, so that
bumps pushed to it survive ``down``/``up``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import SandboxError


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def seed(remote: Path, project_root: Path, branch: str = "main") -> bool:
    """Create ``remote`` from ``project_root``'s HEAD; return False when it already exists."""
    if (remote / "HEAD").exists():
        return False
    head = _git("-C", str(project_root), "rev-parse", "--verify", "HEAD")
    if head.returncode != 0:
        raise SandboxError(
            f"{project_root} has no commit to seed the sandbox's git remote from; commit first"
        )
    remote.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        ("init", "--quiet", "--bare", f"--initial-branch={branch}", str(remote)),
        ("-C", str(project_root), "push", "--quiet", str(remote), f"HEAD:refs/heads/{branch}"),
    )
    for step in steps:
        proc = _git(*step)
        if proc.returncode != 0:
            raise SandboxError(f"seeding the sandbox's git remote failed: {proc.stderr.strip()}")
    return True
