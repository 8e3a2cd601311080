"""What the pod worker and the container runtime hand each other: label names and small frozen records.

Named after Kubernetes' Container Runtime Interface, which plays this part between the kubelet and
containerd: the worker (``worker.py``, ``podsandbox.py``, ``images.py``, ``volumes.py``, ``config.py``,
``probes.py``) describes what it wants with :class:`ContainerConfig` and :class:`MountSpec` and reads the
engine's answers as :class:`Listed`, :class:`Instance` and :class:`Image`; only ``runtime.py`` turns them
into Docker calls. The labels are dockershim's ``io.kubernetes.*`` ones plus the sandbox's home and
cluster, which is how a kubelet finds its own objects again (after a restart, or to clean up).
"""

from __future__ import annotations

from dataclasses import dataclass

LABEL_HOME = "sandbox.kube/home"
LABEL_CLUSTER = "sandbox.kube/cluster"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_TYPE = "io.kubernetes.docker.type"  # "podsandbox" or "container", as dockershim labelled them
LABEL_RESTARTS = "io.kubernetes.container.restartCount"
LABEL_HASH = "io.kubernetes.container.hash"
LABEL_ATTEMPT = "io.kubernetes.sandbox.attempt"


@dataclass(frozen=True)
class Listed:
    """A container as the engine lists it: its id, our labels, and whether it runs."""

    id: str
    labels: dict[str, str]
    running: bool

    @property
    def kind(self) -> str | None:
        return self.labels.get(LABEL_TYPE)

    @property
    def container(self) -> str | None:
        return self.labels.get(LABEL_CONTAINER_NAME)

    @property
    def restarts(self) -> int:
        return int(self.labels.get(LABEL_RESTARTS, "0"))

    @property
    def attempt(self) -> int:
        return int(self.labels.get(LABEL_ATTEMPT, "0"))


@dataclass(frozen=True)
class Instance:
    """A container as the engine inspects it; times in the API's form ("" when unset)."""

    id: str
    image: str  # the id of the image it runs
    running: bool
    spec_hash: str | None  # LABEL_HASH: the container spec it was made from
    started_at: str
    finished_at: str
    finished_epoch: float
    exit_code: int
    oom_killed: bool
    error: str  # the engine's start error, "" when none


@dataclass(frozen=True)
class Image:
    """An image present on the engine: its id, the kubelet's imageID for it, size and configured user."""

    id: str
    ref: str
    size: int
    user: str


@dataclass(frozen=True)
class MountSpec:
    """One mount of a container: a bind of a host path, a Docker volume, or a tmpfs."""

    target: str
    source: str | None
    type: str  # "bind", "volume" or "tmpfs"
    read_only: bool = False
    no_copy: bool = False
    tmpfs_mode: int | None = None


@dataclass(frozen=True)
class ContainerConfig:
    """What an app container is created with; the ``None`` fields are left to the image and the engine."""

    environment: dict[str, str]
    sandbox_id: str  # the pause container whose namespaces it joins
    mounts: list[MountSpec]
    working_dir: str | None = None
    tty: bool = False
    stdin_open: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_drop: list[str] | None = None
    cap_add: list[str] | None = None
    security_opt: list[str] | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    user: str | None = None
    group_add: list[str] | None = None
    mem_limit: int | None = None
    nano_cpus: int | None = None
