"""The sandbox's kubelet: runs each Pod as Docker containers on the cluster's Docker network.

The pod-lifecycle controller (``controllers/``) owns the Pod objects; it calls :meth:`Kubelet.sync_pod`
with the Pod and a :class:`~sandbox.kube.resolved.ResolvedPod` (ConfigMaps, Secrets, claims and Service
names already looked up), writes the returned ``status`` back with the status subresource, and turns
:meth:`Kubelet.drain_events` into Event objects. The proxies (``proxy/``) reach pods on the IPs this
kubelet reports. Nothing here reads the store.

This module is the facade: it keeps one pod worker (``worker.py``) per pod, collects their events and
kills pods; the engine is reached only through ``runtime.py``. How a pod maps onto Docker, as dockershim
did it:

- one Docker bridge network per cluster (``sandbox-<home hash>-<cluster>``, with a fixed subnet so a pod
  can be re-attached with the same IP when its Service aliases change);
- a *pause* container per pod (``k8s_POD_<pod>_<ns>_<uid>_<attempt>``) owns the network namespace, the
  hostname and the aliases; the pod's containers (``k8s_<container>_<pod>_<ns>_<uid>_<restarts>``) join it
  with ``network_mode=container:``, so a restarting container keeps the pod's IP;
- every object carries the ``io.kubernetes.*`` labels plus ``sandbox.kube/home`` and
  ``sandbox.kube/cluster``, which is how :meth:`Kubelet.cleanup` and :func:`~.runtime.remove_all` find
  them;
- claims are named Docker volumes (never removed here), emptyDirs and configMap/secret files are folders
  under ``<home>/kube/kubelet/<cluster>/pods/<uid>/`` bind-mounted into the containers.

Events are dicts, oldest first::

    {"reason": "Pulling", "message": 'Pulling image "127.0.0.1:5000/backend:sha-1a2b"',
     "type": "Normal", "fieldPath": "spec.containers{backend}", "time": "2024-05-01T12:00:00Z"}

``type`` is ``Normal`` or ``Warning``; ``fieldPath`` is the Event's ``involvedObject.fieldPath`` (empty for
pod-level events); the source is ``{"component": "kubelet", "host": node_name}``. Reasons and messages are
the kubelet's: Pulling, Pulled, Failed, BackOff, ErrImageNeverPull, Created, Started, Killing, Unhealthy,
FailedMount, SandboxChanged. A failing probe yields one ``Unhealthy`` event per failed attempt, as the real
kubelet does; the events controller is expected to aggregate equal events into ``count``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError
from sandbox.kube.resolved import ResolvedPod

from .clock import now
from .cri import Listed
from .runtime import DockerRuntime, home_hash
from .worker import PodWorker

if TYPE_CHECKING:
    from .runtime import DockerClient

LOG = logging.getLogger(__name__)


class ContainerNotFound(SandboxError, LookupError):
    """No container instance to read logs from; ``str()`` is the API server's message for a 400."""


class Kubelet:
    """One node's kubelet for one cluster; every method is thread-safe and :meth:`sync_pod` never blocks.

    Docker work (pulls, creating and starting containers, probes) happens in one worker thread per pod;
    ``sync_pod`` hands the worker the newest Pod and ResolvedPod and returns the status the worker last
    observed (the first call returns ``Pending`` with ``ContainerCreating``), so the asyncio loop may call
    it directly. ``on_change(namespace, name)`` is called from worker threads whenever a pod's status
    changed or it has new events; an asyncio caller should hop back with ``loop.call_soon_threadsafe``.

    ``backoff_base``/``backoff_max``: the crash-loop and image-pull back-off (10 s doubling to 300 s, as the
    kubelet); tests shorten them, the messages keep the kubelet's wording with the shortened durations.
    """

    def __init__(
        self,
        cluster: str,
        node_name: str,
        node_ip: str,
        docker: DockerClient,
        registry_auth: dict[str, dict[str, str]],
        home: Path,
        *,
        on_change: Callable[[str, str], None] | None = None,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.node_ip = node_ip
        self.home = Path(home)
        self.on_change = on_change
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.home_id = home_hash(self.home)
        self.runtime = DockerRuntime(docker, registry_auth, self.home_id, cluster)
        self.pods_dir = self.home / "kube" / "kubelet" / cluster / "pods"
        self._lock = threading.Lock()
        self._workers: dict[tuple[str, str], PodWorker] = {}
        self._events: dict[tuple[str, str], list[dict[str, str]]] = {}

    @property
    def docker(self) -> DockerClient:
        """The engine (the claim controller removes volumes with it; tests inspect containers)."""
        return self.runtime.docker

    @property
    def registry_auth(self) -> dict[str, dict[str, str]]:
        """Registry host -> ``{"username", "password"}``; read at each pull, so additions take effect."""
        return self.runtime.registry_auth

    @property
    def network_name(self) -> str:
        return self.runtime.network_name

    # The DESIGN.md interface -------------------------------------------------------------------------

    def sync_pod(self, pod: dict[str, Any], resolved: ResolvedPod) -> dict[str, Any]:
        """Make the pod's containers match ``pod.spec``; returns the Pod's ``status``. Idempotent."""
        meta = pod["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        replaced: PodWorker | None = None
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and meta.get("uid") and worker.uid != meta.get("uid"):
                replaced, worker = worker, None  # same name, new object: the old pod's containers go
            if worker is None:
                worker = PodWorker(self, pod, resolved)
                self._workers[key] = worker
                start = True
            else:
                start = False
        if replaced is not None:
            threading.Thread(target=self._kill_worker, args=(replaced, 0), daemon=True).start()
        if start:
            worker.thread.start()
        else:
            worker.update(pod, resolved)
        return worker.snapshot()

    def kill_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        """Stop the pod's containers (SIGTERM, SIGKILL after the grace period) and remove them. Blocks."""
        with self._lock:
            worker = self._workers.pop((namespace, name), None)
        if worker is not None:
            self._kill_worker(worker, grace_seconds)
        # Containers of this pod that no worker knows (a daemon that died mid-way) go too.
        self._stop_and_remove(namespace, name, self.runtime.named_containers(namespace, name), grace_seconds)

    def pod_logs(
        self, namespace: str, name: str, container: str, tail: int, *, previous: bool = False
    ) -> str:
        """The last ``tail`` lines (all when negative) of a container's output, stdout and stderr merged.

        ``previous``: of the instance before the current one, as ``kubectl logs --previous``. Raises
        :class:`ContainerNotFound` with the API server's message when there is no such instance.
        """
        found = self.runtime.named_containers(namespace, name, container)
        found.sort(key=lambda c: c.restarts, reverse=True)
        index = 1 if previous else 0
        if len(found) <= index:
            if previous:
                raise ContainerNotFound(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            raise ContainerNotFound(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        return self.runtime.logs(found[index].id, tail)

    def running_container(self, namespace: str, name: str, container: str) -> str | None:
        """The Docker id of the container's running instance (what ``exec`` enters), or None."""
        found = self.runtime.named_containers(namespace, name, container)
        found = [c for c in found if c.running and c.kind == "container"]
        found.sort(key=lambda c: c.restarts, reverse=True)
        return found[0].id if found else None

    def drain_events(self, namespace: str, name: str) -> list[dict[str, str]]:
        """Events produced for the pod since the last call, oldest first (shape in the module docstring)."""
        with self._lock:
            return self._events.pop((namespace, name), [])

    def cleanup(self) -> None:
        """Remove every container and the network this kubelet made; Docker volumes of claims stay."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop(wait=5)
        self.runtime.remove_cluster()
        # emptyDirs and configMap files die with the pods, as on a node that restarts.
        shutil.rmtree(self.pods_dir, ignore_errors=True)

    # Helpers for the workers and the controllers -----------------------------------------------------

    def pod_ip(self, namespace: str, name: str) -> str | None:
        with self._lock:
            worker = self._workers.get((namespace, name))
        return worker.pod_ip if worker else None

    def ensure_volume(self, volume: str, claim: str, namespace: str) -> None:
        """A claim's Docker volume (the PVC controller binds claims to these); see the runtime's."""
        self.runtime.ensure_volume(volume, claim, namespace)

    def _record(
        self, namespace: str, name: str, reason: str, message: str, kind: str, field_path: str
    ) -> None:
        event = {"reason": reason, "message": message, "type": kind, "fieldPath": field_path, "time": now()}
        with self._lock:
            self._events.setdefault((namespace, name), []).append(event)
        self._notify(namespace, name)

    def _notify(self, namespace: str, name: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(namespace, name)
            except Exception:  # the controller's callback must not kill a pod worker
                LOG.exception("on_change callback for %s/%s", namespace, name)

    def _kill_worker(self, worker: PodWorker, grace_seconds: int) -> None:
        worker.stop(wait=30)
        self._stop_and_remove(worker.namespace, worker.name, worker.existing(), grace_seconds)
        shutil.rmtree(worker.pod_dir, ignore_errors=True)

    def _stop_and_remove(self, namespace: str, name: str, found: list[Listed], grace_seconds: int) -> None:
        running = [c for c in found if c.kind == "container" and c.running]

        def stop(c: Listed) -> None:
            container = c.container or ""
            field_path = f"spec.containers{{{container}}}"
            self._record(namespace, name, "Killing", f"Stopping container {container}", "Normal", field_path)
            # Docker sends the image's stop signal (SIGTERM unless it says otherwise), SIGKILL after.
            self.runtime.stop(c.id, max(0, int(grace_seconds)), quiet=True)

        threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join(grace_seconds + 30)
        for c in found:
            self.runtime.remove(c.id)
