"""The controllers that make a sandbox cluster behave like one: what kube-controller-manager, kube-scheduler,
the kubelet's API side, kube-proxy's bookkeeping and GKE's Ingress and disk provisioners do, over the store.

Entry point, for ``service.py``::

    manager = ControllerManager(cluster, store, kubelet, node=node_obj, on_routes=proxies.sync)
    await manager.start()      # returns at once; the controllers run on the current event loop
    ...
    await manager.stop()       # then kubelet.cleanup() and store.close(), which the caller owns

``node`` is the Node object to create if missing (default: one named ``kubelet.node_name`` with
``kubelet.node_ip`` as InternalIP and ExternalIP and this machine's capacity). ``on_routes`` receives a
:class:`~sandbox.kube.controllers.services.Routes` (NodePort ports and Ingress paths with their *ready*
backends, and Ingress TLS Secrets) from a worker thread whenever it changes. The manager sets
``kubelet.on_change`` (chaining any callback already there) to wake the pod pass on container changes.

Modules, one per controller, each a level-triggered pass (``sync_all``) over the store:

- ``deployment.py`` (with the pure arithmetic gathered in ``rollout.py``: ``intstr.py``, ``specs.py``,
  ``revisions.py``, ``scaling.py``, ``conditions.py``, ``rolloutstatus.py``): ReplicaSets per template,
  RollingUpdate and Recreate, revisions, rollout status and conditions, ``ScalingReplicaSet`` events;
- ``replicaset.py``: pods per ReplicaSet, adoption, deletion ranking, ReplicaSet status;
- ``jobs.py``: a Job's pods run to completion, ``Complete``/``Failed`` conditions (migration Jobs);
- ``pods.py`` (with ``scheduling.py`` and ``resolve.py``): scheduling onto the node, ConfigMap/Secret/
  claim/Service resolution for the kubelet, pod status and kubelet events, stopping deleted pods;
- ``volumes.py``: PersistentVolumeClaims bound to PersistentVolumes backed by named Docker volumes;
- ``services.py``: Endpoints, proxy routes, Ingress ``status.loadBalancer``;
- ``node.py``: the Node object and its heartbeat;
- ``events.py``: core v1 Events with client-go's deduplication (``count``);
- ``manager.py``: :class:`ControllerManager`, which runs them all; ``objects.py``: shared helpers.
"""

from .manager import ControllerManager
from .services import Routes

__all__ = ["ControllerManager", "Routes"]
