"""The resource table of the sandbox API servers and the discovery documents built from it.

Every kind the API server serves is a :class:`ResourceInfo` in :data:`RESOURCES`; the store (``store/``)
asks it whether a resource is namespaced and has a ``status`` subresource, the API server
(``apiserver/``) routes by it, ``openapi/`` describes it, and this module turns it into the documents
of ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>`` and the aggregated discovery
(``apidiscovery.k8s.io/v2``) that kubectl 1.30+ asks for first.

GKE's own custom resources (ManagedCertificate, BackendConfig, FrontendConfig, ...) are registered here
as they are on a GKE cluster, so kubectl and the dynamic client find them; their objects are stored as
they come, without a schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GVR = tuple[str, str, str]

# Verbs of an ordinary resource, as discovery lists them.
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    """One REST resource: its names, scope and subresources (what discovery says about it)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Subresources served: "status" splits status writes from spec writes, as for built-in kinds.
    subresources: tuple[str, ...] = ()
    # Built-in kinds bump metadata.generation on spec changes; kinds without a spec do not have one.
    has_generation: bool = False
    # A known schema (built-in kinds): strict field validation and granular merges apply. Custom
    # resources are stored as they come, with every list atomic, as for a schemaless CRD.
    builtin: bool = True
    verbs: tuple[str, ...] = field(default=ALL_VERBS)

    @property
    def gvr(self) -> GVR:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """The name Kubernetes uses in messages: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group: str, version: str, plural: str, kind: str, **kw: Any) -> ResourceInfo:
    return ResourceInfo(group, version, plural, kind, **kw)


_ALL = ("all",)
RESOURCES: tuple[ResourceInfo, ...] = (
    _r(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _r("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _r("", "v1", "secrets", "Secret"),
    _r("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _r(
        "",
        "v1",
        "services",
        "Service",
        short_names=("svc",),
        categories=_ALL,
        subresources=("status",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _r("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    _r(
        "",
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        categories=_ALL,
        subresources=("status", "log", "exec", "portforward"),
        has_generation=True,
    ),
    _r("", "v1", "events", "Event", short_names=("ev",)),
    _r("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    _r(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=("status",),
    ),
    _r(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        namespaced=False,
        short_names=("pv",),
        subresources=("status",),
    ),
    _r("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), subresources=("status",)),
    _r("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
    _r(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=_ALL,
        subresources=("status", "scale"),
        has_generation=True,
    ),
    _r(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        categories=_ALL,
        subresources=("status", "scale"),
        has_generation=True,
    ),
    _r(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        categories=_ALL,
        subresources=("status", "scale"),
        has_generation=True,
    ),
    _r(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        short_names=("ds",),
        categories=_ALL,
        subresources=("status",),
        has_generation=True,
    ),
    _r("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _r("batch", "v1", "jobs", "Job", categories=_ALL, subresources=("status",), has_generation=True),
    _r(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        categories=_ALL,
        subresources=("status",),
        has_generation=True,
    ),
    _r(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        categories=_ALL,
        subresources=("status",),
    ),
    _r(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
        has_generation=True,
    ),
    _r(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        short_names=("ing",),
        subresources=("status",),
        has_generation=True,
    ),
    _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False, has_generation=True),
    _r(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        short_names=("netpol",),
        has_generation=True,
    ),
    _r("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short_names=("sc",)),
    _r("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _r("coordination.k8s.io", "v1", "leases", "Lease"),
    _r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
        has_generation=True,
    ),
    # GKE's custom resources, present on every GKE cluster.
    _r(
        "networking.gke.io",
        "v1",
        "managedcertificates",
        "ManagedCertificate",
        short_names=("mcrt",),
        has_generation=True,
        builtin=False,
    ),
    _r(
        "networking.gke.io",
        "v1beta1",
        "frontendconfigs",
        "FrontendConfig",
        has_generation=True,
        builtin=False,
    ),
    _r(
        "networking.gke.io",
        "v1",
        "gcpbackendpolicies",
        "GCPBackendPolicy",
        has_generation=True,
        builtin=False,
    ),
    _r(
        "cloud.google.com",
        "v1",
        "backendconfigs",
        "BackendConfig",
        short_names=("bc",),
        has_generation=True,
        builtin=False,
    ),
    _r(
        "monitoring.googleapis.com",
        "v1",
        "podmonitorings",
        "PodMonitoring",
        has_generation=True,
        builtin=False,
    ),
)

_BY_GVR = {r.gvr: r for r in RESOURCES}
_BY_KIND = {(r.group, r.version, r.kind): r for r in RESOURCES}


def lookup(gvr: GVR) -> ResourceInfo | None:
    return _BY_GVR.get(gvr)


def by_kind(api_version: str, kind: str) -> ResourceInfo | None:
    group, _, version = api_version.rpartition("/")
    return _BY_KIND.get((group, version, kind))


def info_for(gvr: GVR) -> ResourceInfo:
    """The resource's info; an unregistered GVR is treated as a namespaced custom resource."""
    found = _BY_GVR.get(gvr)
    if found is not None:
        return found
    group, version, plural = gvr
    return ResourceInfo(group, version, plural, plural.capitalize(), builtin=False, has_generation=True)


def groups() -> dict[str, list[str]]:
    """Group name -> versions, preferred first, in a stable order (core group excluded)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def resources_of(group: str, version: str) -> list[ResourceInfo]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


# ---- legacy discovery ------------------------------------------------------------------------------


def _resource_entries(group: str, version: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for r in resources_of(group, version):
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entry["storageVersionHash"] = _hash(f"{r.group}/{r.version}/{r.plural}")[:12]
        entries.append(entry)
        for sub in r.subresources:
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            sub_kind = {"scale": "Scale", "log": "Pod"}.get(sub, r.kind)
            sub_entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub_kind,
                "verbs": verbs,
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1")
            entries.append(sub_entry)
    return entries


def api_versions() -> dict[str, Any]:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``; None for an unknown group-version."""
    if not resources_of(group, version):
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": _resource_entries(group, version),
    }


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list() -> dict[str, Any]:
    """``GET /apis``."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(name, versions) for name, versions in groups().items()],
    }


def api_group(name: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``."""
    versions = groups().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}


# ---- aggregated discovery (apidiscovery.k8s.io/v2) ---------------------------------------------------

AGGREGATED_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_MEDIA_BETA = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def _aggregated_version(group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in resources_of(group, version):
        entry: dict[str, Any] = {
            "resource": r.plural,
            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
            "scope": "Namespaced" if r.namespaced else "Cluster",
            "singularResource": r.singular,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        subs = []
        for sub in r.subresources:
            kind = {"group": r.group, "version": r.version, "kind": r.kind}
            if sub == "scale":
                kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
            elif sub == "log":
                kind = {"group": "", "version": "v1", "kind": "Pod"}
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": kind,
                    "verbs": ["get"] if sub == "log" else ["get", "patch", "update"],
                }
            )
        if subs:
            entry["subresources"] = subs
        resources.append(entry)
    return {"version": version, "resources": resources, "freshness": "Current"}


def aggregated(legacy: bool, api_version: str = "apidiscovery.k8s.io/v2") -> dict[str, Any]:
    """The aggregated discovery document of ``/api`` (legacy) or ``/apis``."""
    if legacy:
        items = [{"metadata": {"creationTimestamp": None}, "versions": [_aggregated_version("", "v1")]}]
    else:
        items = [
            {
                "metadata": {"name": name, "creationTimestamp": None},
                "versions": [_aggregated_version(name, v) for v in versions],
            }
            for name, versions in groups().items()
        ]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def etag(doc: dict[str, Any]) -> str:
    return '"' + _hash(json.dumps(doc, sort_keys=True))[:32] + '"'
