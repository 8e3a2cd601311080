"""Lint rules on references between objects: ``dangling-reference`` and ``unknown-service-host``.

A name that points at an object which is not in the rendered set (and not declared external, see
:mod:`..external`): a pod's ConfigMaps, Secrets (and their keys), claims and ServiceAccount; an Ingress's
Services, ports, TLS Secrets and ManagedCertificates; a claim's StorageClass; an autoscaler's target. And
a *_HOST setting naming a Service that is not rendered. Uses :mod:`..index`, the name syntax of
:mod:`.names`, the Ingress walk of :mod:`.ingress` and GKE's built-in classes from :mod:`.storage`;
registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..external import EXTERNAL_SECRETS_FILE
from ..findings import Issue
from ..index import Index, PodTemplate, items, mapping
from .ingress import ingress_backends
from .names import DNS_LABEL, key_words
from .storage import GKE_STORAGE_CLASSES

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
        for container in template.containers(init=True):
            yield from _env_from_references(index, template, container)
            yield from _env_key_references(index, template, container)
        yield from _volume_references(index, template)
        yield from _account_references(index, template)
    yield from _ingress_references(index)
    yield from _storage_class_references(index)
    yield from _scale_target_references(index)


def _env_from_references(
    index: Index, template: PodTemplate, container: Mapping[str, Any]
) -> Iterator[Issue]:
    """A container's envFrom: whole ConfigMaps and Secrets."""
    ns, ref, cname = template.namespace, template.owner.ref, container.get("name")
    for source in items(container.get("envFrom")):
        cm_ref, secret_ref = mapping(source.get("configMapRef")), mapping(source.get("secretRef"))
        if cm_ref and not cm_ref.get("optional") and not index.get("ConfigMap", ns, cm_ref.get("name", "")):
            yield _missing(
                ref, "ConfigMap", str(cm_ref.get("name")), f"container {cname} envFrom.configMapRef"
            )
        if secret_ref and not secret_ref.get("optional") and not index.secret_known(ns, secret_ref["name"]):
            yield _missing(ref, "Secret", str(secret_ref.get("name")), f"container {cname} envFrom.secretRef")


def _env_key_references(index: Index, template: PodTemplate, container: Mapping[str, Any]) -> Iterator[Issue]:
    """A container's env valueFrom: one key of a ConfigMap or a Secret, which must have that key."""
    ns, ref, cname = template.namespace, template.owner.ref, container.get("name")
    for var in items(container.get("env")):
        value_from = mapping(var.get("valueFrom"))
        cm_key = mapping(value_from.get("configMapKeyRef"))
        if cm_key and not cm_key.get("optional"):
            where = f"container {cname} env {var.get('name')} configMapKeyRef"
            cm = index.get("ConfigMap", ns, str(cm_key.get("name", "")))
            if cm is None:
                yield _missing(ref, "ConfigMap", str(cm_key.get("name")), where)
            elif cm_key.get("key") not in mapping(cm.body.get("data")) and cm_key.get("key") not in mapping(
                cm.body.get("binaryData")
            ):
                yield Issue(
                    ref,
                    f"{ref}: {where} asks for key {cm_key.get('key')!r}, which {cm.ref} does not "
                    "have; the pod will not start. Add the key to the ConfigMap or fix the key",
                )
        secret_key = mapping(value_from.get("secretKeyRef"))
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


def _volume_references(index: Index, template: PodTemplate) -> Iterator[Issue]:
    """A pod's volumes: ConfigMaps and Secrets (also projected ones) and PersistentVolumeClaims."""
    ns, ref = template.namespace, template.owner.ref
    for volume in items(template.spec.get("volumes")):
        vname = volume.get("name")
        sources = [volume, *items(mapping(volume.get("projected")).get("sources"))]
        for source in sources:
            cm_source = mapping(source.get("configMap"))
            cm_name = str(cm_source.get("name", ""))
            if cm_source and not cm_source.get("optional") and not index.get("ConfigMap", ns, cm_name):
                yield _missing(ref, "ConfigMap", cm_name, f"volume {vname}")
            secret = mapping(source.get("secret"))
            secret_name = str(secret.get("secretName", secret.get("name", "")))
            if secret and not secret.get("optional") and not index.secret_known(ns, secret_name):
                yield _missing(ref, "Secret", secret_name, f"volume {vname}")
        claim = mapping(volume.get("persistentVolumeClaim")).get("claimName")
        if claim and not index.get("PersistentVolumeClaim", ns, str(claim)):
            yield Issue(
                ref,
                f"{ref}: volume {vname} names PersistentVolumeClaim {claim!r}, which is not in the "
                "rendered manifests; the pod stays Pending. Add the claim or fix claimName",
            )


def _account_references(index: Index, template: PodTemplate) -> Iterator[Issue]:
    """What a pod runs as and pulls with: imagePullSecrets and its ServiceAccount."""
    ns, ref = template.namespace, template.owner.ref
    for pull_secret in items(template.spec.get("imagePullSecrets")):
        if not index.secret_known(ns, str(pull_secret.get("name", ""))):
            yield _missing(ref, "Secret", str(pull_secret.get("name")), "imagePullSecrets")
    account = template.spec.get("serviceAccountName")
    if account and account != "default" and not index.get("ServiceAccount", ns, str(account)):
        yield Issue(
            ref,
            f"{ref}: serviceAccountName {account!r} is not in the rendered manifests; the pods are "
            "refused. Add the ServiceAccount or drop the field",
        )


def _ingress_references(index: Index) -> Iterator[Issue]:
    """An Ingress's backends (Service and port), TLS Secrets and ManagedCertificates."""
    for ingress in index.of_kind("Ingress"):
        ns, ref = ingress.namespace, ingress.ref
        for where, backend in ingress_backends(ingress):
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
            port = mapping(backend.get("port"))
            ports = items(mapping(svc.body.get("spec")).get("ports"))
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
        for tls in items(mapping(ingress.body.get("spec")).get("tls")):
            secret = tls.get("secretName")
            if secret and not index.secret_known(ns, str(secret)):
                yield Issue(
                    ref,
                    f"{ref}: spec.tls secretName {secret!r} is not in the rendered manifests, so the load "
                    f"balancer has no certificate. Add it, {_EXTERNAL_HINT}, or use a GKE ManagedCertificate",
                )
        annotations = mapping(mapping(ingress.body.get("metadata")).get("annotations"))
        for cert in str(annotations.get("networking.gke.io/managed-certificates", "")).split(","):
            if cert.strip() and not index.get("ManagedCertificate", ns, cert.strip()):
                yield Issue(
                    ref,
                    f"{ref}: annotation networking.gke.io/managed-certificates names ManagedCertificate "
                    f"{cert.strip()!r}, which is not in the rendered manifests; HTTPS will not come up. "
                    "Add it or fix the name",
                )


def _storage_class_references(index: Index) -> Iterator[Issue]:
    for claim in index.of_kind("PersistentVolumeClaim"):
        sc = mapping(claim.body.get("spec")).get("storageClassName")
        if sc and sc not in GKE_STORAGE_CLASSES and not index.get("StorageClass", "", str(sc)):
            yield Issue(
                claim.ref,
                f"{claim.ref}: storageClassName {sc!r} is neither in the rendered manifests nor one of GKE's "
                f"built-in classes ({', '.join(sorted(GKE_STORAGE_CLASSES))}); the claim stays Pending. "
                "Add the StorageClass or use a built-in one",
            )


def _scale_target_references(index: Index) -> Iterator[Issue]:
    for hpa in index.of_kind("HorizontalPodAutoscaler"):
        target = mapping(mapping(hpa.body.get("spec")).get("scaleTargetRef"))
        if target and not index.get(str(target.get("kind")), hpa.namespace, str(target.get("name"))):
            yield Issue(
                hpa.ref,
                f"{hpa.ref}: scaleTargetRef names {target.get('kind')}/{target.get('name')}, which is not in "
                "the rendered manifests. Fix the name",
            )


def unknown_service_hosts(index: Index) -> Iterator[Issue]:
    """A *_HOST setting naming a Service that is not rendered (the seed's db-core had none)."""

    namespaces = {r.namespace for r in index.resources} | {r.name for r in index.of_kind("Namespace")}

    def check(ref: str, namespace: str, key: str, value: Any, where: str) -> Iterator[Issue]:
        words = key_words(key)
        if not words or words[-1] not in ("HOST", "HOSTNAME") or not isinstance(value, str):
            return
        parts = value.split(".")
        if value in ("", "localhost") or not DNS_LABEL.match(parts[0]):
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
        for key, value in mapping(cm.body.get("data")).items():
            yield from check(cm.ref, cm.namespace, str(key), value, "data")
    for template in index.templates:
        for container in template.containers(init=True):
            for var in items(container.get("env")):
                yield from check(
                    template.owner.ref,
                    template.namespace,
                    str(var.get("name", "")),
                    var.get("value"),
                    f"container {container.get('name')} env",
                )
