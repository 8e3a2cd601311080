"""The `invoke db.*` tasks: back up, list and restore the app's PostgreSQL (wiring; see pipeline/dbrelease).

Kept beside `tasks.py` (which adds this collection, as it does the sandbox's) so that the command layer
stays one small module per concern. Expected failures print one line and exit 1.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

if TYPE_CHECKING:
    from pipeline.config import Settings


MAJOR_UPGRADE_HELP = {"allow-major-upgrade": "accept a release that changes PostgreSQL's major version"}


def major_upgrade(settings: Settings, allow: bool) -> Settings:
    """`release --allow-major-upgrade`: the task option, layered over pipeline.toml."""
    if not allow:
        return settings
    database = dataclasses.replace(settings.database, allow_major_upgrade=True)
    return dataclasses.replace(settings, database=database)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


@task(help={"env": "environment whose database to back up", "json": "print the backup's record as JSON"})
def backup(c: Context, env: str = "staging", json_: bool = False) -> None:
    """Dump the environment's database (pg_dump in its pod) to the backups bucket, with a SHA-256."""
    from pipeline import dbrelease
    from tasks import _errors, _progress, _settings

    with _errors():
        settings = _settings(c)
        with _progress(f"backing up {env}") as progress:
            made = dbrelease.backup_now(settings, env, progress=progress)
    if json_:
        print(json.dumps(made.to_dict()))
        return
    print(f"{env}: backup {made.id} ({_size(made.size)}, sha256 {made.sha256}) in {made.object}")


@task(help={"env": "environment whose backups to list", "json": "print them as a JSON array"})
def backups(c: Context, env: str = "staging", json_: bool = False) -> None:
    """List the environment's database backups, newest first: id, time, size, release, checksum."""
    from pipeline import dbrelease
    from tasks import _errors, _settings

    with _errors():
        found = dbrelease.list_backups(_settings(c), env)
    if json_:
        print(json.dumps([b.to_dict() for b in found]))
        return
    if not found:
        print(f"{env}: no backups yet (invoke db.backup --env {env})")
    for b in found:
        print(f"{b.id}  {b.time}  {_size(b.size):>9}  sha256:{b.sha256}  before {b.release}")


@task(
    help={
        "env": "environment whose database to restore",
        "backup": "id of the backup to restore (see db.backups)",
        "approved-by": "approver's name; required for protected environments such as prod",
    }
)
def restore(c: Context, backup: str, env: str = "staging", approved_by: str | None = None) -> None:
    """Restore a backup into the environment's database, after verifying its checksum (prod: approval)."""
    from pipeline import dbrelease
    from tasks import _approver, _errors, _progress, _settings

    with _errors():
        settings = _settings(c)
        approver = _approver(settings, env, approved_by)
        with _progress(f"restoring {env}") as progress:
            done = dbrelease.restore_backup(settings, env, backup, approved_by=approver, progress=progress)
    print(f"{env}: restored backup {done.id} (sha256 {done.sha256} verified)")


db = Collection("db", backup, backups, restore)
