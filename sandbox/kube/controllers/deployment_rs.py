"""The ReplicaSet objects the Deployment controller writes, computed without the store: pure functions.

What ``syncDeployment``'s helpers build before they write: the new ReplicaSet of a pod template
(``<deployment>-<pod-template-hash>``, the hash label in its selector and template, its first size and
annotations), an existing one brought up to date (annotations, ``minReadySeconds``), a ReplicaSet adopted
or released by its Deployment, whether one found under the new name is this Deployment's own, and the
``Progressing`` condition written on the way. Used by ``deployment.py``; the arithmetic (sizes, hashes,
revisions, annotations, conditions) is ``rollout.py``'s.
"""

from __future__ import annotations

from datetime import datetime

from . import rollout as ru
from .objects import Obj, controller_of, controller_ref, deepcopy, meta, name_of, ns_of, uid_of


def new_replicaset(d: Obj, old: list[Obj], new_revision: int) -> Obj:
    """``getNewReplicaSet``'s object for the Deployment's current template (not yet created)."""
    spec_d = d.get("spec") or {}
    template = deepcopy(spec_d.get("template") or {})
    collision = (d.get("status") or {}).get("collisionCount")
    pod_hash = ru.pod_template_hash(spec_d.get("template") or {}, collision)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), ru.HASH_LABEL: pod_hash}
    selector = deepcopy(spec_d.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), ru.HASH_LABEL: pod_hash}
    spec: Obj = {"replicas": 0}
    if ru.min_ready_seconds(d):
        spec["minReadySeconds"] = ru.min_ready_seconds(d)
    spec["selector"] = selector
    spec["template"] = template
    new_rs: Obj = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name_of(d)}-{pod_hash}",
            "namespace": ns_of(d),
            "labels": dict(tmeta["labels"]),
            "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")],
        },
        "spec": spec,
    }
    spec["replicas"] = ru.new_rs_new_replicas(d, [*old, new_rs], new_rs)
    ru.set_new_rs_annotations(d, new_rs, new_revision, exists=False)
    return new_rs


def refresh_existing(d: Obj, rs: Obj, new_revision: int) -> bool:
    """Bring the existing new ReplicaSet ``rs`` (a copy) up to date in place; True when it must be written."""
    annotations_updated = ru.set_new_rs_annotations(d, rs, new_revision, exists=True)
    min_ready = ru.min_ready_seconds(d)
    if not annotations_updated and ru.min_ready_seconds(rs) == min_ready:
        return False
    rs_spec = rs.setdefault("spec", {})
    if min_ready:
        rs_spec["minReadySeconds"] = min_ready
    else:
        rs_spec.pop("minReadySeconds", None)
    return True


def is_own(d: Obj, found: Obj, template: Obj) -> bool:
    """Whether ``found``, met under the new ReplicaSet's name, is this Deployment's for ``template``
    (otherwise a different template hashed to the same name)."""
    ref = controller_of(found)
    return (
        ref is not None
        and ref.get("uid") == uid_of(d)
        and ru.equal_ignore_hash((found.get("spec") or {}).get("template"), template)
    )


def released(d: Obj, rs: Obj) -> Obj:
    """A copy of ``rs`` without the Deployment's ownerReference (its selector no longer matches)."""
    changed = deepcopy(rs)
    refs = [r for r in meta(changed).get("ownerReferences") or [] if r.get("uid") != uid_of(d)]
    changed["metadata"]["ownerReferences"] = refs
    return changed


def adopted(d: Obj, rs: Obj) -> Obj:
    """A copy of the orphan ``rs`` with the Deployment as its controller."""
    changed = deepcopy(rs)
    refs = [
        *(meta(changed).get("ownerReferences") or []),
        controller_ref(d, "apps/v1", "Deployment"),
    ]
    changed["metadata"]["ownerReferences"] = refs
    return changed


def replace_by_name(rss: list[Obj], rs: Obj) -> None:
    """Put ``rs`` in place of the ReplicaSet of the same name in ``rss`` (or append it)."""
    for i, existing in enumerate(rss):
        if name_of(existing) == name_of(rs):
            rss[i] = rs
            return
    rss.append(rs)


def with_progressing(d: Obj, value: str, reason: str, message: str, now: datetime) -> Obj:
    """The Deployment's status with its ``Progressing`` condition set."""
    status = deepcopy(d.get("status") or {})
    ru.set_condition(status, ru.new_condition(ru.PROGRESSING, value, reason, message, now))
    return status
