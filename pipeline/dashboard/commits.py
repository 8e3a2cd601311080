"""Source commits as the dashboard shows them: commit time (for lead time), author and subject.

Read from the project's own checkout (``settings.root``), where the source commits live (CI checks out the
full history). This asks the ``git`` command directly, read-only, rather than GitPython: ``gitops.py`` stays
the only importer of GitPython, and this module writes nothing. A commit git does not know (a shallow
clone, an ``unknown`` source) is simply absent from the answer. Used by ``collect.py``.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .metrics import parse_time

_SEP = "\x1f"


@dataclass(frozen=True)
class Commit:
    sha: str
    time: datetime.datetime
    author: str
    subject: str


def _git(root: Path, *args: str, stdin: str = "") -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def lookup(root: Path, names: Iterable[str]) -> dict[str, Commit]:
    """The commits among ``names`` (full or abbreviated hashes) that ``root``'s repository has, by name."""
    wanted = sorted({n for n in names if n and n != "unknown"})
    if not wanted:
        return {}
    # cat-file answers "<name> missing" for what it lacks instead of failing the whole call.
    out = _git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin="\n".join(wanted) + "\n")
    if out is None:
        return {}
    full: dict[str, str] = {}
    for name, line in zip(wanted, out.splitlines(), strict=False):
        sha, _, kind = line.partition(" ")
        if kind == "commit":
            full[sha] = name
    if not full:
        return {}
    shown = _git(root, "show", "-s", f"--format=%H{_SEP}%cI{_SEP}%an{_SEP}%s", *full)
    found: dict[str, Commit] = {}
    for line in (shown or "").splitlines():
        parts = line.split(_SEP)
        when = parse_time(parts[1]) if len(parts) == 4 else None
        if when is not None and parts[0] in full:
            found[full[parts[0]]] = Commit(parts[0], when, parts[2], parts[3])
    return found
