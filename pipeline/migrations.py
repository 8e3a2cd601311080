"""Schema migrations as a gated step: which ones a release brings, and the Job that runs them.

A release brings migrations when the source tree of its image has files under ``[database] migrations``
that the tree of the release it replaces did not have (``git ls-tree`` of both source commits; an unknown
commit counts as "all of them", the safe side). They run as a Kubernetes Job of the *new* image
(``/backend migrate up``, Argo CD's PreSync model) with the backend's own environment (its ConfigMap and
Secret), before the new backend rolls out; the release waits for the Job's ``Complete`` condition and
stops on ``Failed``, with the pod's last log line as the reason. The Job is not part of the ApplySet, so
a later apply never prunes it; older migration Jobs are deleted when a new one starts.

Neighbours: ``dbrelease`` decides when to run it and restores the backup when it fails; ``kube`` creates
and watches the Job.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import gitops
from .base import Obj, Progress, quiet
from .config import Settings
from .errors import DatabaseError, PipelineError

if TYPE_CHECKING:
    from .kube import Kube

COMPONENT = "migration"
LABEL = "app.kubernetes.io/component"
POLL_SECONDS = 0.5


def files_at(settings: Settings, commit: str | None) -> frozenset[str] | None:
    """The migration files at a source commit; None when the commit is not known here."""
    if not commit or commit == "unknown":
        return None
    folder = settings.database.migrations.rstrip("/") + "/"
    paths = gitops.files_at(settings.root, commit, folder)
    if paths is None:
        return None
    return frozenset(path.rsplit("/", 1)[-1] for path in paths if path.endswith(".sql"))


def pending(settings: Settings, old_commit: str | None, new_commit: str | None) -> tuple[str, ...]:
    """Migration files the new source tree adds to the old one (all of them when either is unknown)."""
    new = files_at(settings, new_commit)
    if new is None:
        return ("(unknown source tree: all)",)
    old = files_at(settings, old_commit) if old_commit else frozenset()
    return tuple(sorted(new - (old or frozenset())))


def deployment(objects: list[Obj], name: str) -> Obj | None:
    """The rendered Deployment of this name."""
    return next((o for o in objects if o.get("kind") == "Deployment" and o["metadata"]["name"] == name), None)


def job_for(settings: Settings, objects: list[Obj], image: str, name: str) -> Obj:
    """The migration Job: the backend Deployment's pod (image, environment, security), ``migrate up``."""
    db = settings.database
    backend = deployment(objects, db.backend_deployment)
    if backend is None:
        raise DatabaseError(f"the overlay has no Deployment {db.backend_deployment}", "Check [database]")
    pod = backend["spec"]["template"]["spec"]
    container = pod["containers"][0]
    migrate: Obj = {
        "name": "migrate",
        "image": image,
        "args": ["migrate", "up"],
        **{k: container[k] for k in ("env", "envFrom", "securityContext", "resources") if k in container},
    }
    labels = {**(backend["metadata"].get("labels") or {}), LABEL: COMPONENT}
    labels.pop("app", None)
    spec: Obj = {"restartPolicy": "Never", "containers": [migrate]}
    if "securityContext" in pod:
        spec["securityContext"] = pod["securityContext"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": backend["metadata"]["namespace"], "labels": labels},
        "spec": {
            # One attempt: a migration that failed is a failed release, not something to retry blindly.
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(db.migrate_timeout),
            "template": {"metadata": {"labels": {LABEL: COMPONENT}}, "spec": spec},
        },
    }


def run(settings: Settings, kube: Kube, job: Obj, *, progress: Progress = quiet) -> str:
    """Create the Job, wait for it; its last log line on success, :class:`DatabaseError` on failure."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    old, _ = kube.list_objects("batch/v1", "Job", namespace, label_selector=f"{LABEL}={COMPONENT}")
    for finished in old:
        kube.delete("batch/v1", "Job", finished["metadata"]["name"], namespace)
    kube.server_side_apply(job, field_manager=settings.release.field_manager, force=True)
    progress(f"migrate: Job {name} started")
    deadline = time.monotonic() + settings.database.migrate_timeout + 30
    while True:
        live = kube.get("batch/v1", "Job", name, namespace) or {}
        conditions = {c.get("type"): c for c in (live.get("status") or {}).get("conditions") or []}
        if (conditions.get("Complete") or {}).get("status") == "True":
            return _last_log(kube, namespace, name) or "migrations applied"
        failed = conditions.get("Failed") or {}
        if failed.get("status") == "True":
            why = _last_log(kube, namespace, name) or failed.get("message") or "the Job failed"
            raise DatabaseError(
                f"migration Job {name} failed: {why}", f"kubectl -n {namespace} logs job/{name}"
            )
        if time.monotonic() > deadline:
            raise DatabaseError(f"migration Job {name} did not finish in time", "See its pod's log")
        time.sleep(POLL_SECONDS)


def _last_log(kube: Kube, namespace: str, job: str) -> str:
    try:
        pods, _ = kube.list_objects("v1", "Pod", namespace, label_selector=f"job-name={job}")
        if not pods:
            return ""
        lines = kube.pod_logs(namespace, pods[-1]["metadata"]["name"], "migrate", tail=3)
    except PipelineError:
        return ""
    return lines[-1].strip() if lines else ""
