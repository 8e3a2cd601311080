"""ReplicaSets of a Deployment by template and revision: ``pod-template-hash`` and the revision annotations.

Mirrors ``controller.ComputeHash``, ``EqualIgnoreHash``, ``FindNewReplicaSet`` and
``SetNewReplicaSetAnnotations`` of kube-controller-manager. Uses ``specs.py`` and ``objects.py``;
``scaling.py`` and ``deployment.py`` (through ``rollout.py``) use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from .objects import Obj, creation_key, prune_empty, safe_encode, semantic_equal
from .specs import max_surge, spec_replicas

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations the controller owns on ReplicaSets, never copied from the Deployment.
_SKIP_COPY = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS}
# The controller's limit on the revision-history annotation (its --deployment-controller flag default).
MAX_REV_HISTORY_CHARS = 2000


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    """``controller.ComputeHash``: FNV-32a of the template (and the collision count), safely encoded.

    Go hashes a ``spew`` dump of the struct, which cannot be reproduced outside Go; canonical JSON of the
    semantically-pruned template keeps the properties that matter: deterministic, equal for equal templates,
    and different once ``status.collisionCount`` is bumped.
    """
    data = json.dumps(prune_empty(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode(str(_fnv32a(data)))


def _without_hash(template: Obj | None) -> Obj:
    t: Obj = json.loads(json.dumps(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """``EqualIgnoreHash``: templates equal once the pod-template-hash label is removed from both."""
    return semantic_equal(_without_hash(a), _without_hash(b))


def revision(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def find_new_rs(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """``FindNewReplicaSet``: the oldest ReplicaSet whose template equals the Deployment's."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rss, key=creation_key):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def _annotations(obj: Obj) -> dict[str, str]:
    md = obj.setdefault("metadata", {})
    if md.get("annotations") is None:
        md["annotations"] = {}
    ann: dict[str, str] = md["annotations"]
    return ann


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    ann = _annotations(rs)
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = (rs.get("metadata") or {}).get("annotations") or {}
    return bool(ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum))


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """``SetNewReplicaSetAnnotations``: copy the Deployment's annotations, move the revision forward.

    A ReplicaSet that already had a revision and gets a newer one is a rollback to it: its old revision
    joins ``deployment.kubernetes.io/revision-history``, as ``kubectl rollout history`` expects.
    """
    ann = _annotations(rs)
    changed = False
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in _SKIP_COPY or (key in ann and ann[key] == value):
            continue
        ann[key] = value
        changed = True
    had_revision = REVISION in ann
    old = revision(rs)
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if had_revision:
            history = ann.get(REVISION_HISTORY, "")
            if not history:
                ann[REVISION_HISTORY] = str(old)
            else:
                parts = history.split(",")
                total = len(history) + len(str(old)) + 1
                start = 0
                while total > MAX_REV_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], str(old)])
    if not exists:
        replicas = spec_replicas(d)
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)):
            changed = True
    return changed
