"""A pod's sandbox: the pause container that owns its network namespace, hostname, IP and DNS aliases.

Named ``k8s_POD_<pod>_<ns>_<uid>_<attempt>`` as dockershim named it; the pod's containers join its
namespaces, so a restarting container keeps the pod's IP. Docker fixes network aliases at connect time,
so a change of the Services selecting the pod re-connects the pause container with the same IP. When
the pause container dies, the worker (``worker.py``) kills the pod's containers and a new attempt starts.
All engine work goes through ``runtime.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cri import LABEL_ATTEMPT, LABEL_TYPE, Listed

if TYPE_CHECKING:
    from .runtime import DockerRuntime


class PodSandbox:
    """The pause container of one pod: its id (None when there is none), attempt, IP and aliases."""

    def __init__(self, runtime: DockerRuntime, namespace: str, name: str, uid: str) -> None:
        self.runtime = runtime
        self.namespace, self.name, self.uid = namespace, name, uid
        self.id: str | None = None
        self.attempt = 0
        self.aliases: tuple[str, ...] = ()
        self.ip: str | None = None

    def adopt(self, found: list[Listed]) -> bool:
        """Take over the newest running pause container among ``found``; False when there is none."""
        sandboxes = [c for c in found if c.kind == "podsandbox" and c.running]
        if not sandboxes:
            return False
        sandbox = max(sandboxes, key=lambda c: c.attempt)
        self.id = sandbox.id
        self.attempt = sandbox.attempt
        ip, aliases = self.runtime.sandbox_address(sandbox.id)
        self.ip = ip
        # Docker lists the container's short id and name among the aliases; they are not the pod's.
        self.aliases = tuple(a for a in aliases if a not in (sandbox.id[:12], self.name))
        return True

    def alive(self) -> bool:
        return self.id is not None and (info := self.runtime.inspect(self.id)) is not None and info.running

    def set_aliases(self, aliases: tuple[str, ...]) -> None:
        if aliases != self.aliases:
            assert self.id is not None
            self.runtime.reattach(self.id, aliases, self.ip)
            self.aliases = aliases

    def discard(self) -> None:
        """Remove the (dead) pause container; the next :meth:`create` is a new attempt."""
        if self.id is not None:
            self.runtime.remove(self.id)
        self.id = None
        self.attempt += 1

    def create(self, hostname: str, labels: dict[str, str], aliases: tuple[str, ...]) -> None:
        name = f"k8s_POD_{self.name}_{self.namespace}_{self.uid}_{self.attempt}"
        labels = {**labels, LABEL_TYPE: "podsandbox", LABEL_ATTEMPT: str(self.attempt)}
        self.id, self.ip = self.runtime.run_sandbox(name, hostname[:63].rstrip("-."), labels, aliases)
        self.aliases = aliases
