"""The Deployment controller: ReplicaSets per pod template, rolling or recreating, and the rollout status.

The control flow is kube-controller-manager's ``syncDeployment`` step by step (the arithmetic lives in
``rollout.py``): claim the ReplicaSets the selector matches; on a paused Deployment or a scaling event
only resize (proportionally during a rollout); otherwise run the strategy:

- **RollingUpdate**: find or create the new ReplicaSet (``<deployment>-<pod-template-hash>``, revision
  ``max(old revisions) + 1``; a rollback to an earlier template reuses its ReplicaSet and moves its
  revision), grow it within ``maxSurge``, shrink old ones as new pods become available, and once complete
  delete old ReplicaSets beyond ``revisionHistoryLimit``;
- **Recreate**: scale old ReplicaSets to 0, wait until none of their pods is left (including pods whose
  containers are still being stopped), then create and scale up the new one.

Each pass writes ``status`` (with the ``Available``/``Progressing`` conditions and
``ProgressDeadlineExceeded``) only when it changed, and records ``ScalingReplicaSet`` events as
``kubectl describe deployment`` shows them. Spec writes carry the ``resourceVersion`` they were computed
from, so a concurrent ``kubectl apply`` makes this pass fail with Conflict instead of being overwritten.

Neighbours: ``replicaset.py`` turns ReplicaSet sizes into pods; ``pods.py`` reports which deleted pods are
still terminating (for Recreate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from . import rollout as ru
from .events import EventRecorder
from .objects import (
    DEPLOYMENTS,
    MANAGER,
    PODS,
    REPLICASETS,
    Obj,
    controller_of,
    controller_ref,
    deepcopy,
    deleting,
    get_condition,
    labels_of,
    meta,
    name_of,
    ns_of,
    selector_is_empty,
    selector_matches,
    uid_of,
    utcnow,
)

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("sandbox.kube.controllers.deployment")

COMPONENT = "deployment-controller"


class Requeue(Exception):
    """This pass cannot go on (a write conflicted or a name collided); the next pass starts afresh."""


class DeploymentController:
    """One level-triggered pass over every Deployment (``sync_all``), as ``syncDeployment`` for each."""

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        clock: Callable[[], datetime] = utcnow,
        terminating: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        # Owner uid -> pods deleted from the API whose containers are still stopping (from pods.py).
        self.terminating = terminating

    def sync_all(self) -> None:
        deployments, _ = self.store.list(DEPLOYMENTS)
        for d in deployments:
            try:
                self.sync(d)
            except Requeue as e:
                log.debug("deployment %s/%s requeued: %s", ns_of(d), name_of(d), e)
            except Exception:
                log.exception("syncing deployment %s/%s", ns_of(d), name_of(d))

    # --- store writes that keep the local copy current --------------------------------------------------

    def _update(self, obj: Obj, gvr: tuple[str, str, str], *, status: bool = False) -> Obj:
        try:
            return self.store.update(gvr, obj, manager=MANAGER, subresource="status" if status else None)
        except Exception as e:
            raise Requeue(f"writing {gvr[2]} {name_of(obj)}: {e}") from e

    def _write_status(self, d: Obj, status: Obj) -> None:
        wire = ru.wire_status(status)
        if wire == (d.get("status") or {}):
            return
        changed = deepcopy(d)
        changed["status"] = wire
        d.update(self._update(changed, DEPLOYMENTS, status=True))

    def _set_revision(self, d: Obj, revision: str) -> None:
        """``SetDeploymentRevision``: the Deployment's revision annotation follows its new ReplicaSet's."""
        annotations = meta(d).get("annotations") or {}
        if not revision or annotations.get(ru.REVISION) == revision:
            return
        changed = deepcopy(d)
        changed["metadata"].setdefault("annotations", {})
        changed["metadata"]["annotations"] = {**annotations, ru.REVISION: revision}
        d.update(self._update(changed, DEPLOYMENTS))

    def _scale(self, d: Obj, rs: Obj, new_size: int, direction: str | None = None) -> tuple[bool, Obj]:
        """``scaleReplicaSet``: resize (and re-annotate) one ReplicaSet; True when its size changed."""
        replicas = ru.spec_replicas(d)
        maximum = replicas + ru.max_surge(d)
        size_changes = ru.spec_replicas(rs) != new_size
        if not size_changes and not ru.replicas_annotations_need_update(rs, replicas, maximum):
            return False, rs
        old_size = ru.spec_replicas(rs)
        changed = deepcopy(rs)
        changed.setdefault("spec", {})["replicas"] = new_size
        ru.set_replicas_annotations(changed, replicas, maximum)
        updated = self._update(changed, REPLICASETS)
        if size_changes:
            op = direction or ("up" if new_size > old_size else "down")
            self.events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {op} replica set {name_of(rs)} from {old_size} to {new_size}",
                component=COMPONENT,
            )
        return size_changes, updated

    def _scale_and_record(self, d: Obj, rs: Obj, new_size: int) -> tuple[bool, Obj]:
        """``scaleReplicaSetAndRecordEvent``: nothing to do when the size is already right."""
        if ru.spec_replicas(rs) == new_size:
            return False, rs
        return self._scale(d, rs, new_size)

    # --- ReplicaSets of a Deployment --------------------------------------------------------------------

    def _claim(self, d: Obj) -> list[Obj]:
        """``getReplicaSetsForDeployment``: owned ReplicaSets that match; orphans adopted, strays released."""
        selector = (d.get("spec") or {}).get("selector")
        out: list[Obj] = []
        for rs in self.store.list(REPLICASETS, ns_of(d))[0]:
            ref = controller_of(rs)
            matches = selector_matches(selector, labels_of(rs))
            if ref is not None and ref.get("uid") == uid_of(d):
                if matches or deleting(d):
                    out.append(rs)
                    continue
                changed = deepcopy(rs)
                refs = [r for r in meta(changed).get("ownerReferences") or [] if r.get("uid") != uid_of(d)]
                changed["metadata"]["ownerReferences"] = refs
                self._update(changed, REPLICASETS)
            elif ref is None and matches and not deleting(d) and not deleting(rs):
                changed = deepcopy(rs)
                refs = [
                    *(meta(changed).get("ownerReferences") or []),
                    controller_ref(d, "apps/v1", "Deployment"),
                ]
                changed["metadata"]["ownerReferences"] = refs
                out.append(self._update(changed, REPLICASETS))
        return out

    def _replace(self, rss: list[Obj], rs: Obj) -> None:
        for i, existing in enumerate(rss):
            if name_of(existing) == name_of(rs):
                rss[i] = rs
                return
        rss.append(rs)

    def _get_all(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (maybe created) and the old ones."""
        existing = ru.find_new_rs(d, rss)
        old = [rs for rs in rss if existing is None or name_of(rs) != name_of(existing)]
        new = self._get_new(d, rss, old, existing, create)
        return new, old

    def _get_new(
        self, d: Obj, rss: list[Obj], old: list[Obj], existing: Obj | None, create: bool
    ) -> Obj | None:
        new_revision = ru.max_revision(old) + 1
        now = self.clock()
        if existing is not None:
            rs_copy = deepcopy(existing)
            annotations_updated = ru.set_new_rs_annotations(d, rs_copy, new_revision, exists=True)
            min_ready = ru.min_ready_seconds(d)
            if annotations_updated or ru.min_ready_seconds(rs_copy) != min_ready:
                rs_spec = rs_copy.setdefault("spec", {})
                if min_ready:
                    rs_spec["minReadySeconds"] = min_ready
                else:
                    rs_spec.pop("minReadySeconds", None)
                updated = self._update(rs_copy, REPLICASETS)
                self._replace(rss, updated)
                return updated
            self._set_revision(d, str((meta(rs_copy).get("annotations") or {}).get(ru.REVISION, "")))
            status = deepcopy(d.get("status") or {})
            if (
                ru.progress_deadline(d) is not None
                and get_condition((d.get("status") or {}).get("conditions"), ru.PROGRESSING) is None
            ):
                msg = f'Found new replica set "{name_of(rs_copy)}"'
                ru.set_condition(status, ru.new_condition(ru.PROGRESSING, "True", ru.FOUND_NEW_RS, msg, now))
                self._write_status(d, status)
            return rs_copy
        if not create:
            return None
        template = deepcopy((d.get("spec") or {}).get("template") or {})
        collision = (d.get("status") or {}).get("collisionCount")
        pod_hash = ru.pod_template_hash((d.get("spec") or {}).get("template") or {}, collision)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), ru.HASH_LABEL: pod_hash}
        selector = deepcopy((d.get("spec") or {}).get("selector") or {})
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
        already_exists = False
        try:
            created = self.store.create(REPLICASETS, new_rs, manager=MANAGER)
        except Exception as e:
            if type(e).__name__ != "AlreadyExists":
                message = f'Failed to create new replica set "{name_of(new_rs)}": {getattr(e, "message", e)}'
                if ru.progress_deadline(d) is not None:
                    status = deepcopy(d.get("status") or {})
                    cond = ru.new_condition(ru.PROGRESSING, "False", ru.FAILED_RS_CREATE, message, now)
                    ru.set_condition(status, cond)
                    self._write_status(d, status)
                self.events.record(d, "Warning", ru.FAILED_RS_CREATE, message, component=COMPONENT)
                raise Requeue(message) from e
            found = self.store.get(REPLICASETS, ns_of(d), name_of(new_rs))
            ref = controller_of(found) if found is not None else None
            if (
                found is not None
                and ref is not None
                and ref.get("uid") == uid_of(d)
                and ru.equal_ignore_hash((found.get("spec") or {}).get("template"), template)
            ):
                created, already_exists = found, True
            else:
                # A different template hashed to the same name: bump collisionCount, retry next pass.
                status = deepcopy(d.get("status") or {})
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                self._write_status(d, status)
                raise Requeue(f"hash collision on {name_of(new_rs)}") from e
        self._replace(rss, created)
        if not already_exists and ru.spec_replicas(created) > 0:
            self.events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name_of(created)} from 0 to {ru.spec_replicas(created)}",
                component=COMPONENT,
            )
        self._set_revision(d, str(new_revision))
        if not already_exists and ru.progress_deadline(d) is not None:
            status = deepcopy(d.get("status") or {})
            msg = f'Created new replica set "{name_of(created)}"'
            ru.set_condition(status, ru.new_condition(ru.PROGRESSING, "True", ru.NEW_RS_CREATED, msg, now))
            self._write_status(d, status)
        return created

    # --- syncDeployment ---------------------------------------------------------------------------------

    def sync(self, d: Obj) -> None:
        d = deepcopy(d)
        selector = (d.get("spec") or {}).get("selector")
        generation = int(meta(d).get("generation") or 0)
        if selector_is_empty(selector):
            self.events.record(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
                component=COMPONENT,
            )
            if ru.status_int(d, "observedGeneration") < generation:
                self._write_status(d, {**(d.get("status") or {}), "observedGeneration": generation})
            return
        rss = self._claim(d)
        if deleting(d):
            new, old = self._get_all(d, rss, create=False)
            self._write_status(d, ru.status_only(d, [*old, new], new, self.clock()))
            return
        paused_cond = ru.paused_condition(d, self.clock())
        if paused_cond is not None:
            status = deepcopy(d.get("status") or {})
            ru.set_condition(status, paused_cond)
            self._write_status(d, status)
        if ru.paused(d):
            self._sync_scale(d, rss)
            return
        new, old = self._get_all(d, rss, create=False)
        if ru.is_scaling_event(d, [*old, new]):
            self._sync_scale(d, rss)
            return
        if ru.is_rolling(d):
            self._rolling(d, rss)
        else:
            self._recreate(d, rss)

    def _sync_scale(self, d: Obj, rss: list[Obj]) -> None:
        """``sync``: resize for a scaling event (or while paused), then counts-only status."""
        new, old = self._get_all(d, rss, create=False)
        by_name = {name_of(rs): rs for rs in rss}
        plan = ru.plan_scale(d, new, old)
        to_add = sum(s.new - s.old for s in plan)
        for step in plan:
            rs = by_name[step.name]
            if step.proportional:
                # Proportional resizes re-annotate every active ReplicaSet, even one whose size stays.
                direction = "up" if to_add > 0 else "down" if to_add < 0 else None
                _, updated = self._scale(d, rs, step.new, direction)
            else:
                _, updated = self._scale_and_record(d, rs, step.new)
            self._replace(rss, updated)
        new, old = self._get_all(d, rss, create=False)
        if ru.paused(d):
            self._cleanup(d, old)
        self._write_status(d, ru.status_only(d, [*old, new], new, self.clock()))

    def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new: Obj | None) -> None:
        self._write_status(d, ru.rollout_status(d, all_rss, new, self.clock()))

    def _rolling(self, d: Obj, rss: list[Obj]) -> None:
        new, old = self._get_all(d, rss, create=True)
        assert new is not None
        all_rss: list[Obj | None] = [*old, new]
        # reconcileNewReplicaSet
        replicas = ru.spec_replicas(d)
        if ru.spec_replicas(new) != replicas:
            target = replicas if ru.spec_replicas(new) > replicas else ru.new_rs_new_replicas(d, all_rss, new)
            scaled, new = self._scale_and_record(d, new, target)
            self._replace(rss, new)
            if scaled:
                self._sync_rollout_status(d, [*old, new], new)
                return
        # reconcileOldReplicaSets
        by_name = {name_of(rs): rs for rs in old}
        scaled_down = False
        for step in ru.plan_old_scale_down(d, old, new):
            changed, updated = self._scale_and_record(d, by_name[step.name], step.new)
            by_name[step.name] = updated
            self._replace(rss, updated)
            scaled_down = scaled_down or changed
        old = [by_name.get(name_of(rs), rs) for rs in old]
        if scaled_down:
            self._sync_rollout_status(d, [*old, new], new)
            return
        if ru.deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, [*old, new], new)

    def _recreate(self, d: Obj, rss: list[Obj]) -> None:
        new, old = self._get_all(d, rss, create=False)
        scaled_down = False
        for rs in ru.active(old):
            changed, updated = self._scale_and_record(d, rs, 0)
            self._replace(rss, updated)
            scaled_down = scaled_down or changed
        new, old = self._get_all(d, rss, create=False)
        if scaled_down:
            self._sync_rollout_status(d, [*old, new], new)
            return
        if ru.old_pods_running(new, old, self._pods_by_rs(d)):
            self._sync_rollout_status(d, [*old, new], new)
            return
        if new is None:
            new, old = self._get_all(d, rss, create=True)
            assert new is not None
        _, new = self._scale_and_record(d, new, ru.spec_replicas(d))
        self._replace(rss, new)
        if ru.deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, [*old, new], new)

    def _pods_by_rs(self, d: Obj) -> dict[str, list[Obj]]:
        """``getPodMapForDeployment``, plus pods gone from the API whose containers are still stopping."""
        selector = (d.get("spec") or {}).get("selector")
        out: dict[str, list[Obj]] = {}
        for pod in self.store.list(PODS, ns_of(d))[0]:
            ref = controller_of(pod)
            if ref is not None and selector_matches(selector, labels_of(pod)):
                out.setdefault(str(ref.get("uid")), []).append(pod)
        for uid, count in self.terminating().items():
            out.setdefault(uid, []).extend({"status": {"phase": "Running"}} for _ in range(count))
        return out

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        for rs in ru.cleanup_candidates(d, old):
            log.info("deleting old replicaset %s/%s (revisionHistoryLimit)", ns_of(rs), name_of(rs))
            self.store.delete(REPLICASETS, ns_of(rs), name_of(rs))
