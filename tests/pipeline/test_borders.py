"""Borders import-linter cannot see: git runs only in pipeline/gitops.py, as a library or as a process.

The import-linter contracts in pyproject.toml keep each third-party client (GitPython included) in its
one module; an argv that starts with "git" is a way round them that no import shows, so this test reads
the sources too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
ALLOWED = PIPELINE / "gitops.py"
# Read-only questions to the project's own checkout, never the GitOps remote: kept where they are asked.
KNOWN = {
    "pipeline/config.py": "the checkout's origin URL, the default GitOps remote",
    "pipeline/dashboard/commits.py": "the dates and subjects of source commits, for the dashboard",
}


def _runs_git(tree: ast.AST) -> list[int]:
    """Lines that import GitPython or build an argv starting with "git"."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        if any(m.split(".")[0] == "git" for m in modules):
            found.append(node.lineno)
        elif isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in ("git", "/usr/bin/git"):
                found.append(node.lineno)
    return found


def test_only_gitops_runs_git() -> None:
    offenders = {
        str(path.relative_to(PIPELINE.parent)): lines
        for path in sorted(PIPELINE.rglob("*.py"))
        if path != ALLOWED
        and str(path.relative_to(PIPELINE.parent)) not in KNOWN
        and (lines := _runs_git(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}


def test_gitops_does_run_git() -> None:
    # The scan above would pass vacuously if it stopped recognising how gitops runs git.
    assert _runs_git(ast.parse(ALLOWED.read_text()))
