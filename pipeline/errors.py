"""The pipeline's one exception tree.

Every stage module raises a subclass of :class:`PipelineError` whose ``str()`` is a single line saying
what was being done, what went wrong and what to try; ``tasks.py`` prints that line and exits non-zero.
Anything that is not a ``PipelineError`` is a bug and keeps its traceback. Retryable failures derive from
:class:`TemporaryError` so callers can decide to retry without parsing messages.

Secrets never enter these messages: callers pass what was being done (an image reference, a file, a
remote) and never a token or a password.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every expected failure: ``str(e)`` is one line a user can act on."""

    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what.rstrip(". ")
        hint = hint.strip()
        self.hint = hint if not hint or hint.endswith((".", "?", "!")) else f"{hint}."
        super().__init__(self.what)

    def __str__(self) -> str:
        return f"{self.what}. {self.hint}" if self.hint else f"{self.what}."


class TemporaryError(PipelineError):
    """A failure that may pass if the same step is tried again (network, a raced push)."""


class ConfigError(PipelineError, ValueError):
    """The pipeline's configuration or a task's options are wrong."""


class SourceError(PipelineError):
    """The source tree cannot be released as it is (dirty, not a git repository)."""


class BuildError(PipelineError):
    """Building the image failed."""


class RegistryError(PipelineError):
    """Talking to the image registry failed."""


class RegistryAuthError(RegistryError, PermissionError):
    """The registry refused our credentials."""


class RegistryUnreachable(RegistryError, TemporaryError):
    """The registry (or the Docker engine) did not answer."""


class ImageNotFound(RegistryError, LookupError):
    """The image reference does not exist in the registry."""


class OverlayError(PipelineError, ValueError):
    """An overlay's kustomization cannot be read or edited."""


class GitOpsError(PipelineError):
    """Committing or pushing to the GitOps remote failed."""


class PushRejected(GitOpsError, TemporaryError):
    """The remote moved while we were committing; fetch, re-apply and retry."""


class ApprovalRequired(PipelineError, PermissionError):
    """A protected environment was asked for without an approver."""


class ValidationFailed(PipelineError):
    """Rendered manifests failed schema or lint checks; ``findings`` lists each one."""

    def __init__(self, what: str, findings: list[str], hint: str = "") -> None:
        self.findings = findings
        super().__init__(what, hint)


class RenderError(PipelineError):
    """kustomize could not render an overlay."""


class ApplyError(PipelineError):
    """Applying the overlay failed."""


class SecretEnvMissing(ApplyError, ConfigError):
    """An environment variable that a Secret key comes from is not set."""


class SmokeError(PipelineError):
    """The smoke tests cannot run as configured (e.g. the CA bundle cannot be read)."""


class StageFailed(PipelineError):
    """A stage after the bump failed (``stage`` names it, ``reason`` says why): the release rolls back."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        # Kept whole (PipelineError trims a trailing period): the reason goes verbatim into the rollback
        # commit and the history.
        self.args = (f"{stage}: {reason}",)
        self.stage = stage
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class ReleaseRefused(PipelineError):
    """A release that pre-flight will not start (a digest that already failed, nothing to promote)."""


class LeaseHeld(PipelineError):
    """Another release, promote or rollback holds the environment's Lease (and did not let go in time)."""


class LeaseLost(PipelineError):
    """Our Lease expired and another operation took it over: stop without writing anything more."""


class Interrupted(PipelineError):
    """SIGTERM or Ctrl-C arrived; raised at the next safe point (between stages, in the waits)."""

    def __init__(self, signal_name: str, what: str = "", hint: str = "") -> None:
        self.signal_name = signal_name
        super().__init__(what or f"interrupted by {signal_name}", hint)


# Cluster access, the Kubernetes API and rollouts


class GkeError(PipelineError):
    """Looking up or authenticating to a GKE cluster failed."""


class ClusterNotFound(GkeError, LookupError):
    """The Container API has no such cluster (or hides it from us)."""


class GoogleAuthError(GkeError, PermissionError):
    """Application Default Credentials are missing, expired, revoked or not allowed."""


class GkeUnreachable(GkeError, TemporaryError):
    """The Container API or Google's token endpoint did not answer; trying again may help."""


class KubeError(PipelineError):
    """Talking to the Kubernetes API server failed."""

    status: int | None = None


class KubeAuthError(KubeError, PermissionError):
    """401: the API server does not accept our credentials."""


class KubeForbidden(KubeError, PermissionError):
    """403: authenticated, but RBAC does not allow the request."""


class KubeNotFound(KubeError, LookupError):
    """404: the object (or its namespace) does not exist."""


class KubeConflict(KubeError):
    """409: a field manager conflict in server-side apply, or an object that changed under us."""

    def __init__(
        self, what: str, hint: str = "", managers: tuple[str, ...] = (), fields: tuple[str, ...] = ()
    ):
        self.managers = managers
        self.fields = fields
        super().__init__(what, hint)


class KubeInvalid(KubeError, ValueError):
    """400/422: the server rejected the object; the message is the server's."""


class KubeGone(KubeError):
    """410: a watch's resourceVersion is too old (handled inside the watch stream, which re-lists)."""


class KubeUnreachable(KubeError, TemporaryError):
    """No answer, a broken connection, or a 5xx/429: trying again may help."""


class UnknownKind(KubeError, LookupError):
    """The cluster does not serve this apiVersion/kind (a CRD not installed?)."""


class RolloutError(PipelineError):
    """The rollout could not be watched (not: the rollout failed, which is a ``RolloutResult``)."""


class StorageError(PipelineError):
    """Cloud Storage (the backups' bucket) refused or could not be reached."""


class DatabaseError(PipelineError):
    """A backup, restore or schema step in the database pod failed."""


class BackupCorrupt(DatabaseError, ValueError):
    """A stored backup's content does not match its recorded checksum: nothing was restored."""
