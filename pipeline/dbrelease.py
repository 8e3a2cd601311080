"""The database's part of a release, and the ``db`` commands: backup first, migrations gated, restore.

:func:`guard` looks at a prepared release before anything is written: does it change the database
workload (the PostgreSQL Deployment or its claim, from the server-side dry run) or bring migrations
(``migrations.pending``)? Would it change PostgreSQL's *major* version (refused in one line unless
``--allow-major-upgrade``: a new major version cannot read the old data directory)? The returned
:class:`Guard` then runs, in ``release.deploy``:

- ``backup`` (before the bump, so a failed backup leaves nothing written) when the release is risky;
- ``migrate`` before the apply, so the new backend rolls out only when the Job succeeded (after the
  apply on a first release, when there is no database yet to migrate before);
- on a failed migration, ``restore`` of the pre-release backup when the schema is no longer what it was
  (the schema's fingerprint before and after); the reason, and so the history, names the backup.

A release that changes neither (a new backend image without migrations) skips both at the cost of one
GET. The ``db`` tasks call :func:`backup_now`, :func:`list_backups` and :func:`restore_backup` (a
protected environment needs an approver, as for promote).

Neighbours: ``release`` (the one caller in the chain), ``database`` (dump, restore, fingerprint),
``migrations`` (the Job), ``approval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import database, gke, migrations, pin
from .approval import require_approval
from .base import Obj, Progress, first_line, quiet
from .config import Environment, Settings
from .errors import PipelineError, ReleaseRefused, StageFailed

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .kube import Kube
    from .preflight import Prepared
    from .report import Timeline


def _major(image: str) -> int | None:
    """PostgreSQL's major version from an image reference (``postgres:15-bookworm`` -> 15)."""
    tag = image.split("@", 1)[0].rpartition(":")[2] if ":" in image.split("/")[-1] else ""
    found = re.match(r"(\d+)", tag)
    return int(found.group(1)) if found else None


def _db_image(deployment: Obj | None, container: str) -> str:
    if deployment is None:
        return ""
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return next((c.get("image", "") for c in containers if c.get("name") == container), "")


@dataclass
class Guard:
    settings: Settings
    env: Environment
    kube: Kube
    prepared: Prepared
    image: str
    database_exists: bool
    reasons: tuple[str, ...]
    pending: tuple[str, ...]
    backup: database.Backup | None = None
    fingerprint: str | None = None
    _deferred: bool = field(default=False, repr=False)

    def take_backup(self, tl: Timeline) -> None:
        """The ``backup`` stage; a failure is raised as it is (nothing has been written yet)."""
        if not self.reasons or not self.database_exists:
            why = "database workload and schema unchanged" if not self.reasons else "no database yet"
            tl.skip("backup", why)
            return
        with tl.stage("backup") as detail:
            self.backup = database.backup(
                self.settings, self.env, self.kube, release=self.image, progress=tl.progress
            )
            detail.append(f"{self.backup.id} ({'; '.join(self.reasons)}), sha256 {self.backup.sha256[:12]}")

    def migrate(self, tl: Timeline) -> None:
        """The ``migrate`` stage before the apply (deferred to :meth:`after_apply` without a database)."""
        if not self.pending:
            tl.skip("migrate", "no new migrations")
            return
        if not self.database_exists:
            self._deferred = True
            return
        try:
            self.fingerprint = database.schema_fingerprint(self.settings, self.kube)
        except PipelineError as e:
            raise StageFailed("migrate", f"reading the schema before migrating: {first_line(e)}") from e
        self._run(tl)

    def after_apply(self, tl: Timeline) -> None:
        if self._deferred:
            self._deferred = False
            self._run(tl)

    def _run(self, tl: Timeline) -> None:
        with tl.stage("migrate") as detail:
            name = f"{self.settings.database.backend_deployment}-migrate-{self.prepared.pin.tag}"[:57]
            job = migrations.job_for(self.settings, self.prepared.objects, self.image, name.rstrip("-"))
            try:
                detail.append(migrations.run(self.settings, self.kube, job, progress=tl.progress))
            except PipelineError as e:
                raise StageFailed("migrate", first_line(e)) from e

    def recover(self, failure: StageFailed, tl: Timeline) -> StageFailed:
        """After a failed migration: restore the backup when the schema changed; the reason says so."""
        if failure.stage != "migrate" or self.backup is None or self.fingerprint is None:
            return failure
        why = failure.reason.rstrip(". ")
        try:
            changed = database.schema_fingerprint(self.settings, self.kube) != self.fingerprint
        except PipelineError as e:
            return StageFailed("migrate", f"{why}; schema unknown ({first_line(e)})")
        if not changed:
            return StageFailed("migrate", f"{why}; schema unchanged, backup {self.backup.id} kept")
        try:
            with tl.stage("restore") as detail:
                restored = database.restore(
                    self.settings, self.env, self.kube, self.backup.id, progress=tl.progress
                )
                detail.append(f"backup {restored.id}")
        except PipelineError as e:
            return StageFailed("migrate", f"{why}; restoring backup {self.backup.id} failed: {e}")
        return StageFailed("migrate", f"{why}; restored backup {restored.id}")


def guard(
    settings: Settings, env: Environment, kube: Kube, prepared: Prepared, dry: ApplyResult, image: str
) -> Guard:
    """What the release means for the database; refuses a major version change unless allowed."""
    db = settings.database
    namespace = settings.secret.namespace
    live = kube.get("apps/v1", "Deployment", db.deployment, namespace)
    rendered = migrations.deployment(prepared.objects, db.deployment)
    old_image, new_image = _db_image(live, db.container), _db_image(rendered, db.container)
    old_major, new_major = _major(old_image), _major(new_image)
    if (
        live is not None
        and old_major is not None
        and new_major is not None
        and old_major != new_major
        and not db.allow_major_upgrade
    ):
        raise ReleaseRefused(
            f"this release changes PostgreSQL from {old_major} to {new_major} ({old_image} -> {new_image}), "
            "whose data directory the new version cannot read",
            "Dump and restore through a new claim, or pass --allow-major-upgrade after a db.backup",
        )
    reasons: list[str] = []
    for o in dry.objects:
        if o.action == "unchanged":
            continue
        if o.kind == "Deployment" and o.name == db.deployment:
            reasons.append("database workload changes")
        elif o.kind == "PersistentVolumeClaim":
            reasons.append(f"claim {o.name} changes")
    pending: tuple[str, ...] = ()
    if prepared.changes_git:
        old = prepared.old
        old_commit = pin.source_commit(settings, old.tag) if old is not None and old.digest else None
        pending = migrations.pending(settings, old_commit, pin.source_commit(settings, prepared.pin.tag))
    if pending:
        reasons.append(f"migrations {', '.join(pending)}")
    return Guard(settings, env, kube, prepared, image, live is not None, tuple(reasons), pending)


# --- the db tasks ------------------------------------------------------------------------------------------


def backup_now(settings: Settings, env_name: str, *, progress: Progress = quiet) -> database.Backup:
    from . import kube

    env = settings.environment(env_name)
    with kube.connect(gke.environment_access(settings, env)) as cluster:
        return database.backup(settings, env, cluster, progress=progress)


def list_backups(settings: Settings, env_name: str) -> list[database.Backup]:
    return database.backups(settings, settings.environment(env_name))


def restore_backup(
    settings: Settings,
    env_name: str,
    backup_id: str,
    *,
    approved_by: str | None = None,
    progress: Progress = quiet,
) -> database.Backup:
    """Restore a backup (its checksum verified first); a protected environment needs an approver."""
    from . import kube

    env = settings.environment(env_name)
    require_approval(env, approved_by)
    with kube.connect(gke.environment_access(settings, env)) as cluster:
        return database.restore(settings, env, cluster, backup_id, progress=progress)
