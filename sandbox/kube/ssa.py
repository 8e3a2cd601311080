"""Server-side apply and managedFields (placeholder until the full merge lands)."""

from __future__ import annotations

from typing import Any

GVR = tuple[str, str, str]


def update_managed_fields(
    gvr: GVR,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    now: str,
    *,
    subresource: str | None,
) -> list[dict[str, Any]]:
    """The managedFields of ``new`` after an Update operation by ``manager``."""
    fields: list[dict[str, Any]] = list((new.get("metadata") or {}).get("managedFields") or [])
    return fields
