"""The fingerprint a verified release leaves on its ApplySet parent, so that a no-op can be seen cheaply.

Two hashes in one annotation (``campus-pipeline/fingerprint``) of the parent ConfigMap, written with a
field manager of its own so that the apply's writes of the parent never remove it:

- ``inputs``: everything the rendered objects are made from — the GitOps tree of the released commit,
  the image (reference and digest), the environment's and the image's settings, the Secret's spec (the
  names of its variables, never their values), the pipeline's own code and the kustomize binary. The
  same inputs render the same objects, so they need not be rendered again to know that.
- ``members``: what the cluster holds of the set — for every member, its identity and its
  ``managedFields`` except the status writers' entries (controllers report status all the time; any
  other write, a ``kubectl edit``, ``scale``, ``label`` or a deletion, changes it).

``objects`` (a hash of the rendered objects) is kept beside them for whoever reads the parent. Pure
functions over dicts; ``noop`` reads and writes the annotation through ``kube``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .applyset import key
from .base import Obj

ANNOTATION = "campus-pipeline/fingerprint"
FIELD_MANAGER = "campus-pipeline-fingerprint"
VERSION = 1
_PIPELINE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Fingerprint:
    inputs: str
    members: str
    objects: str = ""
    # The list paths that enumerate the set's members (one per recorded kind and namespace), so that the
    # check reads them without discovering the kinds again.
    lists: tuple[str, ...] = ()

    def encode(self) -> str:
        return json.dumps(
            {
                "v": VERSION, "inputs": self.inputs, "members": self.members, "objects": self.objects,
                "lists": list(self.lists),
            },
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def decode(cls, text: str | None) -> Fingerprint | None:
        try:
            data = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != VERSION:
            return None
        lists = data.get("lists") or []
        return cls(
            str(data.get("inputs", "")), str(data.get("members", "")), str(data.get("objects", "")),
            tuple(str(p) for p in lists if isinstance(p, str)),
        )  # fmt: skip


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_hash() -> str:
    """The pipeline's own sources: a changed renderer, validator or labeller may render differently."""
    h = hashlib.sha256()
    for path in sorted(_PIPELINE.rglob("*.py")):
        h.update(str(path.relative_to(_PIPELINE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _binary(command: Iterable[str]) -> list[Any]:
    first = next(iter(command), "")
    try:
        st = os.stat(first)
    except OSError:
        return [first]
    return [first, st.st_size, st.st_mtime_ns]


def inputs(
    tree: str,
    image_ref: str,
    digest: str,
    settings_parts: Iterable[object],
    kustomize: Iterable[str],
) -> str:
    """The hash of what renders the environment's objects (see the module docstring)."""
    return _digest(
        {
            "tree": tree,
            "image": image_ref,
            "digest": digest,
            "settings": [repr(p) for p in settings_parts],
            "code": code_hash(),
            "kustomize": _binary(kustomize),
        }
    )


def _ownership(obj: Obj) -> list[Any]:
    meta = obj.get("metadata") or {}
    fields: list[Any] = [
        [m.get("manager"), m.get("operation"), m.get("time"), m.get("fieldsV1")]
        for m in meta.get("managedFields") or []
        if m.get("subresource") != "status"
    ]
    # No managedFields (a server that keeps none): any write shows in the resourceVersion instead.
    return fields or [meta.get("resourceVersion")]


def members(live: Iterable[Obj]) -> str:
    """The hash of the set's live members: identities and their non-status field ownership."""
    unique = {key(o): o for o in live}
    return _digest(sorted([list(k), _ownership(o)] for k, o in unique.items()))


def objects(rendered: Iterable[Mapping[str, Any]]) -> str:
    return _digest(sorted(json.dumps(o, sort_keys=True) for o in rendered))


def read(parent: Obj | None) -> Fingerprint | None:
    annotations = ((parent or {}).get("metadata") or {}).get("annotations") or {}
    return Fingerprint.decode(annotations.get(ANNOTATION))


def annotated(parent: Obj, fingerprint: Fingerprint) -> Obj:
    """The partial parent that sets only the annotation (applied with :data:`FIELD_MANAGER`)."""
    meta = parent["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "annotations": {ANNOTATION: fingerprint.encode()},
        },
    }
