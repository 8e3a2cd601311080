"""What each environment runs right now: the pin in git, and the images the cluster's workloads run.

Git's side is the overlay at the GitOps remote's tip (``gitops.snapshot`` + ``overlays.read_pin``). The
cluster's side is read through ``pipeline.kube`` (reached as ``release.py`` reaches it: a kubeconfig context,
or a GKE lookup with Application Default Credentials), read-only: the Deployments whose containers run the
pinned repository. A cluster that cannot be reached is a state to show ("cluster not reachable"), never an
error: the dashboard is most useful exactly when something is wrong. Used by ``collect.py``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import gitops, gke, overlays
from ..config import Environment, Settings
from ..errors import PipelineError

if TYPE_CHECKING:
    pass

# Long enough for a slow API server, short enough that a report of an unreachable cluster comes quickly.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Workload:
    name: str  # namespace/name
    image: str
    ready: int
    replicas: int


@dataclass(frozen=True)
class Live:
    """One cluster's answer; ``error`` says why there is none when ``reachable`` is False."""

    reachable: bool
    error: str = ""
    workloads: tuple[Workload, ...] = ()

    @property
    def images(self) -> set[str]:
        return {w.image for w in self.workloads}


def pins(settings: Settings, envs: list[Environment]) -> dict[str, overlays.Pin | None]:
    """Each environment's pin at the GitOps remote's tip (one snapshot for all of them)."""
    with tempfile.TemporaryDirectory(prefix="campus-report-") as tmp:
        gitops.snapshot(settings, Path(tmp))
        found: dict[str, overlays.Pin | None] = {}
        for env in envs:
            try:
                found[env.name] = overlays.read_pin(
                    overlays.kustomization(Path(tmp) / env.overlay), settings.image.kustomize_name
                )
            except PipelineError:
                found[env.name] = None
        return found


def _runs(image: str, repository: str) -> bool:
    return image.startswith((f"{repository}:", f"{repository}@"))


def read(settings: Settings, env: Environment, repository: str) -> Live:
    """The workloads of ``env``'s cluster that run ``repository``, or why the cluster did not answer."""
    from .. import kube

    try:
        with kube.connect(
            gke.environment_access(settings, env), request_timeout=REQUEST_TIMEOUT_SECONDS
        ) as cluster:
            deployments, _ = cluster.list_objects("apps/v1", "Deployment")
    # Anything at all (no credentials, a refused token, no route, a client library's own exception) means
    # the same to a reader of the page: the cluster's side is unknown.
    except Exception as e:
        return Live(False, (str(e).strip().splitlines() or [type(e).__name__])[0][:300])
    found: list[Workload] = []
    for obj in deployments:
        meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
        for container in spec.get("template", {}).get("spec", {}).get("containers", []):
            image = str(container.get("image", ""))
            if _runs(image, repository):
                found.append(
                    Workload(
                        f"{meta.get('namespace', '')}/{meta.get('name', '')}",
                        image,
                        int(status.get("readyReplicas") or 0),
                        int(spec.get("replicas", 1)),
                    )
                )
    return Live(True, workloads=tuple(found))
