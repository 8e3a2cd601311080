"""The command layer as users meet it: one clear line and exit 1 for bad input, the contract's task names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT, Project, git  # type: ignore[import-not-found]

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INVOKE, *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def test_list_shows_the_contract() -> None:
    out = invoke("--list").stdout
    for name in ("build", "bump", "validate", "release", "promote", "rollback", "plan", "history"):
        assert f"  {name} " in out
    for name in ("up", "down", "status", "env"):
        assert f"sandbox.{name}" in out


def test_release_tasks_refuse_bad_input_in_one_line() -> None:
    cases = {
        ("promote", "--env", "prod"): "error: prod is protected",
        ("release", "--env", "qa"): "error: unknown environment 'qa'",
        ("plan", "--env", "qa"): "error: unknown environment 'qa'",
        ("rollback", "--env", "prod"): "error: prod is protected",
    }
    for args, start in cases.items():
        proc = invoke(*args)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith(start), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _project_env(project: Project) -> dict[str, str]:
    return {**os.environ, **project.env, "PIPELINE_ROOT": str(project.root)}


def test_bad_input_is_one_line_and_changes_nothing(project: Project) -> None:
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    env = _project_env(project)
    cases = {
        ("bump", "--env", "qa", "--tag", "sha-1a2b3c4"): "error: unknown environment 'qa'",
        ("bump", "--env", "staging", "--tag", "no good"): "error: 'no good' is not a valid Docker tag",
        ("bump", "--env", "prod", "--tag", "sha-1a2b3c4"): "error: prod is protected",
    }
    for args, start in cases.items():
        proc = invoke(*args, env=env)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith(start), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head


def test_bump_then_noop(project: Project) -> None:
    project.push("sha-1a2b3c4")
    env = _project_env(project)
    first = invoke("bump", "--env", "staging", "--tag", "sha-1a2b3c4", env=env)
    assert first.returncode == 0, first.stderr
    assert "now pins" in first.stdout
    second = invoke("bump", "--env", "staging", "--tag", "sha-1a2b3c4", env=env)
    assert second.returncode == 0 and "nothing to commit" in second.stdout


def test_sandbox_status_when_not_running(tmp_path: Path) -> None:
    proc = invoke("sandbox.status", env={**os.environ, "SANDBOX_HOME": str(tmp_path)})
    assert proc.returncode == 1 and "not running" in proc.stderr


def test_in_github_actions_an_error_is_also_an_annotation(tmp_path: Path) -> None:
    env = {**os.environ, "GITHUB_ACTIONS": "true"}
    proc = invoke("bump", "--env", "qa", "--tag", "sha-1a2b3c4", env=env)
    assert proc.returncode == 1
    assert proc.stdout.startswith("::error title=ConfigError::unknown environment 'qa'")
    assert proc.stderr.startswith("error: unknown environment 'qa'")
