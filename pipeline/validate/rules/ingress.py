"""Lint rules on GKE Ingresses: ``certificate-host-mismatch`` and ``gke-health-check``.

An Ingress host that none of its ManagedCertificates covers gets a certificate error; a backend whose pods
have no httpGet readinessProbe is health-checked on GET / by the GKE load balancer. :func:`ingress_backends`
walks an Ingress's Service backends for these rules and for :mod:`.references`. Uses :mod:`..index`;
registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..findings import Issue
from ..index import Index, Resource, items, mapping


def ingress_backends(ingress: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = mapping(ingress.body.get("spec"))
    default = mapping(mapping(spec.get("defaultBackend")).get("service"))
    if default:
        yield "spec.defaultBackend", default
    for i, rule in enumerate(items(spec.get("rules"))):
        for j, path in enumerate(items(mapping(rule.get("http")).get("paths"))):
            service = mapping(mapping(path.get("backend")).get("service"))
            if service:
                yield f"spec.rules[{i}].http.paths[{j}]", service


def managed_certificate_hosts(index: Index) -> Iterator[Issue]:
    """Every Ingress host must be a domain of the ManagedCertificates it uses, or HTTPS fails for it."""
    for ingress in index.of_kind("Ingress"):
        annotations = mapping(mapping(ingress.body.get("metadata")).get("annotations"))
        names = [
            n.strip() for n in str(annotations.get("networking.gke.io/managed-certificates", "")).split(",")
        ]
        certs = [c for n in names if n and (c := index.get("ManagedCertificate", ingress.namespace, n))]
        if not certs:
            continue
        domains = {str(d) for c in certs for d in mapping(c.body.get("spec")).get("domains") or []}
        for rule in items(mapping(ingress.body.get("spec")).get("rules")):
            host = rule.get("host")
            if host and host not in domains:
                yield Issue(
                    ingress.ref,
                    f"{ingress.ref}: host {host!r} is not a domain of {', '.join(c.ref for c in certs)} "
                    f"({', '.join(sorted(domains)) or 'none'}), so browsers get a certificate error. Patch "
                    "the certificate's spec.domains with the same host",
                )


def gke_ingress_health_checks(index: Index) -> Iterator[Issue]:
    """GKE's load balancer health-checks GET / unless the serving container has an httpGet readinessProbe."""
    for ingress in index.of_kind("Ingress"):
        annotations = mapping(mapping(ingress.body.get("metadata")).get("annotations"))
        ingress_class = annotations.get("kubernetes.io/ingress.class", "gce")
        if ingress_class not in ("gce", "gce-internal") or mapping(ingress.body.get("spec")).get(
            "ingressClassName"
        ):
            continue
        for _, backend in ingress_backends(ingress):
            svc = index.get("Service", ingress.namespace, str(backend.get("name", "")))
            if svc is None:
                continue
            svc_spec = mapping(svc.body.get("spec"))
            for template in index.selected(
                svc.namespace, mapping(svc_spec.get("selector")), label_selector=False
            ):
                probed = [c for c in template.containers() if "httpGet" in mapping(c.get("readinessProbe"))]
                if not probed and template.containers():
                    yield Issue(
                        ingress.ref,
                        f"{ingress.ref}: the GKE load balancer will health-check GET / on {svc.ref}'s pods "
                        f"({template.owner.ref} has no httpGet readinessProbe to derive a check from); if / "
                        "does not answer 200 every request gets a 502. Add an httpGet readinessProbe on the "
                        "serving port",
                        "warning",
                    )
