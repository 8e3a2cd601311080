"""PersistentVolumeClaims: dynamic provisioning as GKE's CSI driver does it, onto named Docker volumes.

A claim is provisioned when its StorageClass says so: at once for ``volumeBindingMode: Immediate``, when
the scheduler places the first pod that uses it for ``WaitForFirstConsumer`` (GKE's default
``standard-rwo``). Provisioning makes a PersistentVolume ``pvc-<claim uid>`` (``csi.volumeHandle`` is the
Docker volume), binds the claim to it (``spec.volumeName``, ``status.phase: Bound``, capacity and access
modes) and creates the Docker volume, which outlives every pod that mounts it. When the claim is deleted,
a PersistentVolume with ``persistentVolumeReclaimPolicy: Delete`` goes with its Docker volume.

A claim naming a StorageClass that does not exist stays Pending with a ``ProvisioningFailed`` event, as
on a cluster. Not faithful: a claim with no class while no class is the default is provisioned too
(a real cluster would leave it Pending); the sandbox has no pre-made volumes to offer instead.

Neighbours: ``pods.py`` asks :meth:`ClaimBinder.bind_for_pod` when it schedules a pod and passes the
claim -> volume map to the kubelet through ``resolve.py``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store.kinds import PVCS, PVS, STORAGECLASSES
from .events import EventRecorder
from .objects import MANAGER, Obj, deepcopy, deleting, meta, name_of, ns_of, uid_of, utcnow

if TYPE_CHECKING:
    from ..kubelet import Kubelet
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.volumes")

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
COMPONENT = "persistentvolume-controller"
# What GKE's default classes name as their provisioner.
DEFAULT_PROVISIONER = "pd.csi.storage.gke.io"


def volume_name(home_id: str, cluster: str, claim: Obj) -> str:
    """The Docker volume of a claim: unique per sandbox home, cluster and claim (by uid, not by name)."""
    return f"sandbox-{home_id}-{cluster}-pvc-{uid_of(claim)}"


def storage_class_of(claim: Obj, classes: Mapping[str, Obj]) -> tuple[Obj | None, str | None]:
    """The claim's StorageClass, or None and why not (None, None: no class at all)."""
    name = (claim.get("spec") or {}).get("storageClassName")
    if name:
        found = classes.get(name)
        if found is None:
            return None, f'storageclass.storage.k8s.io "{name}" not found'
        return found, None
    if name == "":
        return None, None  # explicitly no class: static binding only
    for sc in classes.values():
        if (meta(sc).get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            return sc, None
    return None, None


def is_immediate(claim: Obj, classes: Mapping[str, Obj]) -> bool:
    sc, _ = storage_class_of(claim, classes)
    return sc is None or sc.get("volumeBindingMode", "Immediate") != "WaitForFirstConsumer"


class ClaimBinder:
    """Binds claims and reclaims the volumes of deleted ones; one pass per call of :meth:`sync_all`."""

    def __init__(
        self,
        store: Store,
        kubelet: Kubelet,
        events: EventRecorder,
        cluster: str,
        node_name: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.kubelet = kubelet
        self.events = events
        self.cluster = cluster
        self.node_name = node_name
        self.clock = clock

    def classes(self) -> dict[str, Obj]:
        return {name_of(sc): sc for sc in self.store.list(STORAGECLASSES)[0]}

    def sync_all(self) -> None:
        classes = self.classes()
        claims, _ = self.store.list(PVCS)
        for claim in claims:
            if deleting(claim) or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            sc, problem = storage_class_of(claim, classes)
            if problem is not None:
                self.events.record(claim, "Warning", "ProvisioningFailed", problem, component=COMPONENT)
                continue
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                self.events.record(
                    claim,
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                    component=COMPONENT,
                )
                continue
            self._provision(claim, sc)
        self._reclaim({uid_of(c) for c in claims})

    def bind_for_pod(self, pod: Obj) -> None:
        """The scheduler placed ``pod``: provision its WaitForFirstConsumer claims now."""
        classes = self.classes()
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not name:
                continue
            claim = self.store.get(PVCS, ns_of(pod), name)
            if claim is None or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            sc, problem = storage_class_of(claim, classes)
            if problem is None:
                self._provision(claim, sc, selected_node=True)

    def claim_volumes(self, namespace: str) -> dict[str, str]:
        """Bound claim name -> Docker volume, for the pods of ``namespace``."""
        out = {}
        for claim in self.store.list(PVCS, namespace)[0]:
            if (claim.get("status") or {}).get("phase") == "Bound":
                out[name_of(claim)] = volume_name(self.kubelet.home_id, self.cluster, claim)
        return out

    def _provision(self, claim: Obj, sc: Obj | None, selected_node: bool = False) -> None:
        provisioner = str((sc or {}).get("provisioner") or DEFAULT_PROVISIONER)
        spec = claim.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        access_modes = spec.get("accessModes") or ["ReadWriteOnce"]
        pv_name = f"pvc-{uid_of(claim)}"
        docker_volume = volume_name(self.kubelet.home_id, self.cluster, claim)
        try:
            self.kubelet.ensure_volume(docker_volume, name_of(claim), ns_of(claim))
        except Exception as e:
            self.events.record(claim, "Warning", "ProvisioningFailed", str(e), component=provisioner)
            return
        pv: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
                "finalizers": ["kubernetes.io/pv-protection"],
            },
            "spec": {
                "accessModes": access_modes,
                "capacity": {"storage": storage},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "name": name_of(claim),
                    "namespace": ns_of(claim),
                    "uid": uid_of(claim),
                },
                "csi": {"driver": provisioner, "volumeHandle": docker_volume, "fsType": "ext4"},
                "persistentVolumeReclaimPolicy": str((sc or {}).get("reclaimPolicy") or "Delete"),
                "storageClassName": name_of(sc) if sc is not None else "",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
            },
            "status": {"phase": "Bound"},
        }
        if self.store.get(PVS, None, pv_name) is None:
            with contextlib.suppress(Exception):
                self.store.create(PVS, pv, manager=MANAGER)
        bound = deepcopy(claim)
        annotations: dict[str, Any] = bound["metadata"].setdefault("annotations", {}) or {}
        annotations.update(
            {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": provisioner,
                "volume.kubernetes.io/storage-provisioner": provisioner,
            }
        )
        if selected_node:
            annotations["volume.kubernetes.io/selected-node"] = self.node_name
        bound["metadata"]["annotations"] = annotations
        bound["spec"] = {**spec, "volumeName": pv_name}
        if sc is not None and not spec.get("storageClassName"):
            bound["spec"]["storageClassName"] = name_of(sc)
        try:
            bound = self.store.update(PVCS, bound, manager=MANAGER)
            bound["status"] = {
                "phase": "Bound",
                "accessModes": access_modes,
                "capacity": {"storage": storage},
            }
            self.store.update(PVCS, bound, manager=MANAGER, subresource="status")
        except Exception as e:  # stale: the next pass binds it
            log.debug("binding claim %s: %s", name_of(claim), e)
            return
        self.events.record(
            claim,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv_name}",
            component=provisioner,
        )

    def _reclaim(self, live_claims: set[str]) -> None:
        """Delete the volumes (and PersistentVolumes) of claims that are gone, when their policy says so."""
        for pv in self.store.list(PVS)[0]:
            claim_uid = ((pv.get("spec") or {}).get("claimRef") or {}).get("uid")
            if not claim_uid or claim_uid in live_claims:
                continue
            if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") != "Delete":
                if (pv.get("status") or {}).get("phase") != "Released":
                    pv["status"] = {"phase": "Released"}
                    with contextlib.suppress(Exception):
                        self.store.update(PVS, pv, manager=MANAGER, subresource="status")
                continue
            handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")
            if handle:
                try:
                    self.kubelet.docker.api.remove_volume(handle)
                except Exception as e:
                    # Still mounted by a container that is stopping: try again on the next pass.
                    if "not found" not in str(e).lower() and "no such volume" not in str(e).lower():
                        log.debug("removing volume %s: %s", handle, e)
                        continue
            released = deepcopy(pv)
            released["metadata"].pop("finalizers", None)
            with contextlib.suppress(Exception):
                self.store.update(PVS, released, manager=MANAGER)
            self.store.delete(PVS, None, name_of(pv))
