"""Label and field selectors, parsed as kube-apiserver parses ``labelSelector`` and ``fieldSelector``.

Each parser returns a :data:`Matcher`, a predicate over an object. Used by the store's ``list``
(``core.py``) and by the API server (``apiserver/``) to filter watch events; a selector that cannot be
parsed is a :class:`~.errors.BadRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import BadRequest

Matcher = Callable[[dict[str, Any]], bool]

_SELECTOR_OP = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)(?:\s*(==|=|!=)\s*(.*?)|\s+(in|notin)\s+(\(.*\))|)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Matcher:
    """``a=b,c!=d,e in (x,y),f notin (z),g,!h`` as kube-apiserver parses ``labelSelector``."""
    if not text or not text.strip():
        return lambda _obj: True
    requirements: list[tuple[str, str, frozenset[str]]] = []  # (operator, key, values)
    for part in _split_top(text):
        m = _SELECTOR_OP.match(part)
        if m is None:
            raise BadRequest(f"unable to parse requirement: invalid label selector: {part!r}")
        neg, key = m.group(1), m.group(2)
        op, value = (m.group(3), m.group(4)) if m.group(3) else (m.group(5) or "", m.group(6) or "")
        if neg and op:
            raise BadRequest(f"unable to parse requirement: {part!r}")
        if op in ("in", "notin"):
            if not (value.startswith("(") and value.endswith(")")):
                raise BadRequest(f"unable to parse requirement: {part!r}: values must be in parentheses")
            values = frozenset(v.strip() for v in value[1:-1].split(",") if v.strip())
        else:
            values = frozenset([value])
        operator = "!exists" if neg else (op or "exists")
        requirements.append(("=" if operator == "==" else operator, key, values))

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        for operator, key, values in requirements:
            present = key in labels
            ok = {
                "exists": present,
                "!exists": not present,
                "=": present and labels[key] in values,
                "in": present and labels[key] in values,
                "!=": not present or labels[key] not in values,
                "notin": not present or labels[key] not in values,
            }[operator]
            if not ok:
                return False
        return True

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field (``status.phase``), "" when absent, as field selectors see it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None) -> Matcher:
    """``metadata.name=x,status.phase!=Running``: equality tests on dotted fields."""
    if not text or not text.strip():
        return lambda _obj: True
    tests: list[tuple[str, bool, str]] = []
    for part in _split_top(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        tests.append((m.group(1), m.group(2) == "!=", m.group(3).replace("\\,", ",")))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) != negate for path, negate, value in tests)

    return match
