"""`invoke validate a b` as `--path a --path b`: invoke has no variadic positionals (imported by tasks.py).

Kept apart from `tasks.py` (the command layer's wiring) because it edits invoke's own argv before parsing.
"""

from __future__ import annotations

from pathlib import Path


def variadic(task_name: str, flag: str) -> None:
    """Let `invoke validate a b` mean `--path a --path b`: invoke has no variadic positionals."""
    try:
        from invoke.main import program
    except ImportError:
        return
    core = getattr(program, "core", None)
    argv: list[str] | None = getattr(core, "unparsed", None)
    if not argv or task_name not in argv:
        return
    i = argv.index(task_name) + 1
    while i < len(argv) and not argv[i].startswith("-") and ("/" in argv[i] or Path(argv[i]).exists()):
        argv.insert(i, flag)
        i += 2
