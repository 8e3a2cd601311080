"""What the API knows about a Pod and Docker does not, handed from the controllers to the kubelet.

The pod-lifecycle controller (``controllers/``) reads ConfigMaps, Secrets, PersistentVolumeClaims and
Services from the store and fills a :class:`ResolvedPod`; the kubelet (``kubelet/``) never reads the
store. Keeping the lookups on the controller side means the kubelet only deals with Docker, and the
``CreateContainerConfigError`` messages come from the one place that knows why a lookup failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.errors import SandboxError


class ConfigError(SandboxError):
    """A container cannot be configured; the message becomes its ``CreateContainerConfigError``'s.

    Raised on both sides of :class:`ResolvedPod`: by the controllers' lookups (``controllers/resolve.py``,
    which keeps the message in ``config_errors``) and by the kubelet's own checks (``kubelet/config.py``).
    """


@dataclass(frozen=True)
class ResolvedPod:
    """The store's answers for one Pod, recomputed by the controller before each ``Kubelet.sync_pod``.

    ``env``: container name -> environment in the order Kubernetes builds it (``envFrom`` sources first,
    then ``env`` entries, a later name replacing an earlier one), with ``value``, ``configMapKeyRef``,
    ``secretKeyRef`` and ``fieldRef`` to ``metadata.*``/``spec.*`` resolved to strings. ``$(VAR)``
    references are *not* expanded: the kubelet expands them (in env values, ``command`` and ``args``) as
    the real kubelet does, and fills the ``fieldRef``s only it knows (``status.podIP``, ``status.podIPs``,
    ``status.hostIP``, ``status.hostIPs``). A container missing from ``env`` gets the literal ``value``
    entries of its spec only. Secret values are plain text here (already base64-decoded).

    ``config_error``: set when the environment cannot be built, with the message Kubernetes uses, e.g.
    ``configmap "app-config" not found``, ``secret "db" not found`` or
    ``couldn't find key DB_HOST in ConfigMap staging/app-config``. Every container then waits with reason
    ``CreateContainerConfigError`` and this message (and a ``Failed`` event ``Error: <message>``).
    ``config_errors`` does the same for single containers (container name -> message) and wins over
    ``config_error`` for that container.

    ``volumes``: PersistentVolumeClaim name -> Docker volume name (the PVC controller's volume, which
    outlives pods). A claim missing here leaves the pod waiting in ``ContainerCreating`` with a
    ``FailedMount`` event, as an unbound claim does.

    ``volume_files``: pod volume name (``spec.volumes[].name``) of a ``configMap``/``secret``/``projected``
    volume -> {relative file path -> content}, after ``items``/``key``/``path`` mapping. The kubelet writes
    them under the sandbox home and bind-mounts the folder read-only, rewriting files when the content
    changes. A volume missing here is mounted empty when the source is ``optional`` and otherwise keeps
    the pod in ``ContainerCreating`` with ``FailedMount`` (``volume_errors`` gives the message).

    ``volume_errors``: pod volume name -> message for a ``FailedMount`` event, e.g.
    ``MountVolume.SetUp failed for volume "config" : configmap "app-config" not found``.

    ``service_aliases``: DNS names that should resolve to this pod on the cluster's Docker network (the
    Services selecting it: ``db-core``, ``db-core.staging``, ``db-core.staging.svc``,
    ``db-core.staging.svc.cluster.local``). They become Docker network aliases of the pod's sandbox
    container, so Docker's embedded DNS answers them; a change re-attaches the sandbox with the same IP.
    """

    env: dict[str, dict[str, str]] = field(default_factory=dict)
    config_error: str | None = None
    config_errors: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    volume_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    volume_errors: dict[str, str] = field(default_factory=dict)
    service_aliases: tuple[str, ...] = ()

    def error_for(self, container: str) -> str | None:
        """The ``CreateContainerConfigError`` message for one container, if any."""
        return self.config_errors.get(container) or self.config_error
