"""The ApplySet that marks what this pipeline applied, so prune finds only our objects (kubectl's KEP-3659).

Every applied object carries the labels ``app.kubernetes.io/managed-by: campus-pipeline``,
``campus-pipeline/env: <inventory>`` and ``applyset.kubernetes.io/part-of: <id>``; a parent ConfigMap
(``campus-pipeline-<inventory>``) records which kinds and namespaces the set spans, so that a kind that
left the overlay entirely is still looked at. Also here: the order objects are applied in. Pure functions
over dicts, plus :meth:`ApplySet.members`, which lists the live members through ``pipeline.kube``.
``apply.py`` (the stage) and ``compare.py`` use it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Obj
from .errors import UnknownKind

if TYPE_CHECKING:
    from .kube import Kube

FIELD_MANAGER = "campus-pipeline"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ENV_LABEL = "campus-pipeline/env"
# ApplySet (KEP-3659) keys: kubectl's own `apply --prune --applyset` understands them and refuses to touch
# a set whose tooling annotation names another tool, which protects ours from it.
APPLYSET_PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"
APPLYSET_TOOLING = "applyset.kubernetes.io/tooling"
APPLYSET_KINDS = "applyset.kubernetes.io/contains-group-kinds"
APPLYSET_NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "campus-pipeline/v1"
# Never deleted by prune: they hold data (claims, volumes), everything in them (namespaces) or define how
# disks are made (storage classes).
NEVER_PRUNE = frozenset({"PersistentVolumeClaim", "PersistentVolume", "Namespace", "StorageClass"})

# Apply order: what others depend on first. Unknown kinds (custom resources such as GKE's
# ManagedCertificate) go after workloads and before the Ingress, which may name them in annotations.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "Secret",
    "ConfigMap",
    "Service",
    "PodDisruptionBudget",
    "DaemonSet",
    "StatefulSet",
    "Deployment",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "HorizontalPodAutoscaler",
    "",  # unknown kinds
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "IngressClass",
    "Ingress",
)
_UNKNOWN_RANK = KIND_ORDER.index("")


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER and kind else _UNKNOWN_RANK


def order(objects: Iterable[Obj]) -> list[Obj]:
    """Objects in apply order; objects of one kind keep the overlay's order."""
    return sorted(objects, key=lambda o: kind_rank(str(o.get("kind", ""))))


def group_kind(obj: Mapping[str, Any]) -> str:
    """``Kind.group`` as ApplySet writes it (``Kind`` alone for the core group)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{obj.get('kind')}.{group}" if group else str(obj.get("kind"))


def applyset_id(name: str, namespace: str) -> str:
    """The ApplySet id of a parent ConfigMap, as KEP-3659 defines it (so kubectl would agree)."""
    digest = hashlib.sha256(f"{name}.{namespace}.ConfigMap.".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def inventory_namespace(objects: Iterable[Mapping[str, Any]]) -> str:
    """The namespace most namespaced objects are in: where the parent (and by default the Secret) live."""
    counts = Counter(
        str((o.get("metadata") or {}).get("namespace"))
        for o in objects
        if (o.get("metadata") or {}).get("namespace")
    )
    return counts.most_common(1)[0][0] if counts else "default"


def labelled(obj: Obj, inventory: str, set_id: str) -> Obj:
    """A copy of ``obj`` carrying the labels that mark it as ours and as a member of the set."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels.update({MANAGED_BY_LABEL: FIELD_MANAGER, ENV_LABEL: inventory, APPLYSET_PART_OF: set_id})
    meta["labels"] = labels
    return out


def key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """Identity of an object within a set: group/kind, namespace, name (API version does not matter)."""
    meta = obj.get("metadata") or {}
    return (group_kind(obj), str(meta.get("namespace") or ""), str(meta.get("name", "")))


@dataclass(frozen=True)
class ApplySet:
    """One environment's set: its inventory name, the parent ConfigMap's namespace and name, its id."""

    inventory: str
    namespace: str

    @property
    def parent_name(self) -> str:
        return f"{FIELD_MANAGER}-{self.inventory}"

    @property
    def id(self) -> str:
        return applyset_id(self.parent_name, self.namespace)

    @property
    def selector(self) -> str:
        return f"{APPLYSET_PART_OF}={self.id},{MANAGED_BY_LABEL}={FIELD_MANAGER}"

    def parent(self, kinds: Iterable[str], namespaces: Iterable[str]) -> Obj:
        """The parent ConfigMap recording ``kinds`` (Kind.group) and the namespaces beyond its own."""
        extra = sorted({n for n in namespaces if n and n != self.namespace})
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.parent_name,
                "namespace": self.namespace,
                "labels": {APPLYSET_ID: self.id, MANAGED_BY_LABEL: FIELD_MANAGER, ENV_LABEL: self.inventory},
                "annotations": {
                    APPLYSET_TOOLING: TOOLING,
                    APPLYSET_KINDS: ",".join(sorted(set(kinds))),
                    APPLYSET_NAMESPACES: ",".join(extra),
                },
            },
            "data": {
                "note": "Inventory of the objects campus-pipeline applies to this cluster; used by prune."
            },
        }

    def members(self, kube: Kube, kinds: Iterable[str], namespaces: Iterable[str]) -> list[Obj]:
        """Live objects labelled as members of this set, for the recorded kinds; in reverse apply order."""
        found: dict[tuple[str, str, str], Obj] = {}
        for gk in sorted(set(kinds)):
            kind, _, group = gk.partition(".")
            try:
                resource = kube.resource_in_group(group, kind)
            except UnknownKind:
                continue  # its CRD is gone, and with it every object of the kind
            scopes: Iterable[str | None] = (
                sorted(n for n in namespaces if n) if resource.namespaced else [None]
            )
            for ns in scopes:
                items, _ = kube.list_resource(resource, ns, label_selector=self.selector)
                for item in items:
                    found.setdefault(key(item), item)
        return sorted(found.values(), key=lambda o: -kind_rank(str(o.get("kind"))))


def recorded(parent: Obj | None) -> tuple[set[str], set[str]]:
    """The kinds and namespaces a live parent ConfigMap records (empty sets when there is none)."""
    if not parent:
        return set(), set()
    annotations = (parent.get("metadata") or {}).get("annotations") or {}
    kinds = {k for k in str(annotations.get(APPLYSET_KINDS, "")).split(",") if k}
    namespaces = {n for n in str(annotations.get(APPLYSET_NAMESPACES, "")).split(",") if n}
    namespaces.add(str((parent.get("metadata") or {}).get("namespace", "")))
    return kinds, namespaces


def namespaces_of(objects: Iterable[Obj]) -> set[str]:
    return {
        str((o.get("metadata") or {}).get("namespace"))
        for o in objects
        if (o.get("metadata") or {}).get("namespace")
    }
