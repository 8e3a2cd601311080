"""Validate stage: check what an overlay renders to before anything is committed or applied.

``invoke validate`` calls :func:`validate` with one or more kustomize directories (by default every
environment's overlay); ``release`` is meant to do the same before it bumps an overlay. Each target is
rendered by :mod:`pipeline.render`, then checked in two passes:

1. **Schema**, offline and strict: every object against the Kubernetes OpenAPI schemas bundled by the
   ``kubernetes-validate`` package (unknown fields and wrong types are errors). Kinds it has no schema for
   (CRDs such as GKE's ``ManagedCertificate``) are a ``no-schema`` warning: not checked, not wrong.
2. **Lint**: what a schema cannot see because it needs more than one object (a Service's selector and the
   pods it selects, an Ingress and the Service it names) or knowledge of the images we run (where the
   official postgres image keeps its data). The pass builds one :class:`Index` of the rendered objects;
   each rule is a small function over it, and :data:`RULES` lists them all.

Findings are data (:class:`Finding`, :class:`ValidationReport`); this module logs nothing and prints
nothing, ``tasks.py`` does. Its neighbours: ``render`` (kustomize, upstream), ``overlays`` (edits the
kustomizations we check) and ``release`` (which should stop while the report has errors).

Secrets created at deploy time from the environment are not in the rendered set, so a reference to them
would look dangling. They are declared *external* in one of two ways: the ``external_secrets`` argument
(for callers that keep the list in configuration, e.g. a future ``pipeline.toml`` key), or -- with no
annotation on any object -- a file named ``external-secrets.txt`` next to any kustomization the target
builds on. It lists one Secret per line, optionally followed by a colon and the keys the pipeline puts
in it (then ``secretKeyRef`` keys are checked too); ``#`` starts a comment::

    # Created by the pipeline from the environment at deploy time (never in git).
    backend-core-secrets: POSTGRES_PASSWORD ADMIN_PASS
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .render import Rendered, kustomization_dirs, kustomize_build

Severity = Literal["error", "warning"]

# GKE's regular release channel; `kubernetes-validate` bundles schemas for 1.25 and later.
DEFAULT_KUBERNETES_VERSION = "1.31"
# The annotation-free way to declare Secrets that the pipeline creates at deploy time (see above).
EXTERNAL_SECRETS_FILE = "external-secrets.txt"
# StorageClasses every GKE cluster has, so a claim may name them without defining them.
GKE_STORAGE_CLASSES = frozenset({"standard", "standard-rwo", "premium-rwo"})
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
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"})
# Images whose data must outlive the pod; a Delete reclaim policy under them loses that data.
DATABASE_IMAGES = ("postgres", "mysql", "mariadb", "mongo")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Words that make an environment or config key a credential. "FILE"/"PATH"/"NAME" keys point at one.
_CREDENTIAL_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
)
_CREDENTIAL_SUFFIXES = ("PASSWORD", "SECRET", "TOKEN", "APIKEY")
_POINTER_WORDS = frozenset({"FILE", "PATH", "NAME", "REF", "DIR"})


@dataclass(frozen=True)
class Finding:
    """One problem in one rendered object: ``obj`` is "Kind/name", ``rule`` a short kebab-case id."""

    target: str
    obj: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.target}: {self.obj}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    findings: tuple[Finding, ...]
    objects_checked: int

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


# --- The index the lint rules share ----------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One rendered object, with the coordinates references resolve against."""

    kind: str
    group: str
    namespace: str  # "" for cluster-scoped kinds
    name: str
    body: Mapping[str, Any]

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
        found = list(_items(self.spec.get("containers")))
        return [*found, *_items(self.spec.get("initContainers"))] if init else found

    def volume(self, name: str) -> Mapping[str, Any] | None:
        for volume in _items(self.spec.get("volumes")):
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
        objects: Iterable[Mapping[str, Any]],
        *,
        overlay: bool = False,
        placeholder_images: Collection[str] = (),
        external_secrets: Mapping[str, frozenset[str] | None] | None = None,
        kustomize_warnings: Sequence[str] = (),
    ) -> Index:
        resources = tuple(_resource(obj) for obj in objects)
        templates = tuple(t for r in resources for t in _pod_templates(r))
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
        match = _label_selector_matches if label_selector else _map_selector_matches
        return [t for t in self.templates if t.namespace == namespace and match(selector, t.labels)]

    def secret_known(self, namespace: str, name: str) -> bool:
        return name in self.external_secrets or self.get("Secret", namespace, name) is not None

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The keys a Secret is known to have, or None when we cannot know (external, undeclared)."""
        secret = self.get("Secret", namespace, name)
        if secret is not None:
            return frozenset(_mapping(secret.body.get("data"))) | frozenset(
                _mapping(secret.body.get("stringData"))
            )
        return self.external_secrets.get(name)


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list field that may be missing or malformed (the schema pass reports those)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _resource(obj: Mapping[str, Any]) -> Resource:
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    metadata = _mapping(obj.get("metadata"))
    # An object that names no namespace lands in the apply context's, "default" unless told otherwise.
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(metadata.get("namespace") or "default")
    return Resource(
        kind=kind,
        group=api_version.rpartition("/")[0],
        namespace=namespace,
        name=str(metadata.get("name", "")),
        body=obj,
    )


def _pod_templates(resource: Resource) -> list[PodTemplate]:
    spec = _mapping(resource.body.get("spec"))
    if resource.kind == "Pod":
        labels = _mapping(_mapping(resource.body.get("metadata")).get("labels"))
        return [PodTemplate(resource, labels, spec)]
    if resource.kind == "CronJob":
        spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
    elif resource.kind not in WORKLOAD_KINDS and resource.kind != "Job":
        return []
    template = _mapping(spec.get("template"))
    labels = _mapping(_mapping(template.get("metadata")).get("labels"))
    claims = {
        str(_mapping(c.get("metadata")).get("name")): _mapping(c.get("spec"))
        for c in _items(spec.get("volumeClaimTemplates"))
    }
    return [PodTemplate(resource, labels, _mapping(template.get("spec")), claims)]


def _map_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; empty selects everything."""
    if not all(labels.get(k) == v for k, v in _mapping(selector.get("matchLabels")).items()):
        return False
    for expr in _items(selector.get("matchExpressions")):
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


def _selector_text(selector: Mapping[str, Any]) -> str:
    pairs = _mapping(selector.get("matchLabels")) if "matchLabels" in selector else selector
    text = ",".join(f"{k}={v}" for k, v in pairs.items())
    if _items(selector.get("matchExpressions")):
        text += (",") if text else ""
        text += "+matchExpressions"
    return text or "{}"


def _image_parts(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def _env_values(index: Index, template: PodTemplate, container: Mapping[str, Any]) -> dict[str, str | None]:
    """A container's environment as far as the manifests tell (None: comes from a Secret or the API)."""
    env: dict[str, str | None] = {}
    for source in _items(container.get("envFrom")):
        prefix = str(source.get("prefix", ""))
        cm_ref = _mapping(source.get("configMapRef"))
        cm = index.get("ConfigMap", template.namespace, str(cm_ref.get("name", ""))) if cm_ref else None
        if cm is not None:
            env.update({prefix + k: str(v) for k, v in _mapping(cm.body.get("data")).items()})
    for var in _items(container.get("env")):
        name = str(var.get("name", ""))
        if "value" in var:
            env[name] = str(var["value"])
            continue
        key_ref = _mapping(_mapping(var.get("valueFrom")).get("configMapKeyRef"))
        cm = index.get("ConfigMap", template.namespace, str(key_ref.get("name", ""))) if key_ref else None
        data = _mapping(cm.body.get("data")) if cm is not None else {}
        env[name] = str(data[key_ref["key"]]) if key_ref.get("key") in data else None
    return env


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def _looks_like_credential(key: str) -> bool:
    words = _words(key)
    if not words or words[-1] in _POINTER_WORDS:
        return False
    return any(w in _CREDENTIAL_WORDS or w.endswith(_CREDENTIAL_SUFFIXES) for w in words)


def _is_database(image: str) -> bool:
    repository = _image_parts(image)[0].rsplit("/", 1)[-1]
    return any(db in repository for db in DATABASE_IMAGES)


def _is_official_postgres(image: str) -> bool:
    """The official image's layout (docker.io/library/postgres and its mirrors or rebuilds)."""
    repository = _image_parts(image)[0]
    return "postgres" in repository.rsplit("/", 1)[-1] and "bitnami" not in repository


def _postgres_major(image: str) -> int | None:
    tag = _image_parts(image)[1] or ""
    match = re.match(r"\d+", tag)
    return int(match.group()) if match else None


# --- Lint rules ---------------------------------------------------------------------------------------
# Each rule takes the Index and yields Issues; the registry (RULES, at the end) gives each its id.


@dataclass(frozen=True)
class Issue:
    obj: str
    message: str
    severity: Severity = "error"


Rule = Callable[[Index], Iterable[Issue]]


def duplicate_objects(index: Index) -> Iterator[Issue]:
    """The same object twice (e.g. under two apiVersions): the cluster keeps whichever is applied last."""
    counts = Counter(
        (r.group.split(".")[0] if r.group else "", r.kind, r.namespace, r.name) for r in index.resources
    )
    for (_, kind, namespace, name), count in counts.items():
        if count > 1:
            where = f" in namespace {namespace}" if namespace else ""
            yield Issue(
                f"{kind}/{name}",
                f"{kind}/{name}{where} is rendered {count} times (different apiVersions of one object); "
                "the cluster keeps only the last one applied. Keep one and delete the others",
            )


def invalid_names(index: Index) -> Iterator[Issue]:
    """Names and labels the API server would reject; cheaper to learn here than at apply time."""
    for r in index.resources:
        if r.kind in ("Service", "Namespace"):
            pattern, what = (
                (_DNS_1035, "a DNS-1035 label") if r.kind == "Service" else (_DNS_LABEL, "a DNS label")
            )
            limit = 63
        else:
            pattern, what, limit = _DNS_SUBDOMAIN, "a DNS subdomain", 253
        if not pattern.match(r.name) or len(r.name) > limit:
            yield Issue(
                r.ref,
                f"{r.ref}: metadata.name {r.name!r} is not {what} (lowercase letters, digits and '-', "
                f"at most {limit} characters); the API server rejects it. Rename it",
            )
        labels = dict(_mapping(_mapping(r.body.get("metadata")).get("labels")))
        for template in _pod_templates(r):
            labels.update(template.labels)
        for key, value in labels.items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                yield Issue(
                    r.ref,
                    f"{r.ref}: label {key}={value!r} is not a valid label value (at most 63 letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit). Change the value",
                )


def nodeports_out_of_range(index: Index) -> Iterator[Issue]:
    """GKE (like any default cluster) allocates nodePorts from 30000-32767 only."""
    for svc in index.of_kind("Service"):
        for port in _items(_mapping(svc.body.get("spec")).get("ports")):
            node_port = port.get("nodePort")
            if isinstance(node_port, int) and not 30000 <= node_port <= 32767:
                yield Issue(
                    svc.ref,
                    f"{svc.ref}: nodePort {node_port} is outside the cluster's range 30000-32767; the API "
                    "server rejects it. Pick a port in that range or leave nodePort out to get one assigned",
                )


def port_conflicts(index: Index) -> Iterator[Issue]:
    """Ports the API server refuses or that silently shadow each other."""
    node_ports: dict[int, list[str]] = defaultdict(list)
    for svc in index.of_kind("Service"):
        ports = _items(_mapping(svc.body.get("spec")).get("ports"))
        names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
            yield Issue(
                svc.ref,
                f"{svc.ref}: a Service with several ports needs a unique name on each (spec.ports[].name); "
                "the API server rejects it. Name every port",
            )
        for port in ports:
            if isinstance(port.get("nodePort"), int):
                node_ports[port["nodePort"]].append(svc.ref)
    for node_port, owners in node_ports.items():
        for owner in owners[1:]:
            yield Issue(
                owner,
                f"{owner}: nodePort {node_port} is already taken by {owners[0]}; the second Service applied "
                "is refused ('provided port is already allocated'). Give each Service its own nodePort",
            )
    for template in index.templates:
        for container in template.containers():
            port_names = [str(p["name"]) for p in _items(container.get("ports")) if p.get("name")]
            for name in sorted({n for n in port_names if port_names.count(n) > 1}):
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} names two ports {name!r}; "
                    "a Service's named targetPort cannot tell them apart. Rename one",
                )


def container_port_mismatch(index: Index) -> Iterator[Issue]:
    """A Service whose targetPort no selected container declares sends traffic nowhere."""
    for svc in index.of_kind("Service"):
        spec = _mapping(svc.body.get("spec"))
        selector = _mapping(spec.get("selector"))
        if not selector or spec.get("type") == "ExternalName":
            continue
        templates = index.selected(svc.namespace, selector, label_selector=False)
        for port in _items(spec.get("ports")):
            target = port.get("targetPort", port.get("port"))
            named = isinstance(target, str) and not target.isdigit()
            protocol = port.get("protocol", "TCP")
            for template in templates:
                declared = [
                    (cp.get("containerPort"), cp.get("name"), c.get("name"))
                    for c in template.containers()
                    for cp in _items(c.get("ports"))
                    if cp.get("protocol", "TCP") == protocol
                ]
                if named:
                    if any(name == target for _, name, _ in declared):
                        continue
                    names = sorted({str(n) for _, n, _ in declared if n}) or ["none"]
                    yield Issue(
                        svc.ref,
                        f"{svc.ref}: port {port.get('port')} targets the named port {target!r}, but "
                        f"{template.owner.ref} names its container ports {', '.join(names)}; the Service "
                        f"gets no endpoints. Name the container's port {target!r} or fix targetPort",
                    )
                    continue
                if not declared:
                    continue  # Declaring container ports is optional; with none declared we cannot judge.
                if any(number == int(target) for number, _, _ in declared):
                    continue
                numbers = ", ".join(f"{n} ({c})" for n, _, c in declared)
                yield Issue(
                    svc.ref,
                    f"{svc.ref}: port {port.get('port')} sends to targetPort {target}, but "
                    f"{template.owner.ref} declares containerPort {numbers}; one of them is wrong. Make "
                    "the container's containerPort the port the server listens on and point targetPort at "
                    "it (by name, e.g. targetPort: http, so they cannot drift apart)",
                )


def selectors_matching_nothing(index: Index) -> Iterator[Issue]:
    """Selectors that select no pod template of the rendered set, and workloads that disown their pods."""
    for owner in index.resources:
        if owner.kind in WORKLOAD_KINDS or owner.kind == "Job":
            selector = _mapping(_mapping(owner.body.get("spec")).get("selector"))
            for template in _pod_templates(owner):
                if selector and not _label_selector_matches(selector, template.labels):
                    labels = ",".join(f"{k}={v}" for k, v in template.labels.items()) or "none"
                    yield Issue(
                        owner.ref,
                        f"{owner.ref}: spec.selector {_selector_text(selector)} does not match the pod "
                        f"template's labels ({labels}); the API server rejects it. Make "
                        "spec.template.metadata.labels include every label of spec.selector.matchLabels",
                    )
    for svc in index.of_kind("Service"):
        spec = _mapping(svc.body.get("spec"))
        selector = _mapping(spec.get("selector"))
        if selector and not index.selected(svc.namespace, selector, label_selector=False):
            yield Issue(
                svc.ref,
                f"{svc.ref}: spec.selector {_selector_text(selector)} selects no pod template in the "
                "rendered manifests, so the Service has no endpoints. Match the labels of the workload's "
                "spec.template.metadata.labels",
            )
    for pdb in index.of_kind("PodDisruptionBudget"):
        selector = _mapping(_mapping(pdb.body.get("spec")).get("selector"))
        if not index.selected(pdb.namespace, selector, label_selector=True):
            yield Issue(
                pdb.ref,
                f"{pdb.ref}: spec.selector {_selector_text(selector)} selects no pod template, so the budget "
                "protects nothing during node upgrades. Match the workload's pod labels",
            )


_EXTERNAL_HINT = f"or -- if the pipeline creates it at deploy time -- list it in {EXTERNAL_SECRETS_FILE}"


def _missing(ref: str, kind: str, name: str, where: str) -> Issue:
    fix = f"Add it, fix the name, {_EXTERNAL_HINT}" if kind == "Secret" else "Add it or fix the name"
    return Issue(
        ref,
        f"{ref}: {where} names {kind} {name!r}, which is not in the rendered manifests; the pod will not "
        f"start. {fix}",
    )


def dangling_references(index: Index) -> Iterator[Issue]:
    """Names of objects that are not in the rendered set (and not declared external)."""
    for template in index.templates:
        ns, ref = template.namespace, template.owner.ref
        for container in template.containers(init=True):
            cname = container.get("name")
            for source in _items(container.get("envFrom")):
                cm_ref, secret_ref = _mapping(source.get("configMapRef")), _mapping(source.get("secretRef"))
                if (
                    cm_ref
                    and not cm_ref.get("optional")
                    and not index.get("ConfigMap", ns, cm_ref.get("name", ""))
                ):
                    yield _missing(
                        ref, "ConfigMap", str(cm_ref.get("name")), f"container {cname} envFrom.configMapRef"
                    )
                if (
                    secret_ref
                    and not secret_ref.get("optional")
                    and not index.secret_known(ns, secret_ref["name"])
                ):
                    yield _missing(
                        ref, "Secret", str(secret_ref.get("name")), f"container {cname} envFrom.secretRef"
                    )
            for var in _items(container.get("env")):
                value_from = _mapping(var.get("valueFrom"))
                cm_key = _mapping(value_from.get("configMapKeyRef"))
                if cm_key and not cm_key.get("optional"):
                    where = f"container {cname} env {var.get('name')} configMapKeyRef"
                    cm = index.get("ConfigMap", ns, str(cm_key.get("name", "")))
                    if cm is None:
                        yield _missing(ref, "ConfigMap", str(cm_key.get("name")), where)
                    elif cm_key.get("key") not in _mapping(cm.body.get("data")) and cm_key.get(
                        "key"
                    ) not in _mapping(cm.body.get("binaryData")):
                        yield Issue(
                            ref,
                            f"{ref}: {where} asks for key {cm_key.get('key')!r}, which {cm.ref} does not "
                            "have; the pod will not start. Add the key to the ConfigMap or fix the key",
                        )
                secret_key = _mapping(value_from.get("secretKeyRef"))
                if secret_key and not secret_key.get("optional"):
                    where = f"container {cname} env {var.get('name')} secretKeyRef"
                    name = str(secret_key.get("name", ""))
                    keys = index.secret_keys(ns, name)
                    if not index.secret_known(ns, name):
                        yield _missing(ref, "Secret", name, where)
                    elif keys is not None and secret_key.get("key") not in keys:
                        yield Issue(
                            ref,
                            f"{ref}: {where} asks for key {secret_key.get('key')!r}, which Secret {name!r} "
                            f"does not have (it has {', '.join(sorted(keys)) or 'no keys'}). Fix the key or "
                            "add it to the Secret",
                        )
        for volume in _items(template.spec.get("volumes")):
            vname = volume.get("name")
            sources = [volume, *_items(_mapping(volume.get("projected")).get("sources"))]
            for source in sources:
                cm_source = _mapping(source.get("configMap"))
                cm_name = str(cm_source.get("name", ""))
                if cm_source and not cm_source.get("optional") and not index.get("ConfigMap", ns, cm_name):
                    yield _missing(ref, "ConfigMap", cm_name, f"volume {vname}")
                secret = _mapping(source.get("secret"))
                secret_name = str(secret.get("secretName", secret.get("name", "")))
                if secret and not secret.get("optional") and not index.secret_known(ns, secret_name):
                    yield _missing(ref, "Secret", secret_name, f"volume {vname}")
            claim = _mapping(volume.get("persistentVolumeClaim")).get("claimName")
            if claim and not index.get("PersistentVolumeClaim", ns, str(claim)):
                yield Issue(
                    ref,
                    f"{ref}: volume {vname} names PersistentVolumeClaim {claim!r}, which is not in the "
                    "rendered manifests; the pod stays Pending. Add the claim or fix claimName",
                )
        for pull_secret in _items(template.spec.get("imagePullSecrets")):
            if not index.secret_known(ns, str(pull_secret.get("name", ""))):
                yield _missing(ref, "Secret", str(pull_secret.get("name")), "imagePullSecrets")
        account = template.spec.get("serviceAccountName")
        if account and account != "default" and not index.get("ServiceAccount", ns, str(account)):
            yield Issue(
                ref,
                f"{ref}: serviceAccountName {account!r} is not in the rendered manifests; the pods are "
                "refused. Add the ServiceAccount or drop the field",
            )
    yield from _dangling_ingress(index)
    for claim in index.of_kind("PersistentVolumeClaim"):
        sc = _mapping(claim.body.get("spec")).get("storageClassName")
        if sc and sc not in GKE_STORAGE_CLASSES and not index.get("StorageClass", "", str(sc)):
            yield Issue(
                claim.ref,
                f"{claim.ref}: storageClassName {sc!r} is neither in the rendered manifests nor one of GKE's "
                f"built-in classes ({', '.join(sorted(GKE_STORAGE_CLASSES))}); the claim stays Pending. "
                "Add the StorageClass or use a built-in one",
            )
    for hpa in index.of_kind("HorizontalPodAutoscaler"):
        target = _mapping(_mapping(hpa.body.get("spec")).get("scaleTargetRef"))
        if target and not index.get(str(target.get("kind")), hpa.namespace, str(target.get("name"))):
            yield Issue(
                hpa.ref,
                f"{hpa.ref}: scaleTargetRef names {target.get('kind')}/{target.get('name')}, which is not in "
                "the rendered manifests. Fix the name",
            )


def _ingress_backends(ingress: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = _mapping(ingress.body.get("spec"))
    default = _mapping(_mapping(spec.get("defaultBackend")).get("service"))
    if default:
        yield "spec.defaultBackend", default
    for i, rule in enumerate(_items(spec.get("rules"))):
        for j, path in enumerate(_items(_mapping(rule.get("http")).get("paths"))):
            service = _mapping(_mapping(path.get("backend")).get("service"))
            if service:
                yield f"spec.rules[{i}].http.paths[{j}]", service


def _dangling_ingress(index: Index) -> Iterator[Issue]:
    for ingress in index.of_kind("Ingress"):
        ns, ref = ingress.namespace, ingress.ref
        for where, backend in _ingress_backends(ingress):
            name = str(backend.get("name", ""))
            svc = index.get("Service", ns, name)
            if svc is None:
                services = sorted(s.name for s in index.of_kind("Service") if s.namespace == ns) or ["none"]
                yield Issue(
                    ref,
                    f"{ref}: {where} sends traffic to Service {name!r}, which does not exist (Services here: "
                    f"{', '.join(services)}); the load balancer answers 404/502. Name an existing Service",
                )
                continue
            port = _mapping(backend.get("port"))
            ports = _items(_mapping(svc.body.get("spec")).get("ports"))
            if "number" in port and port["number"] not in [p.get("port") for p in ports]:
                exposed = ", ".join(str(p.get("port")) for p in ports) or "none"
                yield Issue(
                    ref,
                    f"{ref}: {where} uses port {port['number']} of {svc.ref}, which exposes {exposed}. "
                    "Use one of the Service's ports",
                )
            if "name" in port and port["name"] not in [p.get("name") for p in ports]:
                yield Issue(
                    ref,
                    f"{ref}: {where} uses port name {port['name']!r}, which {svc.ref} does not define. "
                    "Use one of the Service's port names",
                )
        for tls in _items(_mapping(ingress.body.get("spec")).get("tls")):
            secret = tls.get("secretName")
            if secret and not index.secret_known(ns, str(secret)):
                yield Issue(
                    ref,
                    f"{ref}: spec.tls secretName {secret!r} is not in the rendered manifests, so the load "
                    f"balancer has no certificate. Add it, {_EXTERNAL_HINT}, or use a GKE ManagedCertificate",
                )
        annotations = _mapping(_mapping(ingress.body.get("metadata")).get("annotations"))
        for cert in str(annotations.get("networking.gke.io/managed-certificates", "")).split(","):
            if cert.strip() and not index.get("ManagedCertificate", ns, cert.strip()):
                yield Issue(
                    ref,
                    f"{ref}: annotation networking.gke.io/managed-certificates names ManagedCertificate "
                    f"{cert.strip()!r}, which is not in the rendered manifests; HTTPS will not come up. "
                    "Add it or fix the name",
                )


def managed_certificate_hosts(index: Index) -> Iterator[Issue]:
    """Every Ingress host must be a domain of the ManagedCertificates it uses, or HTTPS fails for it."""
    for ingress in index.of_kind("Ingress"):
        annotations = _mapping(_mapping(ingress.body.get("metadata")).get("annotations"))
        names = [
            n.strip() for n in str(annotations.get("networking.gke.io/managed-certificates", "")).split(",")
        ]
        certs = [c for n in names if n and (c := index.get("ManagedCertificate", ingress.namespace, n))]
        if not certs:
            continue
        domains = {str(d) for c in certs for d in _mapping(c.body.get("spec")).get("domains") or []}
        for rule in _items(_mapping(ingress.body.get("spec")).get("rules")):
            host = rule.get("host")
            if host and host not in domains:
                yield Issue(
                    ingress.ref,
                    f"{ingress.ref}: host {host!r} is not a domain of {', '.join(c.ref for c in certs)} "
                    f"({', '.join(sorted(domains)) or 'none'}), so browsers get a certificate error. Patch "
                    "the certificate's spec.domains with the same host",
                )


def unpinned_images(index: Index) -> Iterator[Issue]:
    """No tag, or :latest, means each node may run a different image; a digest or a tag pins it."""
    for template in index.templates:
        for container in template.containers(init=True):
            image = str(container.get("image", ""))
            repository, tag, digest = _image_parts(image)
            if digest or (tag and tag != "latest"):
                continue
            cname, ref = container.get("name"), template.owner.ref
            if image in index.placeholder_images:
                if index.overlay:
                    yield Issue(
                        ref,
                        f"{ref}: container {cname} still runs the placeholder image {image!r}: this overlay "
                        f"does not pin it. Add an `images:` entry (name: {image}, newName, newTag or digest) "
                        "to the overlay's kustomization.yaml",
                    )
                continue
            yield Issue(
                ref,
                f"{ref}: container {cname} image {image!r} is not pinned ("
                + ("tag :latest" if tag else "no tag, so :latest")
                + f"); every node may pull a different version, and a restart can upgrade it. Pin a tag "
                f"(e.g. {repository}:<version>) or a digest",
            )


def postgres_data_not_persisted(index: Index) -> Iterator[Issue]:
    """The official postgres image writes to PGDATA; unless a persistent volume holds it, data dies."""
    for template in index.templates:
        for container in template.containers():
            image = str(container.get("image", ""))
            if not _is_official_postgres(image):
                continue
            ref, cname = template.owner.ref, container.get("name")
            major = _postgres_major(image)
            # 18+ images keep data in a versioned directory below the volume /var/lib/postgresql;
            # an untagged image is :latest, which is 18 or later.
            new_layout = major is None or major >= 18
            default = (
                f"/var/lib/postgresql/{major or 18}/docker" if new_layout else "/var/lib/postgresql/data"
            )
            if major is None:
                recommended = (
                    "pin a version (see unpinned-image) and mount the claim at its data directory: "
                    "/var/lib/postgresql for 18 and later, or /var/lib/postgresql/data with "
                    "PGDATA=/var/lib/postgresql/data/pgdata before 18"
                )
            elif new_layout:
                recommended = "mount the claim at /var/lib/postgresql"
            else:
                recommended = (
                    "mount the claim at /var/lib/postgresql/data and set "
                    "PGDATA=/var/lib/postgresql/data/pgdata"
                )
            env = _env_values(index, template, container)
            if "PGDATA" in env and env["PGDATA"] is None:
                continue  # Comes from a Secret or the API: we cannot know where it points.
            pgdata = (env.get("PGDATA") or default).rstrip("/")
            image_text = "postgres:latest (18 or later)" if major is None else "the image"
            pgdata_text = (
                f"PGDATA={pgdata}" if env.get("PGDATA") else f"PGDATA unset, so {image_text} uses it"
            )
            mounts = [m for m in _items(container.get("volumeMounts")) if m.get("mountPath")]
            holding = [
                m
                for m in mounts
                if pgdata == str(m["mountPath"]).rstrip("/")
                or pgdata.startswith(str(m["mountPath"]).rstrip("/") + "/")
            ]
            mount = max(holding, key=lambda m: len(str(m["mountPath"])), default=None)
            persistent = mount is not None and _persistent_volume(template, str(mount.get("name")))
            if not persistent:
                seen = (
                    ", ".join(
                        f"{_volume_type(template, str(m.get('name')))} {m.get('name')} at {m['mountPath']}"
                        for m in mounts
                    )
                    or "no volume mounts"
                )
                yield Issue(
                    ref,
                    f"{ref}: container {cname} writes its database to {pgdata} ({pgdata_text}), which is on "
                    f"no persistent volume (it has {seen}), so all data is lost when the pod is replaced. "
                    f"To keep it, {recommended}",
                )
            elif (
                mount is not None
                and str(mount["mountPath"]).rstrip("/") == pgdata
                and not mount.get("subPath")
            ):
                yield Issue(
                    ref,
                    f"{ref}: container {cname} has PGDATA at the root of volume {mount.get('name')} "
                    f"({pgdata}); a fresh ext4 disk (GCE PD) has lost+found there and initdb refuses a "
                    "non-empty directory. Set PGDATA to a subdirectory, e.g. "
                    "PGDATA=/var/lib/postgresql/data/pgdata",
                    "warning",
                )


def _volume_type(template: PodTemplate, name: str) -> str:
    if name in template.claim_templates:
        return "volumeClaimTemplate"
    volume = template.volume(name) or {}
    return next((key for key in volume if key != "name"), "undefined volume")


def _persistent_volume(template: PodTemplate, name: str) -> bool:
    if name in template.claim_templates:
        return True
    volume = template.volume(name)
    # hostPath survives a restart on the same node only, but it is a deliberate choice: not ours to judge.
    return volume is not None and ("persistentVolumeClaim" in volume or "hostPath" in volume)


def plaintext_secrets(index: Index) -> Iterator[Issue]:
    """Credentials written into manifests are in git and readable by anyone who can read the object."""
    fix = (
        "Move it to a Secret the pipeline creates from the environment at deploy time (declared in "
        f"{EXTERNAL_SECRETS_FILE}) and read it with secretKeyRef/secretRef"
    )
    for cm in index.of_kind("ConfigMap"):
        for key, value in _mapping(cm.body.get("data")).items():
            if value not in (None, "") and _looks_like_credential(str(key)):
                yield Issue(
                    cm.ref,
                    f"{cm.ref}: data.{key} holds a credential in plain text (in git, readable by all). {fix}",
                )
    for template in index.templates:
        for container in template.containers(init=True):
            for var in _items(container.get("env")):
                name = str(var.get("name", ""))
                if var.get("value") not in (None, "") and _looks_like_credential(name):
                    yield Issue(
                        template.owner.ref,
                        f"{template.owner.ref}: container {container.get('name')} env {name} has a literal "
                        f"value (in git, readable by all). {fix}",
                    )
    for secret in index.of_kind("Secret"):
        if secret.body.get("data") or secret.body.get("stringData"):
            yield Issue(
                secret.ref,
                f"{secret.ref} carries its values in the manifests; unless it is generated from a file kept "
                "out of git, base64 is not encryption. Create it at deploy time instead",
                "warning",
            )


def rwo_volume_rolling_update(index: Index) -> Iterator[Issue]:
    """A ReadWriteOnce disk attaches to one node: a surge pod elsewhere waits forever (Multi-Attach).

    An error, not a warning: on another node the rollout never finishes; on the same node two database
    processes would share one data directory, which is worse.
    """
    for template in index.templates:
        owner = template.owner
        if owner.kind != "Deployment":
            continue
        spec = _mapping(owner.body.get("spec"))
        strategy = _mapping(spec.get("strategy"))
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        surge = _mapping(strategy.get("rollingUpdate")).get("maxSurge", "25%")
        replicas = spec.get("replicas", 1)
        for volume in _items(template.spec.get("volumes")):
            claim_name = _mapping(volume.get("persistentVolumeClaim")).get("claimName")
            claim = (
                index.get("PersistentVolumeClaim", owner.namespace, str(claim_name)) if claim_name else None
            )
            if claim is None:
                continue
            modes = set(_mapping(claim.body.get("spec")).get("accessModes") or [])
            if not modes or modes - {"ReadWriteOnce", "ReadWriteOncePod"}:
                continue
            if isinstance(replicas, int) and replicas > 1:
                yield Issue(
                    owner.ref,
                    f"{owner.ref}: {replicas} replicas mount the ReadWriteOnce {claim.ref}; only one node "
                    "can attach it, so the others never start. Use replicas: 1 with strategy: Recreate (or a "
                    "StatefulSet with volumeClaimTemplates)",
                )
            elif rolling and surge not in (0, "0", "0%"):
                yield Issue(
                    owner.ref,
                    f"{owner.ref}: strategy RollingUpdate starts the new pod while the old one still holds "
                    f"the ReadWriteOnce {claim.ref}; on another node it cannot attach the disk and the "
                    "rollout hangs, on the same node two processes share the data. Set "
                    "spec.strategy.type: Recreate",
                )


def storage_reclaim_delete(index: Index) -> Iterator[Issue]:
    """A database claim on a Delete-policy class: deleting the claim (or namespace) deletes the data."""
    reported: set[tuple[str, str]] = set()
    for template in index.templates:
        if not any(_is_database(str(c.get("image", ""))) for c in template.containers()):
            continue
        # (object to report, how to name the claim, its storageClassName)
        claims: list[tuple[str, str, Any]] = []
        for volume in _items(template.spec.get("volumes")):
            claim_name = _mapping(volume.get("persistentVolumeClaim")).get("claimName")
            claim = (
                index.get("PersistentVolumeClaim", template.namespace, str(claim_name))
                if claim_name
                else None
            )
            if claim is not None:
                claims.append(
                    (claim.ref, claim.ref, _mapping(claim.body.get("spec")).get("storageClassName"))
                )
        for name, spec in template.claim_templates.items():
            claims.append((template.owner.ref, f"volumeClaimTemplate {name}", spec.get("storageClassName")))
        for obj, claim_text, class_name in claims:
            if class_name == "":
                continue  # Statically bound: the PersistentVolume's own policy applies.
            sc = index.get("StorageClass", "", str(class_name)) if class_name else None
            if sc is not None:
                if sc.body.get("reclaimPolicy", "Delete") != "Delete" or (sc.ref, claim_text) in reported:
                    continue
                reported.add((sc.ref, claim_text))
                yield Issue(
                    sc.ref,
                    f"{sc.ref}: reclaimPolicy is Delete (the default) and {claim_text} holds database data "
                    f"for {template.owner.ref}; deleting the claim or its namespace deletes the disk. Set "
                    "reclaimPolicy: Retain",
                    "warning",
                )
            elif class_name is None or class_name in GKE_STORAGE_CLASSES:
                which = (
                    f"GKE's built-in class {class_name!r}" if class_name else "the cluster's default class"
                )
                yield Issue(
                    obj,
                    f"{claim_text} holds database data for {template.owner.ref} on {which}, whose "
                    "reclaimPolicy is Delete: deleting the claim deletes the disk. Use a StorageClass with "
                    "reclaimPolicy: Retain",
                    "warning",
                )


def missing_probes(index: Index) -> Iterator[Issue]:
    """Without a readinessProbe a rollout counts a pod ready as soon as it starts."""
    for template in index.templates:
        if template.owner.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        for container in template.containers():
            if "readinessProbe" not in container:
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} has no readinessProbe, so a "
                    "rollout cannot tell a broken release from a good one (and traffic reaches pods that are "
                    "not ready). Add one (httpGet on a health endpoint, or tcpSocket)",
                    "warning",
                )


def missing_resources(index: Index) -> Iterator[Issue]:
    """Without requests the scheduler packs blindly and the pod is the first evicted (BestEffort)."""
    for template in index.templates:
        for container in template.containers():
            requests = _mapping(_mapping(container.get("resources")).get("requests"))
            if not requests.get("cpu") and not requests.get("memory"):
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} has no resources.requests, so "
                    "it is scheduled blindly and evicted first under memory pressure. Set cpu and memory "
                    "requests (and a memory limit)",
                    "warning",
                )


def unknown_service_hosts(index: Index) -> Iterator[Issue]:
    """A *_HOST setting naming a Service that is not rendered (the seed's db-core had none)."""

    namespaces = {r.namespace for r in index.resources} | {r.name for r in index.of_kind("Namespace")}

    def check(ref: str, namespace: str, key: str, value: Any, where: str) -> Iterator[Issue]:
        words = _words(key)
        if not words or words[-1] not in ("HOST", "HOSTNAME") or not isinstance(value, str):
            return
        parts = value.split(".")
        if value in ("", "localhost") or not _DNS_LABEL.match(parts[0]):
            return
        # Only cluster-local forms: "svc", "svc.ns" (ns rendered here, else "mail.example" would count),
        # "svc.ns.svc" and "svc.ns.svc.cluster.local".
        if len(parts) == 2 and parts[1] not in namespaces:
            return
        if len(parts) > 2 and parts[2:] not in (["svc"], ["svc", "cluster", "local"]):
            return
        svc_ns = parts[1] if len(parts) > 1 else namespace
        if index.get("Service", svc_ns, parts[0]) is None:
            yield Issue(
                ref,
                f"{ref}: {where} {key}={value} names no Service in the rendered manifests, so the name will "
                f"not resolve in the cluster. Add a Service {parts[0]!r} selecting those pods, or fix "
                "the host",
                "warning",
            )

    for cm in index.of_kind("ConfigMap"):
        for key, value in _mapping(cm.body.get("data")).items():
            yield from check(cm.ref, cm.namespace, str(key), value, "data")
    for template in index.templates:
        for container in template.containers(init=True):
            for var in _items(container.get("env")):
                yield from check(
                    template.owner.ref,
                    template.namespace,
                    str(var.get("name", "")),
                    var.get("value"),
                    f"container {container.get('name')} env",
                )


def gke_storage_classes(index: Index) -> Iterator[Issue]:
    """StorageClass settings that work but bite on GKE."""
    for sc in index.of_kind("StorageClass"):
        if sc.body.get("provisioner") == "kubernetes.io/gce-pd":
            yield Issue(
                sc.ref,
                f"{sc.ref}: provisioner kubernetes.io/gce-pd is the removed in-tree driver, only served "
                "through CSI migration. Use provisioner: pd.csi.storage.gke.io (parameters.type stays; "
                "fstype becomes csi.storage.k8s.io/fstype)",
                "warning",
            )
        is_pd = sc.body.get("provisioner") in ("kubernetes.io/gce-pd", "pd.csi.storage.gke.io")
        if is_pd and sc.body.get("volumeBindingMode", "Immediate") == "Immediate":
            yield Issue(
                sc.ref,
                f"{sc.ref}: volumeBindingMode Immediate creates the zonal disk before the pod is scheduled, "
                "possibly in a zone where the pod cannot run. Use volumeBindingMode: WaitForFirstConsumer",
                "warning",
            )


def gke_ingress_health_checks(index: Index) -> Iterator[Issue]:
    """GKE's load balancer health-checks GET / unless the serving container has an httpGet readinessProbe."""
    for ingress in index.of_kind("Ingress"):
        annotations = _mapping(_mapping(ingress.body.get("metadata")).get("annotations"))
        ingress_class = annotations.get("kubernetes.io/ingress.class", "gce")
        if ingress_class not in ("gce", "gce-internal") or _mapping(ingress.body.get("spec")).get(
            "ingressClassName"
        ):
            continue
        for _, backend in _ingress_backends(ingress):
            svc = index.get("Service", ingress.namespace, str(backend.get("name", "")))
            if svc is None:
                continue
            svc_spec = _mapping(svc.body.get("spec"))
            for template in index.selected(
                svc.namespace, _mapping(svc_spec.get("selector")), label_selector=False
            ):
                probed = [c for c in template.containers() if "httpGet" in _mapping(c.get("readinessProbe"))]
                if not probed and template.containers():
                    yield Issue(
                        ingress.ref,
                        f"{ingress.ref}: the GKE load balancer will health-check GET / on {svc.ref}'s pods "
                        f"({template.owner.ref} has no httpGet readinessProbe to derive a check from); if / "
                        "does not answer 200 every request gets a 502. Add an httpGet readinessProbe on the "
                        "serving port",
                        "warning",
                    )


def kustomize_warnings(index: Index) -> Iterator[Issue]:
    """kustomize's own deprecation warnings: the next major version turns them into errors."""
    for warning in index.kustomize_warnings:
        ref = f"Kustomization/{Path(index.target).name}"
        yield Issue(ref, f"{ref} ({index.target}): kustomize says: {warning}", "warning")


# The registry: every lint rule, by id, in the order findings are reported.
RULES: tuple[tuple[str, Rule], ...] = (
    ("duplicate-object", duplicate_objects),
    ("invalid-name", invalid_names),
    ("nodeport-out-of-range", nodeports_out_of_range),
    ("port-conflict", port_conflicts),
    ("selector-matches-nothing", selectors_matching_nothing),
    ("container-port-mismatch", container_port_mismatch),
    ("dangling-reference", dangling_references),
    ("certificate-host-mismatch", managed_certificate_hosts),
    ("unpinned-image", unpinned_images),
    ("postgres-data-not-persisted", postgres_data_not_persisted),
    ("plaintext-secret", plaintext_secrets),
    ("rwo-volume-rolling-update", rwo_volume_rolling_update),
    ("storage-reclaim-delete", storage_reclaim_delete),
    ("unknown-service-host", unknown_service_hosts),
    ("gke-storage-class", gke_storage_classes),
    ("gke-health-check", gke_ingress_health_checks),
    ("missing-probes", missing_probes),
    ("missing-resources", missing_resources),
    ("kustomize-warning", kustomize_warnings),
)


def lint(index: Index) -> list[Finding]:
    """Run every rule of :data:`RULES` over one target's index."""
    findings: list[Finding] = []
    for rule_id, rule in RULES:
        seen: set[Issue] = set()
        for issue in rule(index):
            if issue not in seen:
                seen.add(issue)
                findings.append(Finding(index.target, issue.obj, rule_id, issue.message, issue.severity))
    return findings


# --- Schema pass --------------------------------------------------------------------------------------


def _builtin_group(group: str) -> bool:
    """API groups served by Kubernetes itself (a missing schema there means a removed or misspelled API)."""
    return group in ("", "apps", "batch", "autoscaling", "policy", "extensions") or group.endswith(".k8s.io")


def check_schema(target: str, obj: Mapping[str, Any], kubernetes_version: str) -> Finding | None:
    """Validate one object against the bundled OpenAPI schema of ``kubernetes_version`` (strict)."""
    import kubernetes_validate  # Heavy (jsonschema, 600 schema files): loaded only when validating.

    resource = _resource(obj)
    if not obj.get("apiVersion") or not obj.get("kind"):
        return Finding(
            target, resource.ref, "schema", f"{resource.ref}: apiVersion or kind is missing. Add both"
        )
    try:
        kubernetes_validate.validate(dict(obj), kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(top level)"
        return Finding(
            target,
            resource.ref,
            "schema",
            f"{resource.ref}: {path}: {e.message} (Kubernetes {e.version} schema). Fix the field",
        )
    except kubernetes_validate.SchemaNotFoundError:
        api_version = obj.get("apiVersion")
        if _builtin_group(resource.group):
            return Finding(
                target,
                resource.ref,
                "schema",
                f"{resource.ref}: Kubernetes {kubernetes_version} serves no {resource.kind} in {api_version} "
                f"(removed or misspelled). Use the current apiVersion (`kubectl explain {resource.kind}`)",
            )
        return Finding(
            target,
            resource.ref,
            "no-schema",
            f"{resource.ref}: no schema for {api_version} {resource.kind} (a CRD), not checked",
            "warning",
        )
    return None


def _check_version(kubernetes_version: str) -> None:
    import kubernetes_validate.utils

    known = kubernetes_validate.utils.all_versions()
    minor = kubernetes_validate.utils.major_minor(kubernetes_version.removeprefix("v"))
    if minor not in {kubernetes_validate.utils.major_minor(v) for v in known}:
        raise ConfigError(
            f"validating against Kubernetes {kubernetes_version}: no bundled schemas for it",
            f"Use one of {known[0]}..{known[-1]} (kubernetes-validate {kubernetes_validate.__version__})",
        )


# --- Entry point --------------------------------------------------------------------------------------


def read_external_secrets(directory: Path) -> dict[str, frozenset[str] | None]:
    """Secrets declared in ``external-secrets.txt`` files of ``directory`` and the kustomizations below it."""
    declared: dict[str, frozenset[str] | None] = {}
    for current in kustomization_dirs(directory):
        path = current / EXTERNAL_SECRETS_FILE
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, colon, keys = line.partition(":")
            declared[name.strip()] = frozenset(keys.split()) if colon else None
    return declared


def validate(
    targets: Sequence[Path],
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    external_secrets: Collection[str] = (),
    placeholder_images: Collection[str] = (),
) -> ValidationReport:
    """Render each kustomize directory in ``targets`` and check what it renders to.

    ``external_secrets``: Secrets created at deploy time (not in git), on top of those declared in
    ``external-secrets.txt`` files. ``placeholder_images``: image names the base uses and every overlay
    must pin with kustomize ``images:`` (fine unpinned in a base, an error in an overlay).
    Raises RenderError when a target does not render, ConfigError for an unsupported version.
    """
    _check_version(kubernetes_version)
    findings: list[Finding] = []
    checked = 0
    for target in targets:
        report = validate_rendered(
            Path(target),
            kustomize_build(Path(target)),
            kubernetes_version=kubernetes_version,
            external_secrets=external_secrets,
            placeholder_images=placeholder_images,
        )
        findings.extend(report.findings)
        checked += report.objects_checked
    return ValidationReport(findings=tuple(findings), objects_checked=checked)


def validate_rendered(
    directory: Path,
    rendered: Rendered,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    external_secrets: Collection[str] = (),
    placeholder_images: Collection[str] = (),
) -> ValidationReport:
    """Check what ``directory`` rendered to (a release renders once and applies the objects it checked)."""
    objects = rendered.objects
    declared: dict[str, frozenset[str] | None] = {name: None for name in external_secrets}
    declared.update(read_external_secrets(directory))
    index = Index.build(
        str(directory),
        objects,
        overlay=len(kustomization_dirs(directory)) > 1,
        placeholder_images=placeholder_images,
        external_secrets=declared,
        kustomize_warnings=rendered.warnings,
    )
    findings = [f for obj in objects if (f := check_schema(str(directory), obj, kubernetes_version))]
    findings.extend(lint(index))
    return ValidationReport(findings=tuple(findings), objects_checked=len(objects))
