"""The metadata the server maintains, computed without touching the store: pure functions over dicts.

What kube-apiserver's generic registry sets on create (name from ``generateName``, namespace, ``uid``,
``creationTimestamp``, ``generation``), carries over on update (server-only fields, the ``status`` of a
kind with a status subresource, ``generation`` bumped on changes outside metadata and status) and
compares to detect a no-op write. Used by the store proper (``core.py``) and its deletion semantics
(``deletion.py``); uses ``discovery.py`` for what a kind has.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import uuid
from typing import Any

from ..discovery import GVR, ResourceInfo
from .errors import BadRequest, invalid

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Set only by the server: a client's value is replaced by the stored one on every update.
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_suffix(length: int = 5) -> str:
    """The random suffix of ``generateName`` (kube-apiserver's alphabet, without vowels)."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj["metadata"]``, created empty when missing or not an object."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def new_object(gvr: GVR, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` ready to be created: apiVersion, kind, name (from generateName) and namespace.

    Raises Invalid when it has neither name nor generateName.
    """
    obj = copy.deepcopy(obj)
    meta = meta_of(obj)
    obj.setdefault("apiVersion", info.api_version)
    obj.setdefault("kind", info.kind)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = str(meta["generateName"]) + generate_suffix()
    if not meta.get("name"):
        raise invalid(
            gvr,
            "",
            [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
        )
    if info.namespaced:
        meta["namespace"] = meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    return obj


def set_creation_fields(info: ResourceInfo, meta: dict[str, Any], now: str) -> None:
    """What the server sets on create: a fresh uid and creationTimestamp, generation 1, no deletion."""
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now
    meta.pop("deletionTimestamp", None)
    meta.pop("deletionGracePeriodSeconds", None)
    if info.has_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def with_status_rule(
    info: ResourceInfo, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The object an update writes: only ``new``'s status on the status subresource (the rest is
    ``old``), and ``old``'s status kept on a main-resource write of a kind with a status subresource."""
    if subresource == "status":
        status = new.get("status")
        new = copy.deepcopy(old)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
    elif subresource is None:
        if "status" in info.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
    else:
        raise BadRequest(f"unsupported subresource {subresource!r}")
    return new


def carry_over(info: ResourceInfo, old: dict[str, Any], new: dict[str, Any], namespace: str) -> None:
    """Give ``new`` what the server keeps across an update: apiVersion and kind when omitted, the
    server-only metadata, the namespace of the URL, and the generation (bumped on a spec change)."""
    meta = new["metadata"]
    old_meta = old["metadata"]
    new.setdefault("apiVersion", old.get("apiVersion", info.api_version))
    new.setdefault("kind", old.get("kind", info.kind))
    for k in _SERVER_FIELDS:
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    if namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if info.has_generation:
        generation = int(old_meta.get("generation", 1))
        if _generation_relevant(new) != _generation_relevant(old):
            generation += 1
        meta["generation"] = generation


def _generation_relevant(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def without_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """The object compared for no-op detection: resourceVersion and managedFields' times aside."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    fields = meta.get("managedFields")
    if fields:
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in fields]
    out["metadata"] = meta
    return out


def marked_for_deletion(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with the ``deletionTimestamp`` that makes it wait for its finalizers."""
    marked = copy.deepcopy(obj)
    marked["metadata"]["deletionTimestamp"] = now_rfc3339()
    marked["metadata"]["deletionGracePeriodSeconds"] = 0
    return marked
