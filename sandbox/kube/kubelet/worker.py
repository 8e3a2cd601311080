"""The pod worker: one thread per pod that brings its sandbox, volumes and containers to the newest spec.

The kubelet's ``podWorkers`` and ``SyncPod`` in one: the facade (``kubelet.py``) hands a worker the
newest Pod and :class:`~sandbox.kube.resolved.ResolvedPod`; every half second, or when woken, the worker
adopts what a previous daemon left (once), keeps the pod's sandbox alive (``podsandbox.py``), prepares
its volumes (``volumes.py``) and syncs its init containers in order, then its app containers
(``containers.py``). Probers (``probes.py``) report back here. After each round it rebuilds the Pod's
status (``status.py``) from its records (``record.py``) and tells the facade when it changed. All
engine work goes through ``runtime.py``; this module makes no Docker call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.kube.resolved import ResolvedPod

from .clock import Backoff, now
from .containers import ContainerRunner
from .cri import LABEL_CLUSTER, LABEL_HOME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, Listed
from .podsandbox import PodSandbox
from .probes import stop_probers
from .record import ContainerRecord
from .status import Conditions, pod_status
from .volumes import PodVolumes

if TYPE_CHECKING:
    from .kubelet import Kubelet

LOG = logging.getLogger(__name__)

# How often a pod worker looks at its containers when nothing wakes it earlier.
POLL_SECONDS = 0.5


class PodWorker:
    """Owns one pod's Docker objects; a thread reconciles them with the newest spec every half second."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any], resolved: ResolvedPod) -> None:
        self.kubelet = kubelet
        self.runtime = kubelet.runtime
        meta = pod["metadata"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.uid: str = (
            meta.get("uid") or hashlib.sha256(f"{self.namespace}/{self.name}".encode()).hexdigest()[:32]
        )
        self.pod, self.resolved = pod, resolved
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.containers: dict[str, ContainerRecord] = {}
        self.sandbox = PodSandbox(self.runtime, self.namespace, self.name, self.uid)
        self.volumes = PodVolumes(self.runtime, self.pod_dir, self.namespace)
        self.runner = ContainerRunner(self)
        self.start_time = ""
        self.conditions = Conditions()
        self.status: dict[str, Any] = {}
        self.adopted = False
        self.last_sync_error = ""
        self.seen_events: set[str] = set()
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"pod-{self.namespace}/{self.name}"
        )
        self._seed_from_status(pod)
        # No notification from here: the kubelet's lock is held while a worker is made.
        self.status = self._status()

    @property
    def pod_ip(self) -> str | None:
        return self.sandbox.ip

    @property
    def pod_dir(self) -> Path:
        return self.kubelet.pods_dir / self.uid

    # Called from the kubelet -------------------------------------------------------------------------

    def update(self, pod: dict[str, Any], resolved: ResolvedPod) -> bool:
        with self.lock:
            changed = pod.get("spec") != self.pod.get("spec") or resolved != self.resolved
            self.pod, self.resolved = pod, resolved
        if changed:
            self.wake.set()
        return changed

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            copy: dict[str, Any] = json.loads(json.dumps(self.status))  # a deep copy the caller may keep
            return copy

    def stop(self, wait: float) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(wait)
        with self.lock:
            for rec in self.containers.values():
                stop_probers(rec)

    def existing(self) -> list[Listed]:
        """Every container of this pod on the engine, known to this worker or not."""
        return self.runtime.pod_containers(self.uid)

    # Called from the pod's parts (probers, the container runner, the image manager) ---------------

    def event(self, reason: str, message: str, kind: str = "Normal", field_path: str = "") -> None:
        self.kubelet._record(self.namespace, self.name, reason, message, kind, field_path)

    def event_once(self, key: str, reason: str, message: str, kind: str, field_path: str = "") -> None:
        """Repeated failures of one kind produce one event per distinct message (the recorder would count)."""
        with self.lock:
            if key in self.seen_events:
                return
            self.seen_events.add(key)
        self.event(reason, message, kind, field_path)

    def probe_result(self, rec: ContainerRecord, cid: str, kind: str, ok: bool) -> None:
        with self.lock:
            if rec.container_id != cid or not rec.running:
                return
            if kind == "readiness":
                rec.ready = ok
            elif kind == "startup" and ok:
                rec.started = True
            elif not ok:
                rec.kill_reason = f"Container {rec.name} failed {kind} probe, will be restarted"
        self.wake.set()
        self.publish()

    def labels(self) -> dict[str, str]:
        """The labels every Docker object of this pod carries."""
        return {
            LABEL_HOME: self.runtime.home_id,
            LABEL_CLUSTER: self.runtime.cluster,
            LABEL_POD_NAME: self.name,
            LABEL_POD_NAMESPACE: self.namespace,
            LABEL_POD_UID: self.uid,
        }

    def field_values(self) -> dict[str, str]:
        """The env ``fieldRef`` paths only the kubelet can fill."""
        return {
            "status.podIP": self.pod_ip or "",
            "status.podIPs": self.pod_ip or "",
            "status.hostIP": self.kubelet.node_ip,
            "status.hostIPs": self.kubelet.node_ip,
            "spec.nodeName": self.kubelet.node_name,
        }

    def publish(self) -> None:
        """Rebuild the status; tell the kubelet when it changed."""
        with self.lock:
            status = self._status()
            changed = status != self.status
            self.status = status
        if changed:
            self.kubelet._notify(self.namespace, self.name)

    # The loop ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()  # before the round, so a wake-up during it is not lost
            try:
                self._reconcile()
            except Exception as e:  # a failed round is retried; the pod must not lose its worker
                if str(e) != self.last_sync_error:  # once per distinct failure, not twice a second
                    LOG.exception("syncing pod %s/%s", self.namespace, self.name)
                self.last_sync_error = str(e)
            else:
                self.last_sync_error = ""
            self.publish()
            self.wake.wait(POLL_SECONDS)

    def _seed_from_status(self, pod: dict[str, Any]) -> None:
        """Carry restart counts over from the stored status, as after a node restart."""
        status = pod.get("status") or {}
        previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
        previous.update({c.get("name"): c for c in status.get("initContainerStatuses") or []})
        for spec, init in self._specs(pod):
            rec = self._rec(spec, init)
            old = previous.get(spec["name"]) or {}
            rec.restart_count = int(old.get("restartCount") or 0)
            rec.last_terminated = (old.get("lastState") or {}).get("terminated")
        self.start_time = status.get("startTime") or ""

    @staticmethod
    def _specs(pod: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
        spec = pod.get("spec") or {}
        return [(c, True) for c in spec.get("initContainers") or []] + [
            (c, False) for c in spec.get("containers") or []
        ]

    def _rec(self, spec: dict[str, Any], init: bool) -> ContainerRecord:
        with self.lock:  # probers and kill_pod iterate the records from other threads
            rec = self.containers.get(spec["name"])
            if rec is None:
                k = self.kubelet
                rec = ContainerRecord(spec["name"], spec, init)
                rec.crash_backoff = Backoff(k.backoff_base, k.backoff_max)
                rec.pull_backoff = Backoff(k.backoff_base, k.backoff_max)
                self.containers[spec["name"]] = rec
            rec.spec, rec.init = spec, init
            return rec

    def _reconcile(self) -> None:
        with self.lock:
            pod, resolved = self.pod, self.resolved
        if not self.adopted:
            self._adopt()
            self.adopted = True
        if not self.start_time:
            self.start_time = now()
        if not self._ensure_sandbox(pod, resolved):
            return
        mounts_ready = self.volumes.prepare(pod, resolved)
        for name, message in mounts_ready.items():
            if message is not None:
                self.event_once(f"mount:{name}:{message}", "FailedMount", message, "Warning")
        initializing = False
        for spec, init in self._specs(pod):
            if self.stopping.is_set():
                return
            rec = self._rec(spec, init)
            if not init and initializing:
                rec.waiting = ("PodInitializing", "")
                continue
            self.runner.sync(pod, resolved, rec, mounts_ready)
            if init and not rec.completed:
                initializing = True

    # Adoption and the sandbox ------------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over containers a previous daemon left running; anything else of this pod is removed."""
        found = self.existing()
        if not self.sandbox.adopt(found):
            for c in found:
                self.runtime.remove(c.id)
            return
        specs = {s["name"]: (s, init) for s, init in self._specs(self.pod)}
        newest: dict[str, Listed] = {}
        for c in found:
            name = c.container
            if c.kind != "container" or name is None or name not in specs:
                continue
            if name not in newest or c.restarts > newest[name].restarts:
                newest[name] = c
        for name, c in newest.items():
            spec, init = specs[name]
            rec = self._rec(spec, init)
            rec.container_id = c.id
            rec.restart_count = c.restarts
            if c.running:
                self.runner.after_start(rec, c.id, adopted=True)

    def _ensure_sandbox(self, pod: dict[str, Any], resolved: ResolvedPod) -> bool:
        aliases = tuple(dict.fromkeys(resolved.service_aliases))
        if self.sandbox.id:
            if self.sandbox.alive():
                self.sandbox.set_aliases(aliases)
                return True
            # The pod's network namespace is gone: as the kubelet, kill everything and start again.
            self.event("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            for rec in self.containers.values():
                if rec.container_id:
                    stop_probers(rec)
                    self.runtime.remove(rec.container_id)
                    rec.container_id, rec.running, rec.ready, rec.started = None, False, False, False
            self.sandbox.discard()
        if self.stopping.is_set():
            return False
        self.sandbox.create((pod.get("spec") or {}).get("hostname") or self.name, self.labels(), aliases)
        return True

    # Status ------------------------------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        specs = self._specs(self.pod)
        for spec, init in specs:
            self._rec(spec, init)
        return pod_status(
            self.pod,
            [self.containers[s["name"]] for s, init in specs if init],
            [self.containers[s["name"]] for s, init in specs if not init],
            self.conditions,
            node_ip=self.kubelet.node_ip,
            pod_ip=self.pod_ip,
            start_time=self.start_time,
        )
