"""Small helpers on API objects as plain dicts, shared by every controller of this package.

Times are RFC 3339 strings with second precision, as ``metav1.Time`` writes them; label selectors follow
``metav1.LabelSelectorAsSelector`` (an absent selector selects nothing, an empty one everything); owner
references follow ``metav1.NewControllerRef``. "Semantic" equality treats an empty map or list as equal to
an absent one, as ``apiequality.Semantic.DeepEqual`` does, so a template that went through JSON with
``omitempty`` still matches the one it came from.

Neighbours: ``rollout.py``, ``replicaset.py``, ``pods.py`` and ``services.py`` build on these; nothing here
touches the store (the resource names come from ``store/kinds.py``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

Obj = dict[str, Any]


MANAGER = "sandbox-controller"

# utilrand.String's alphabet: no vowels (no accidental words) and no look-alike characters.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def utcnow() -> datetime:
    return datetime.now(UTC)


def fmt_time(t: datetime) -> str:
    """``metav1.Time`` on the wire: UTC, whole seconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def random_suffix(n: int = 5) -> str:
    """What ``generateName`` appends: ``utilrand.String(5)``."""
    return "".join(secrets.choice(_ALPHANUMS) for _ in range(n))


def safe_encode(s: str) -> str:
    """``rand.SafeEncodeString``: maps each byte onto the alphabet, so hashes never spell words."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in s.encode())


def meta(obj: Mapping[str, Any]) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def ns_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("uid", ""))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = meta(obj).get("labels") or {}
    return labels


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def creation_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """``ReplicaSetsByCreationTimestamp``/``ActivePods`` tie-break: creation time, then name."""
    return (str(meta(obj).get("creationTimestamp") or ""), name_of(obj))


def controller_of(obj: Mapping[str, Any]) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            r: Obj = ref
            return r
    return None


def controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """``metav1.NewControllerRef``: the owner blocks foreground deletion and is *the* controller."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deepcopy(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


# --- label selectors ---------------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """``metav1.LabelSelector`` semantics: None selects nothing, ``{}`` selects everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and (key not in labels or labels[key] not in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_is_empty(selector: Mapping[str, Any] | None) -> bool:
    return selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")


def map_selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A Service's ``spec.selector``: every pair must match; an empty one selects no pods for endpoints."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


# --- semantic equality -------------------------------------------------------------------------------


def prune_empty(value: Any) -> Any:
    """Drop ``None``, ``{}`` and ``[]`` members recursively (what ``omitempty`` would not have written)."""
    if isinstance(value, dict):
        out = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value


def semantic_equal(a: Any, b: Any) -> bool:
    return bool(prune_empty(a) == prune_empty(b))


# --- conditions --------------------------------------------------------------------------------------


def get_condition(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> Obj | None:
    for c in conditions or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


# --- quantities --------------------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def parse_quantity(value: str | int | float) -> Fraction:
    """``resource.Quantity`` as an exact number: ``500m`` -> 1/2, ``128Mi`` -> 134217728, ``1e3`` -> 1000."""
    if isinstance(value, int | float):
        return Fraction(value)
    text = value.strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return Fraction(text[: -len(suffix)]) * factor
    lower = text.lower()
    if "e" in lower and not text.endswith("E"):
        mantissa, _, exponent = lower.partition("e")
        return Fraction(mantissa) * Fraction(10) ** int(exponent)
    if text and text[-1] in _DECIMAL:
        return Fraction(text[:-1]) * _DECIMAL[text[-1]]
    return Fraction(text)


def go_round(x: float) -> int:
    """``integer.RoundToInt32``: halves away from zero, then truncation."""
    return int(x - 0.5) if x < 0 else int(x + 0.5)
