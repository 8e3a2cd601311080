"""Lint rules on storage: where a database's data lives and what can lose it.

``postgres-data-not-persisted`` (the official postgres image writes to PGDATA, which must be on a
persistent volume), ``rwo-volume-rolling-update`` (a ReadWriteOnce disk cannot follow a surge pod to
another node), ``storage-reclaim-delete`` (deleting a database's claim deletes its disk) and
``gke-storage-class`` (StorageClass settings that bite on GKE). Uses :mod:`..index` and the image knowledge
of :mod:`.images`; :mod:`.references` uses :data:`GKE_STORAGE_CLASSES`; registered in :mod:`.` (the rules
package).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..findings import Issue
from ..index import Index, PodTemplate, items, mapping
from .images import is_database, is_official_postgres, postgres_major

# StorageClasses every GKE cluster has, so a claim may name them without defining them.
GKE_STORAGE_CLASSES = frozenset({"standard", "standard-rwo", "premium-rwo"})


def _env_values(index: Index, template: PodTemplate, container: Mapping[str, Any]) -> dict[str, str | None]:
    """A container's environment as far as the manifests tell (None: comes from a Secret or the API)."""
    env: dict[str, str | None] = {}
    for source in items(container.get("envFrom")):
        prefix = str(source.get("prefix", ""))
        cm_ref = mapping(source.get("configMapRef"))
        cm = index.get("ConfigMap", template.namespace, str(cm_ref.get("name", ""))) if cm_ref else None
        if cm is not None:
            env.update({prefix + k: str(v) for k, v in mapping(cm.body.get("data")).items()})
    for var in items(container.get("env")):
        name = str(var.get("name", ""))
        if "value" in var:
            env[name] = str(var["value"])
            continue
        key_ref = mapping(mapping(var.get("valueFrom")).get("configMapKeyRef"))
        cm = index.get("ConfigMap", template.namespace, str(key_ref.get("name", ""))) if key_ref else None
        data = mapping(cm.body.get("data")) if cm is not None else {}
        env[name] = str(data[key_ref["key"]]) if key_ref.get("key") in data else None
    return env


def postgres_data_not_persisted(index: Index) -> Iterator[Issue]:
    """The official postgres image writes to PGDATA; unless a persistent volume holds it, data dies."""
    for template in index.templates:
        for container in template.containers():
            image = str(container.get("image", ""))
            if not is_official_postgres(image):
                continue
            ref, cname = template.owner.ref, container.get("name")
            major = postgres_major(image)
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
            mounts = [m for m in items(container.get("volumeMounts")) if m.get("mountPath")]
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


def rwo_volume_rolling_update(index: Index) -> Iterator[Issue]:
    """A ReadWriteOnce disk attaches to one node: a surge pod elsewhere waits forever (Multi-Attach).

    An error, not a warning: on another node the rollout never finishes; on the same node two database
    processes would share one data directory, which is worse.
    """
    for template in index.templates:
        owner = template.owner
        if owner.kind != "Deployment":
            continue
        spec = mapping(owner.body.get("spec"))
        strategy = mapping(spec.get("strategy"))
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        surge = mapping(strategy.get("rollingUpdate")).get("maxSurge", "25%")
        replicas = spec.get("replicas", 1)
        for volume in items(template.spec.get("volumes")):
            claim_name = mapping(volume.get("persistentVolumeClaim")).get("claimName")
            claim = (
                index.get("PersistentVolumeClaim", owner.namespace, str(claim_name)) if claim_name else None
            )
            if claim is None:
                continue
            modes = set(mapping(claim.body.get("spec")).get("accessModes") or [])
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
        if not any(is_database(str(c.get("image", ""))) for c in template.containers()):
            continue
        # (object to report, how to name the claim, its storageClassName)
        claims: list[tuple[str, str, Any]] = []
        for volume in items(template.spec.get("volumes")):
            claim_name = mapping(volume.get("persistentVolumeClaim")).get("claimName")
            claim = (
                index.get("PersistentVolumeClaim", template.namespace, str(claim_name))
                if claim_name
                else None
            )
            if claim is not None:
                claims.append((claim.ref, claim.ref, mapping(claim.body.get("spec")).get("storageClassName")))
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
