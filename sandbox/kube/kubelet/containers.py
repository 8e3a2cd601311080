"""One pod's init and app containers: start, watch, kill on a failed probe or changed spec, restart.

The kubelet's ``kuberuntime_container``: a container's first start waits for its volumes and image
(``images.py``) and its configuration (``config.py``); a running one is killed when a liveness or
startup probe fails or its spec's hash changes; an exited one is recorded (``status.py`` names the
reason) and restarted as ``restartPolicy`` says, behind the crash-loop back-off (``CrashLoopBackOff``
while it runs, with the last exit kept as ``lastState.terminated``). Instances are named
``k8s_<container>_<pod>_<ns>_<uid>_<restarts>``; the previous one is kept for ``logs --previous``.

Used by the pod worker (``worker.py``), whose lock and records it shares; Docker only via ``runtime.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox.kube.resolved import ConfigError, ResolvedPod

from .clock import go_duration
from .config import container_config
from .cri import LABEL_CONTAINER_NAME, LABEL_HASH, LABEL_RESTARTS, LABEL_TYPE, Instance
from .images import ensure_image
from .probes import start_probers, stop_probers
from .runtime import RuntimeFailure
from .status import format_pod, terminated

if TYPE_CHECKING:
    from .record import ContainerRecord
    from .worker import PodWorker


def container_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def grace_seconds(pod: dict[str, Any]) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if value is None else int(value)


class ContainerRunner:
    """Brings each container of one pod to what its spec and restart policy want, one step per round."""

    def __init__(self, worker: PodWorker) -> None:
        self.worker = worker
        self.runtime = worker.runtime

    def sync(
        self,
        pod: dict[str, Any],
        resolved: ResolvedPod,
        rec: ContainerRecord,
        mounts_ready: dict[str, str | None],
    ) -> None:
        restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        if not rec.container_id:
            self.start(pod, resolved, rec, mounts_ready, restart=False)
            return
        info = self.runtime.inspect(rec.container_id)
        if info is not None and info.running:
            rec.running = True
            changed = info.spec_hash != container_hash(rec.spec)
            if changed and rec.kill_reason is None:
                rec.kill_reason = f"Container {rec.name} definition changed, will be restarted"
            if rec.kill_reason is None:
                return
            self.worker.event("Killing", rec.kill_reason, "Normal", rec.field_path)
            rec.kill_reason = None
            stop_probers(rec)
            self.runtime.stop(rec.container_id, grace_seconds(pod))
            info = self.runtime.inspect(rec.container_id, missing_ok=False)
        if not rec.exit_seen:
            self.record_exit(rec, info)
        if rec.init and rec.completed:
            return
        exit_code = (rec.terminated or {}).get("exitCode", 1)
        if restart_policy == "Never" or (restart_policy == "OnFailure" and exit_code == 0):
            rec.waiting = None
            return
        if self._backing_off(pod, rec):
            return
        assert rec.crash_backoff is not None
        rec.crash_backoff.next(rec.finished_at)
        self.start(pod, resolved, rec, mounts_ready, restart=True)

    def _backing_off(self, pod: dict[str, Any], rec: ContainerRecord) -> bool:
        """Whether the crash-loop back-off still holds the restart (then the status says CrashLoopBackOff)."""
        assert rec.crash_backoff is not None
        if not rec.crash_backoff.in_backoff_since(rec.finished_at, time.time()):
            return False
        duration = go_duration(rec.crash_backoff.duration)
        rec.waiting = (
            "CrashLoopBackOff",
            f"back-off {duration} restarting failed container={rec.name} pod={format_pod(pod)}",
        )
        if rec.backoff_event_for != rec.finished_at:
            rec.backoff_event_for = rec.finished_at
            self.worker.event(
                "BackOff",
                f"Back-off restarting failed container {rec.name} in pod {format_pod(pod)}",
                "Warning",
                rec.field_path,
            )
        return True

    def record_exit(self, rec: ContainerRecord, info: Instance | None) -> None:
        stop_probers(rec)
        rec.running, rec.ready, rec.started, rec.exit_seen = False, False, False, True
        rec.terminated, rec.finished_at = terminated(info)
        if info is not None:  # a vanished container keeps what its status said
            rec.waiting = None

    def start(
        self,
        pod: dict[str, Any],
        resolved: ResolvedPod,
        rec: ContainerRecord,
        mounts_ready: dict[str, str | None],
        restart: bool,
    ) -> None:
        w = self.worker
        for vm in rec.spec.get("volumeMounts") or []:
            if mounts_ready.get(vm["name"]):
                rec.waiting = ("ContainerCreating", "")
                return
        image_id = ensure_image(self.runtime, rec, w, w.publish)
        if image_id is None:
            return
        assert w.sandbox.id is not None  # the worker made it before any container
        try:
            config = container_config(
                pod,
                resolved,
                rec.spec,
                sandbox_id=w.sandbox.id,
                fields=w.field_values(),
                image_user=lambda: self.runtime.image(image_id).user,
                mounts=lambda: w.volumes.mounts(pod, resolved, rec.spec),
            )
        except ConfigError as e:
            rec.waiting = ("CreateContainerConfigError", str(e))
            w.event_once(f"config:{rec.name}:{e}", "Failed", f"Error: {e}", "Warning", rec.field_path)
            return
        if w.stopping.is_set():
            return
        new_count = rec.restart_count + 1 if restart else rec.restart_count
        name = f"k8s_{rec.name}_{w.name}_{w.namespace}_{w.uid}_{new_count}"
        self.runtime.remove_by_name(name)
        self.prune_old(rec)
        labels = {
            **w.labels(),
            LABEL_TYPE: "container",
            LABEL_CONTAINER_NAME: rec.name,
            LABEL_RESTARTS: str(new_count),
            LABEL_HASH: container_hash(rec.spec),
        }
        try:
            cid = self.runtime.create(image_id, name, labels, config)
        except RuntimeFailure as e:
            rec.waiting = ("CreateContainerError", str(e))
            w.event_once(f"create:{rec.name}:{e}", "Failed", f"Error: {e}", "Warning", rec.field_path)
            return
        rec.restart_count = new_count
        if restart and rec.terminated is not None:
            rec.last_terminated = rec.terminated
        rec.container_id, rec.terminated, rec.exit_seen = cid, None, False
        rec.last_error = None
        w.event("Created", f"Created container {rec.name}", "Normal", rec.field_path)
        self._run(rec, cid)

    def _run(self, rec: ContainerRecord, cid: str) -> None:
        try:
            self.runtime.start(cid)
        except RuntimeFailure as e:
            # Docker leaves the container "created" with the error in its state; the next round records
            # the exit (StartError) and backs off, as the kubelet does with a runtime start failure.
            self.worker.event("Failed", f"Error: {e}", "Warning", rec.field_path)
            info = self.runtime.inspect(cid, missing_ok=False)
            assert info is not None
            self.record_exit(rec, replace(info, error=info.error or str(e)))
            return
        self.worker.event("Started", f"Started container {rec.name}", "Normal", rec.field_path)
        self.after_start(rec, cid, adopted=False)

    def after_start(self, rec: ContainerRecord, cid: str, adopted: bool) -> None:
        info = self.runtime.inspect(cid, missing_ok=False)
        assert info is not None
        rec.running, rec.waiting, rec.terminated, rec.exit_seen = True, None, None, False
        rec.started_at = info.started_at
        if adopted:
            # An adopted container's image may be gone; its status then just lacks the id.
            with contextlib.suppress(Exception):
                rec.image_id = self.runtime.image(info.image).ref
        rec.started = "startupProbe" not in rec.spec
        rec.ready = "readinessProbe" not in rec.spec and not rec.init
        rec.kill_reason = None
        start_probers(self.worker, rec, cid)

    def prune_old(self, rec: ContainerRecord) -> None:
        """Keep the current instance (the next one's ``--previous``) and drop older ones, as the GC does."""
        for c in self.worker.existing():
            if c.kind == "container" and c.container == rec.name and c.id != rec.container_id:
                self.runtime.remove(c.id)
