"""Backups and restores of the app's PostgreSQL, and the schema's fingerprint (the database stage).

A backup is ``pg_dump --format=custom`` run *inside* the database pod (an exec, as an operator's
``kubectl exec`` would), so it needs no network path to the database and no copy of its password: the
command line names ``$POSTGRES_PASSWORD``, which the pod's shell takes from the app's Secret, and ``ps``
on either side shows only the name. The dump streams out to a temporary file while its SHA-256 is taken,
then goes to the environment's bucket as ``<env>/<id>.dump`` with its metadata (id, time, size, checksum,
the release it preceded, the image that ran). After each backup the oldest beyond ``[database] keep`` are
deleted.

A restore downloads the dump and checks its SHA-256 *before* it touches the database; then, in one
transaction (committed only after the whole dump was read), drops the ``public`` schema and replays the
dump into it, so a restore that fails half-way leaves the database as it was. Connections of the running
backend stay open and see the restored tables when the transaction commits.

Neighbours: ``kube`` (the exec, the pod lookup), ``storage`` (the bucket); ``dbrelease`` and the ``db``
tasks call these functions. Returns data; only the command layer prints.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Progress, quiet
from .config import Environment, Settings
from .errors import BackupCorrupt, DatabaseError
from .storage import Bucket, Stored

if TYPE_CHECKING:
    from .kube import Kube

DUMP = (
    'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump --format=custom --no-owner --host=127.0.0.1 '
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB"'
)
# The dump replaces the public schema whole, in one transaction: tables a failed migration added go too.
# COMMIT is sent only after pg_restore has read the whole dump, so a broken stream rolls everything back.
RESTORE = (
    'export PGPASSWORD="$POSTGRES_PASSWORD"; '
    '{ echo "BEGIN; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"; '
    'pg_restore --no-owner --file=- && echo "COMMIT;"; } '
    "| psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --host=127.0.0.1 "
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" >/dev/null'
)
SCHEMA = (
    'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump --schema-only --no-owner --host=127.0.0.1 '
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB"'
)
SUFFIX = ".dump"


@dataclass(frozen=True)
class Backup:
    id: str
    env: str
    time: str
    size: int
    sha256: str
    # The release it preceded (an image reference), or "manual" for `invoke db.backup`.
    release: str
    # The image the database pod ran (its PostgreSQL version).
    database_image: str
    object: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bucket(settings: Settings, env: Environment) -> Bucket:
    db = settings.database
    return Bucket(db.bucket_for(env.name), env.gke_project, db.storage_endpoint)


def _pod(settings: Settings, kube: Kube) -> tuple[str, str]:
    """The running, ready database pod and its image."""
    db, namespace = settings.database, settings.secret.namespace
    deployment = kube.get("apps/v1", "Deployment", db.deployment, namespace)
    if deployment is None:
        raise DatabaseError(
            f"no Deployment {namespace}/{db.deployment} in {kube.description}", "Release the app first"
        )
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods, _ = kube.list_objects("v1", "Pod", namespace, label_selector=selector)
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        if status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp"):
            image = next(
                (c.get("image", "") for c in pod["spec"]["containers"] if c.get("name") == db.container), ""
            )
            return pod["metadata"]["name"], image
    raise DatabaseError(
        f"no ready pod of {namespace}/{db.deployment}", f"kubectl -n {namespace} get pods -l {selector}"
    )


def _exec(
    settings: Settings, kube: Kube, pod: str, script: str, doing: str, **kwargs: Any
) -> tuple[int, str]:
    result = kube.exec(
        settings.secret.namespace,
        pod,
        settings.database.container,
        ["sh", "-c", script],
        doing=doing,
        **kwargs,
    )
    return result.code, result.stderr


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _new_id() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def backup(
    settings: Settings, env: Environment, kube: Kube, *, release: str = "manual", progress: Progress = quiet
) -> Backup:
    """Dump the database, store it with its checksum, prune beyond the retention; return its record."""
    pod, image = _pod(settings, kube)
    bucket = _bucket(settings, env)
    backup_id = _new_id()
    name = f"{env.name}/{backup_id}{SUFFIX}"
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix="pipeline-backup-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:

            def write(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            progress(f"backup: pg_dump in {pod}")
            code, stderr = _exec(settings, kube, pod, DUMP, f"dumping the database in {pod}", on_stdout=write)
        if code != 0:
            raise DatabaseError(f"pg_dump in {pod} exited {code}: {_last_line(stderr)}", "See the pod's log")
        size = Path(tmp).stat().st_size
        record = Backup(
            backup_id, env.name, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), size,
            digest.hexdigest(), release, image, name,
        )  # fmt: skip
        metadata = {k: str(v) for k, v in record.to_dict().items() if k != "object"}
        progress(f"backup: {size} bytes to gs://{bucket.name}/{name}")
        bucket.ensure()
        bucket.upload(name, Path(tmp), metadata)
        _prune(bucket, env.name, settings.database.keep)
    finally:
        os.unlink(tmp)
        bucket.close()
    return record


def _record(stored: Stored) -> Backup | None:
    m = stored.metadata
    if not m.get("id") or not m.get("sha256"):
        return None  # not one of ours
    return Backup(
        m["id"], m.get("env", ""), m.get("time", stored.updated), stored.size, m["sha256"],
        m.get("release", ""), m.get("database_image", ""), stored.name,
    )  # fmt: skip


def _list(bucket: Bucket, env_name: str) -> list[Backup]:
    found = [_record(s) for s in bucket.list(f"{env_name}/") if s.name.endswith(SUFFIX)]
    return sorted((b for b in found if b is not None), key=lambda b: b.id, reverse=True)


def _prune(bucket: Bucket, env_name: str, keep: int) -> None:
    for old in _list(bucket, env_name)[keep:]:
        bucket.delete(old.object)


def backups(settings: Settings, env: Environment) -> list[Backup]:
    """The environment's backups, newest first."""
    bucket = _bucket(settings, env)
    try:
        return _list(bucket, env.name)
    finally:
        bucket.close()


def restore(
    settings: Settings, env: Environment, kube: Kube, backup_id: str, *, progress: Progress = quiet
) -> Backup:
    """Put a backup back; its checksum is verified before anything in the database changes."""
    bucket = _bucket(settings, env)
    fd, tmp = tempfile.mkstemp(prefix="pipeline-restore-", suffix=SUFFIX)
    os.close(fd)
    try:
        found = next((b for b in _list(bucket, env.name) if b.id == backup_id), None)
        if found is None:
            raise DatabaseError(
                f"no backup {backup_id!r} of {env.name} in gs://{bucket.name}",
                f"See `invoke db.backups --env {env.name}`",
            )
        bucket.download(found.object, Path(tmp))
        actual = _sha256(Path(tmp))
        if actual != found.sha256:
            raise BackupCorrupt(
                f"backup {found.id} is corrupt: sha256 {actual[:12]}… instead of {found.sha256[:12]}…; "
                "nothing was restored",
                "Restore an older backup (invoke db.backups)",
            )
        pod, _ = _pod(settings, kube)
        progress(f"restore: {found.size} bytes into {pod} (checksum verified)")
        with open(tmp, "rb") as data:
            code, stderr = _exec(
                settings, kube, pod, RESTORE, f"restoring {found.id} in {pod}", stdin=data, on_stdout=_ignore
            )
        if code != 0:
            raise DatabaseError(
                f"restoring {found.id} in {pod} failed (exit {code}): {_last_line(stderr)}; "
                "the transaction was rolled back",
                "See the message above",
            )
    finally:
        os.unlink(tmp)
        bucket.close()
    return found


def _ignore(_: bytes) -> None:
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def schema_fingerprint(settings: Settings, kube: Kube) -> str:
    """SHA-256 of the schema-only dump: equal before and after means no migration left a change."""
    pod, _ = _pod(settings, kube)
    digest = hashlib.sha256()
    on_stdout: Callable[[bytes], None] = digest.update
    code, stderr = _exec(settings, kube, pod, SCHEMA, f"reading the schema in {pod}", on_stdout=on_stdout)
    if code != 0:
        raise DatabaseError(f"pg_dump --schema-only in {pod} exited {code}: {_last_line(stderr)}", "")
    return digest.hexdigest()
