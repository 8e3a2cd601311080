"""The errors of server-side apply and of the patch types, both turned into Status objects by the API server.

:class:`PatchError` is a patch or an applied configuration that cannot be used (400, or 422 when
``invalid``); :class:`ApplyConflict` lists the fields other managers own that an apply would change (409,
with one ``FieldManagerConflict`` cause per field). Raised by ``schema.py``, ``serverside.py`` and
``patches.py``; caught by ``apiserver/``. Uses ``paths.py`` to print paths.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import SandboxError
from .paths import Path, path_string


class PatchError(SandboxError, ValueError):
    """A patch or applied configuration that cannot be used (400 BadRequest, or 422 when ``invalid``)."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


class ApplyConflict(SandboxError):
    """Fields owned by other managers that an apply would change: ``(manager entry, path)`` pairs."""

    def __init__(self, conflicts: list[tuple[dict[str, Any], Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(self.message())

    def message(self) -> str:
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return (
                f"Apply failed with 1 conflict: conflict with {describe_manager(entry)}: {path_string(path)}"
            )
        by_manager: dict[str, list[Path]] = {}
        for entry, path in self.conflicts:
            by_manager.setdefault(describe_manager(entry), []).append(path)
        lines = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[manager])
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [
            {
                "type": "FieldManagerConflict",
                "message": f"conflict with {describe_manager(entry)}",
                "field": path_string(path),
            }
            for entry, path in self.conflicts
        ]


def describe_manager(entry: dict[str, Any]) -> str:
    """How kube-apiserver names a manager in conflict messages."""
    text = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        text += f" with subresource {json.dumps(entry['subresource'])}"
    if entry.get("operation") == "Update":
        text += f" using {entry.get('apiVersion', '')}"
        if entry.get("time"):
            text += f" at {entry['time']}"
    return text
