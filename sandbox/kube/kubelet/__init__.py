"""The sandbox's kubelet, as a package: one facade and the concerns it is made of.

- ``kubelet.py``: :class:`Kubelet`, the interface sandbox/DESIGN.md documents (sync_pod, kill_pod,
  pod_logs, drain_events, cleanup), one worker per pod;
- ``worker.py``: the pod state machine (adoption, sandbox, volumes, containers, status, each round);
- ``podsandbox.py``, ``containers.py``, ``images.py``, ``volumes.py``, ``config.py``: the pause container,
  container lifecycle with crash-loop back-off, image pulls with their back-off, volumes on the node,
  and a container's create configuration;
- ``probes.py``: readiness, liveness and startup probes; ``status.py``: the Pod status and its reasons;
- ``runtime.py``: the only module that talks to Docker, through the records of ``cri.py``;
- ``record.py`` (the container record) and ``clock.py`` (times, durations, back-off) under them all.

Users: the controllers (``controllers/``: pods, volumes, manager), ``service.py`` and ``control.py``, and
the tests; they import from this package, which re-exports what they use.
"""

from __future__ import annotations

from sandbox.kube.resolved import ResolvedPod

from .clock import go_duration
from .config import expand, parse_quantity
from .cri import LABEL_CLUSTER, LABEL_HOME
from .images import default_pull_policy, registry_host, split_image
from .kubelet import ContainerNotFound, Kubelet
from .runtime import home_hash, remove_all

__all__ = [
    "LABEL_CLUSTER",
    "LABEL_HOME",
    "ContainerNotFound",
    "Kubelet",
    "ResolvedPod",
    "default_pull_policy",
    "expand",
    "go_duration",
    "home_hash",
    "parse_quantity",
    "registry_host",
    "remove_all",
    "split_image",
]
