"""The Ingress routing table: rules by host, paths by type and length, TLS certificates by host.

:func:`ingress_table` merges every Ingress of a cluster (with Services, Pods and TLS Secrets) into one
:class:`IngressTable`, whose :meth:`~IngressTable.route` applies Kubernetes' precedence. Pure; uses
``endpoints.py``; ``controllers/services.py`` computes the table and ``ingress.py`` serves it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .endpoints import Endpoint, ready_endpoints


@dataclass(frozen=True)
class IngressPath:
    """One ``rules[].http.paths[]`` entry with its backend resolved to ready endpoints."""

    path: str
    path_type: str  # "Prefix", "Exact" or "ImplementationSpecific" (GCE's: a trailing "/*" globs)
    endpoints: tuple[Endpoint, ...]
    backend: str = ""  # "namespace/service:port", for messages

    def matches(self, request_path: str) -> int | None:
        """How specific the match is (longer wins), or None when the path does not match."""
        if self.path_type == "Exact":
            return len(self.path) if request_path == self.path else None
        if self.path_type == "Prefix":
            rule = [p for p in self.path.split("/") if p]
            parts = [p for p in request_path.split("/") if p]
            return len(self.path.rstrip("/")) if parts[: len(rule)] == rule else None
        # ImplementationSpecific as GKE's load balancer reads it: "/*" globs, anything else is exact.
        if self.path in ("", "/*"):
            return 0
        if self.path.endswith("/*"):
            stem = self.path[:-2]
            return len(stem) if request_path == stem or request_path.startswith(stem + "/") else None
        return len(self.path) if request_path == self.path else None


@dataclass(frozen=True)
class IngressRule:
    host: str  # "" for every host, "*.example.com" for one level of subdomains
    paths: tuple[IngressPath, ...]

    def host_rank(self, host: str) -> int | None:
        """2 for an exact host, 1 for a wildcard, 0 for a rule without host; None when it does not apply."""
        if not self.host:
            return 0
        if self.host == host:
            return 2
        if self.host.startswith("*."):
            head, _, rest = host.partition(".")
            return 1 if head and rest == self.host[2:] else None
        return None


@dataclass(frozen=True)
class IngressTable:
    rules: tuple[IngressRule, ...] = ()
    # host -> (certificate chain PEM, key PEM) from the TLS Secrets Ingresses name.
    tls: Mapping[str, tuple[bytes, bytes]] = field(default_factory=dict)
    default_backend: IngressPath | None = None

    def route(self, host: str, path: str) -> IngressPath | None:
        """The path serving a request, by Kubernetes' precedence (host, then longest path, Exact first)."""
        ranked = [(rank, rule) for rule in self.rules if (rank := rule.host_rank(host)) is not None]
        if not ranked:
            return self.default_backend
        best_rank = max(rank for rank, _ in ranked)
        best: tuple[int, int, IngressPath] | None = None
        for rank, rule in ranked:
            if rank != best_rank:
                continue
            for candidate in rule.paths:
                score = candidate.matches(path)
                if score is None:
                    continue
                key = (score, 1 if candidate.path_type == "Exact" else 0, candidate)
                if best is None or key[:2] > best[:2]:
                    best = key
        return best[2] if best else self.default_backend


def _backend_path(
    namespace: str,
    backend: Mapping[str, Any],
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    pods: list[Mapping[str, Any]],
    path: str = "/",
    path_type: str = "Prefix",
) -> IngressPath:
    ref = backend.get("service") or {}
    name = ref.get("name", "")
    wanted = ref.get("port") or {}
    service = services.get((namespace, name))
    label = f"{namespace}/{name}:{wanted.get('number') or wanted.get('name')}"
    if service is None:
        return IngressPath(path, path_type, (), label)
    for port in (service.get("spec") or {}).get("ports") or []:
        if ("number" in wanted and port.get("port") == wanted["number"]) or (
            "name" in wanted and port.get("name") == wanted["name"]
        ):
            return IngressPath(path, path_type, tuple(ready_endpoints(service, port, pods)), label)
    return IngressPath(path, path_type, (), label)


def ingress_table(
    ingresses: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]] = (),
) -> IngressTable:
    """Every Ingress of the cluster merged into one table (all are served, whatever their class)."""
    pods = list(pods)
    by_name = {
        ((s.get("metadata") or {}).get("namespace", "default"), (s.get("metadata") or {}).get("name", "")): s
        for s in services
    }
    secret_by_name = {
        ((s.get("metadata") or {}).get("namespace", "default"), (s.get("metadata") or {}).get("name", "")): s
        for s in secrets
    }
    rules: list[IngressRule] = []
    tls: dict[str, tuple[bytes, bytes]] = {}
    default: IngressPath | None = None
    ordered = sorted(ingresses, key=lambda i: (i.get("metadata") or {}).get("creationTimestamp") or "")
    for ingress in ordered:
        meta = ingress.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        namespace = meta.get("namespace", "default")
        spec = ingress.get("spec") or {}
        if spec.get("defaultBackend") and default is None:
            default = _backend_path(namespace, spec["defaultBackend"], by_name, pods)
        for rule in spec.get("rules") or []:
            paths = tuple(
                _backend_path(
                    namespace,
                    p.get("backend") or {},
                    by_name,
                    pods,
                    p.get("path") or "/",
                    p.get("pathType") or "ImplementationSpecific",
                )
                for p in (rule.get("http") or {}).get("paths") or []
            )
            rules.append(IngressRule((rule.get("host") or "").lower(), paths))
        for entry in spec.get("tls") or []:
            secret = secret_by_name.get((namespace, entry.get("secretName") or ""))
            data = (secret or {}).get("data") or {}
            if "tls.crt" in data and "tls.key" in data:
                pair = (base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
                for host in entry.get("hosts") or []:
                    tls.setdefault(host.lower(), pair)
    return IngressTable(tuple(rules), tls, default)
