"""The sandbox's kubelet: runs each Pod as Docker containers on the cluster's Docker network.

The pod-lifecycle controller (``controllers/``) owns the Pod objects; it calls :meth:`Kubelet.sync_pod`
with the Pod and a :class:`~sandbox.kube.resolved.ResolvedPod` (ConfigMaps, Secrets, claims and Service
names already looked up), writes the returned ``status`` back with the status subresource, and turns
:meth:`Kubelet.drain_events` into Event objects. The proxies (``proxy.py``) reach pods on the IPs this
module reports. Nothing here reads the store.

Events are dicts, oldest first::

    {"reason": "Pulling", "message": 'Pulling image "127.0.0.1:5000/backend:sha-1a2b"',
     "type": "Normal", "fieldPath": "spec.containers{backend}", "time": "2024-05-01T12:00:00Z"}

``type`` is ``Normal`` or ``Warning``; ``fieldPath`` is the Event's ``involvedObject.fieldPath`` (empty for
pod-level events); the source is ``{"component": "kubelet", "host": node_name}``. Reasons and messages are
the kubelet's: Pulling, Pulled, Failed, BackOff, ErrImageNeverPull, Created, Started, Killing, Unhealthy,
FailedMount.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.kube.resolved import ResolvedPod

if TYPE_CHECKING:
    import docker

__all__ = ["Kubelet", "ResolvedPod"]


class Kubelet:
    """One node's kubelet for one cluster; every method is thread-safe and :meth:`sync_pod` never blocks.

    Docker work (pulls, creating and starting containers, probes) happens in one worker thread per pod;
    ``sync_pod`` hands the worker the newest Pod and ResolvedPod and returns the status the worker last
    observed, so the asyncio loop may call it directly.
    """

    def __init__(
        self,
        cluster: str,
        node_name: str,
        node_ip: str,
        docker: docker.DockerClient,
        registry_auth: dict[str, dict[str, str]],
        home: Path,
    ) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.node_ip = node_ip
        self.docker = docker
        self.registry_auth = registry_auth
        self.home = home

    def sync_pod(self, pod: dict[str, Any], resolved: ResolvedPod) -> dict[str, Any]:
        """Make the pod's containers match ``pod.spec``; returns the Pod's ``status``. Idempotent."""
        raise NotImplementedError

    def kill_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        """Stop the pod's containers (SIGTERM, SIGKILL after the grace period) and remove them. Blocks."""
        raise NotImplementedError

    def pod_logs(
        self, namespace: str, name: str, container: str, tail: int, *, previous: bool = False
    ) -> str:
        """The last ``tail`` lines of a container's output (``previous``: of the instance before)."""
        raise NotImplementedError

    def drain_events(self, namespace: str, name: str) -> list[dict[str, str]]:
        """Events produced for the pod since the last call, oldest first (shape in the module docstring)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove every container and the network this kubelet made; Docker volumes of claims stay."""
        raise NotImplementedError
