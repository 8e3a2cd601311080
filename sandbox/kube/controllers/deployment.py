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

Neighbours: ``deployment_rs.py`` builds the ReplicaSet objects this controller writes (the new one from
the template, adoption and release); ``replicaset.py`` turns ReplicaSet sizes into pods; ``pods.py``
reports which deleted pods are still terminating (for Recreate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ...errors import SandboxError
from ..store.kinds import DEPLOYMENTS, PODS, REPLICASETS
from . import deployment_rs as drs
from . import rollout as ru
from .events import EventRecorder
from .objects import (
    MANAGER,
    Obj,
    controller_of,
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


class Requeue(SandboxError):
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
                self._update(drs.released(d, rs), REPLICASETS)
            elif ref is None and matches and not deleting(d) and not deleting(rs):
                out.append(self._update(drs.adopted(d, rs), REPLICASETS))
        return out

    def _get_all(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (maybe created) and the old ones."""
        existing = ru.find_new_rs(d, rss)
        old = [rs for rs in rss if existing is None or name_of(rs) != name_of(existing)]
        new = self._get_new(d, rss, old, existing, create)
        return new, old

    def _get_new(
        self, d: Obj, rss: list[Obj], old: list[Obj], existing: Obj | None, create: bool
    ) -> Obj | None:
        """``getNewReplicaSet``: the existing one brought up to date, or (with ``create``) a new one."""
        new_revision = ru.max_revision(old) + 1
        now = self.clock()
        if existing is not None:
            return self._sync_existing(d, rss, existing, new_revision, now)
        if not create:
            return None
        return self._create_new(d, rss, old, new_revision, now)

    def _sync_existing(self, d: Obj, rss: list[Obj], existing: Obj, new_revision: int, now: datetime) -> Obj:
        rs_copy = deepcopy(existing)
        if drs.refresh_existing(d, rs_copy, new_revision):
            updated = self._update(rs_copy, REPLICASETS)
            drs.replace_by_name(rss, updated)
            return updated
        self._set_revision(d, str((meta(rs_copy).get("annotations") or {}).get(ru.REVISION, "")))
        if (
            ru.progress_deadline(d) is not None
            and get_condition((d.get("status") or {}).get("conditions"), ru.PROGRESSING) is None
        ):
            msg = f'Found new replica set "{name_of(rs_copy)}"'
            self._write_status(d, drs.with_progressing(d, "True", ru.FOUND_NEW_RS, msg, now))
        return rs_copy

    def _create_new(self, d: Obj, rss: list[Obj], old: list[Obj], new_revision: int, now: datetime) -> Obj:
        new_rs = drs.new_replicaset(d, old, new_revision)
        created, already_exists = self._create_rs(d, new_rs, now)
        drs.replace_by_name(rss, created)
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
            msg = f'Created new replica set "{name_of(created)}"'
            self._write_status(d, drs.with_progressing(d, "True", ru.NEW_RS_CREATED, msg, now))
        return created

    def _create_rs(self, d: Obj, new_rs: Obj, now: datetime) -> tuple[Obj, bool]:
        """Create ``new_rs``; (the object, True) when this Deployment's own was already there."""
        try:
            return self.store.create(REPLICASETS, new_rs, manager=MANAGER), False
        except Exception as e:
            if type(e).__name__ != "AlreadyExists":
                message = f'Failed to create new replica set "{name_of(new_rs)}": {getattr(e, "message", e)}'
                if ru.progress_deadline(d) is not None:
                    self._write_status(d, drs.with_progressing(d, "False", ru.FAILED_RS_CREATE, message, now))
                self.events.record(d, "Warning", ru.FAILED_RS_CREATE, message, component=COMPONENT)
                raise Requeue(message) from e
            found = self.store.get(REPLICASETS, ns_of(d), name_of(new_rs))
            if found is not None and drs.is_own(d, found, new_rs["spec"]["template"]):
                return found, True
            # A different template hashed to the same name: bump collisionCount, retry next pass.
            status = deepcopy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            self._write_status(d, status)
            raise Requeue(f"hash collision on {name_of(new_rs)}") from e

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
            drs.replace_by_name(rss, updated)
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
            drs.replace_by_name(rss, new)
            if scaled:
                self._sync_rollout_status(d, [*old, new], new)
                return
        # reconcileOldReplicaSets
        by_name = {name_of(rs): rs for rs in old}
        scaled_down = False
        for step in ru.plan_old_scale_down(d, old, new):
            changed, updated = self._scale_and_record(d, by_name[step.name], step.new)
            by_name[step.name] = updated
            drs.replace_by_name(rss, updated)
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
            drs.replace_by_name(rss, updated)
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
        drs.replace_by_name(rss, new)
        if ru.deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, [*old, new], new)

    def _pods_by_rs(self, d: Obj) -> dict[str, list[Obj]]:
        """``getPodMapForDeployment``, plus pods gone from the API whose containers are still stopping."""
        pods = self.store.list(PODS, ns_of(d))[0]
        return pods_by_owner(pods, (d.get("spec") or {}).get("selector"), self.terminating())

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        for rs in ru.cleanup_candidates(d, old):
            log.info("deleting old replicaset %s/%s (revisionHistoryLimit)", ns_of(rs), name_of(rs))
            self.store.delete(REPLICASETS, ns_of(rs), name_of(rs))


def pods_by_owner(pods: list[Obj], selector: Obj | None, terminating: dict[str, int]) -> dict[str, list[Obj]]:
    """Pods the selector matches by their controller's uid; ``terminating`` (owner uid -> count) adds a
    running stand-in for each pod whose containers are still stopping."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        ref = controller_of(pod)
        if ref is not None and selector_matches(selector, labels_of(pod)):
            out.setdefault(str(ref.get("uid")), []).append(pod)
    for uid, count in terminating.items():
        out.setdefault(uid, []).extend({"status": {"phase": "Running"}} for _ in range(count))
    return out
