"""The database's settings (``[database]`` in ``pipeline.toml``): where backups go, how many are kept, and
which workload and migrations the release guards.

Checked by ``configschema`` (``DatabaseTable``), read by ``config.load`` into
:attr:`~pipeline.config.Settings.database`; ``PIPELINE_STORAGE_ENDPOINT`` overrides the Cloud Storage
endpoint (the sandbox's emulator), as ``PIPELINE_GKE_ENDPOINT`` does for the Container API.
Task options (``--allow-major-upgrade``) are applied with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DatabaseSettings:
    # The PostgreSQL workload of manifests/ (one replica on its claim) and its container.
    deployment: str = "db-core-deployment"
    container: str = "db-core"
    # The backend Deployment whose image carries the migrations (`/backend migrate up`).
    backend_deployment: str = "backend-core-deployment"
    # One bucket per environment, as each environment is its own GCP project; `{env}` is its name.
    bucket: str = "campus-{env}-db-backups"
    # Backups kept per environment; older ones are deleted after each new backup. Two weeks of a daily
    # backup plus the ones releases take, for a 7 day event with margin.
    keep: int = 20
    # The migrations in the source tree; a release whose tree adds files here runs the migration Job.
    migrations: str = "backend/migrations"
    # A migration Job that takes longer than this fails the release (and is rolled back).
    migrate_timeout: float = 300.0
    # Cloud Storage's JSON API endpoint; empty for Google's. The sandbox exports PIPELINE_STORAGE_ENDPOINT.
    storage_endpoint: str = ""
    # A release that changes PostgreSQL's major version is refused unless this is set (a task option):
    # a new major version cannot read the old data directory.
    allow_major_upgrade: bool = False

    def bucket_for(self, env: str) -> str:
        return self.bucket.replace("{env}", env)


def database_settings(values: Mapping[str, Any], storage_endpoint: str = "") -> DatabaseSettings:
    """From the checked ``[database]`` table (``configschema``) and ``PIPELINE_STORAGE_ENDPOINT``."""
    settings = DatabaseSettings(**values)
    return replace(settings, storage_endpoint=storage_endpoint or settings.storage_endpoint)
