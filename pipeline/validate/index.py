"""The index of one target's rendered objects, which every lint rule looks things up in.

:class:`Index` holds each object as a :class:`Resource` (kind, group, namespace, name) and each pod template
a workload creates as a :class:`PodTemplate`, and answers the questions the rules in :mod:`.rules` ask:
"is there a ConfigMap of that name in this namespace?", "which pods does this selector select?", "which keys
does that Secret have?". The package's ``__init__`` builds one per target; :mod:`.schema` uses
:func:`resource_of` to name an object. Also here: the two helpers that read a field that may be missing or
malformed (the schema pass reports those; the rules must not crash on them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base import WORKLOAD_KINDS, Obj

# Kinds without a namespace: a reference to them ignores the referrer's namespace.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "StorageClass",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "CSIDriver",
        "RuntimeClass",
    }
)


def items(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list field that may be missing or malformed (the schema pass reports those)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Resource:
    """One rendered object, with the coordinates references resolve against."""

    kind: str
    group: str
    namespace: str  # "" for cluster-scoped kinds
    name: str
    body: Obj

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PodTemplate:
    """The pods a workload (or a bare Pod) creates: their labels and spec, and who owns them."""

    owner: Resource
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    # StatefulSet volumeClaimTemplates by name: mounts of these are persistent volumes too.
    claim_templates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    def containers(self, *, init: bool = False) -> list[Mapping[str, Any]]:
        found = list(items(self.spec.get("containers")))
        return [*found, *items(self.spec.get("initContainers"))] if init else found

    def volume(self, name: str) -> Mapping[str, Any] | None:
        for volume in items(self.spec.get("volumes")):
            if volume.get("name") == name:
                return volume
        return None


@dataclass(frozen=True)
class Index:
    """Everything one target rendered to, looked up the ways the rules need."""

    target: str
    resources: tuple[Resource, ...]
    templates: tuple[PodTemplate, ...]
    # True when the target builds on another kustomization (placeholders must be pinned by then).
    overlay: bool = False
    placeholder_images: frozenset[str] = frozenset()
    # Secret name -> the keys the pipeline puts in it (None: not declared).
    external_secrets: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    kustomize_warnings: tuple[str, ...] = ()
    by_key: Mapping[tuple[str, str, str], Resource] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        target: str,
        objects: Iterable[Obj],
        *,
        overlay: bool = False,
        placeholder_images: Collection[str] = (),
        external_secrets: Mapping[str, frozenset[str] | None] | None = None,
        kustomize_warnings: Sequence[str] = (),
    ) -> Index:
        resources = tuple(resource_of(obj) for obj in objects)
        templates = tuple(t for r in resources for t in pod_templates(r))
        by_key: dict[tuple[str, str, str], Resource] = {}
        for resource in resources:
            by_key.setdefault((resource.kind, resource.namespace, resource.name), resource)
        return cls(
            target=target,
            resources=resources,
            templates=templates,
            overlay=overlay,
            placeholder_images=frozenset(placeholder_images),
            external_secrets=dict(external_secrets or {}),
            kustomize_warnings=tuple(kustomize_warnings),
            by_key=by_key,
        )

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self.by_key.get((kind, "" if kind in CLUSTER_SCOPED_KINDS else namespace, name))

    def of_kind(self, *kinds: str) -> Iterator[Resource]:
        return (r for r in self.resources if r.kind in kinds)

    def selected(
        self, namespace: str, selector: Mapping[str, Any], *, label_selector: bool
    ) -> list[PodTemplate]:
        """Pod templates in ``namespace`` that ``selector`` selects (a Service's map or a LabelSelector)."""
        match = label_selector_matches if label_selector else _map_selector_matches
        return [t for t in self.templates if t.namespace == namespace and match(selector, t.labels)]

    def secret_known(self, namespace: str, name: str) -> bool:
        return name in self.external_secrets or self.get("Secret", namespace, name) is not None

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The keys a Secret is known to have, or None when we cannot know (external, undeclared)."""
        secret = self.get("Secret", namespace, name)
        if secret is not None:
            return frozenset(mapping(secret.body.get("data"))) | frozenset(
                mapping(secret.body.get("stringData"))
            )
        return self.external_secrets.get(name)


def resource_of(obj: Obj) -> Resource:
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    metadata = mapping(obj.get("metadata"))
    # An object that names no namespace lands in the apply context's, "default" unless told otherwise.
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(metadata.get("namespace") or "default")
    return Resource(
        kind=kind,
        group=api_version.rpartition("/")[0],
        namespace=namespace,
        name=str(metadata.get("name", "")),
        body=obj,
    )


def pod_templates(resource: Resource) -> list[PodTemplate]:
    spec = mapping(resource.body.get("spec"))
    if resource.kind == "Pod":
        labels = mapping(mapping(resource.body.get("metadata")).get("labels"))
        return [PodTemplate(resource, labels, spec)]
    if resource.kind == "CronJob":
        spec = mapping(mapping(spec.get("jobTemplate")).get("spec"))
    elif resource.kind not in WORKLOAD_KINDS and resource.kind != "Job":
        return []
    template = mapping(spec.get("template"))
    labels = mapping(mapping(template.get("metadata")).get("labels"))
    claims = {
        str(mapping(c.get("metadata")).get("name")): mapping(c.get("spec"))
        for c in items(spec.get("volumeClaimTemplates"))
    }
    return [PodTemplate(resource, labels, mapping(template.get("spec")), claims)]


def _map_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; empty selects everything."""
    if not all(labels.get(k) == v for k, v in mapping(selector.get("matchLabels")).items()):
        return False
    for expr in items(selector.get("matchExpressions")):
        key, op, values = str(expr.get("key")), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def selector_text(selector: Mapping[str, Any]) -> str:
    """A selector as a message shows it: ``app=web`` (``+matchExpressions`` when it has any)."""
    pairs = mapping(selector.get("matchLabels")) if "matchLabels" in selector else selector
    text = ",".join(f"{k}={v}" for k, v in pairs.items())
    if items(selector.get("matchExpressions")):
        text += (",") if text else ""
        text += "+matchExpressions"
    return text or "{}"
