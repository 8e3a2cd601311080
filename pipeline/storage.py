"""Cloud Storage for database backups: the pipeline's only border with ``google.cloud.storage``.

A :class:`Bucket` uploads a file with its metadata, lists what is stored under a prefix, downloads and
deletes, authenticated with Application Default Credentials as ``gke`` is (the sandbox's credentials file
in tests and demos, Workload Identity Federation in GitHub Actions). An endpoint (``api_endpoint``, the
client library's own setting) points it at the sandbox's emulator. A missing bucket is created in the
environment's project on first use, so a new environment needs no hand step; uploads verify their MD5
with the service (the library does), and the caller keeps its own SHA-256 in the metadata.

Neighbours: ``database`` is the caller; the exceptions are :class:`~pipeline.errors.StorageError`. The
library is imported lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StorageError

if TYPE_CHECKING:
    from google.cloud.storage import Client

SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# Seconds per request, and for all retries of one call: a bucket that does not answer fails the backup in
# about a minute instead of the library's two.
TIMEOUT = 30.0
DEADLINE = 60.0
HINT = (
    "Check the bucket name in pipeline.toml [database] and the credentials (GOOGLE_APPLICATION_CREDENTIALS)"
)


@dataclass(frozen=True)
class Stored:
    name: str
    size: int
    updated: str
    metadata: Mapping[str, str]


def _fail(doing: str, e: Exception) -> StorageError:
    message = str(getattr(e, "message", "") or e).splitlines()[0] if str(e) else type(e).__name__
    return StorageError(f"{doing}: {message}", HINT)


class Bucket:
    def __init__(self, name: str, project: str, endpoint: str = "") -> None:
        self.name = name
        self.project = project
        self.endpoint = endpoint
        self._client: Client | None = None

    @staticmethod
    def _retry() -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(DEADLINE)

    def _bucket(self) -> Any:
        import google.auth
        from google.api_core.client_options import ClientOptions
        from google.cloud import storage

        if self._client is None:
            try:
                credentials, _ = google.auth.default(scopes=list(SCOPES))
            except google.auth.exceptions.DefaultCredentialsError as e:
                raise StorageError(
                    "no Application Default Credentials for Cloud Storage",
                    "Run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
                ) from e
            options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
            self._client = storage.Client(
                project=self.project or None, credentials=credentials, client_options=options
            )
        return self._client.bucket(self.name)

    def ensure(self) -> None:
        """Create the bucket when it does not exist yet."""
        from google.api_core import exceptions

        bucket = self._bucket()
        try:
            if not bucket.exists(timeout=TIMEOUT, retry=self._retry()):
                assert self._client is not None
                self._client.create_bucket(bucket, timeout=TIMEOUT, retry=self._retry())
        except exceptions.Conflict:
            pass  # made by someone else meanwhile
        except exceptions.GoogleAPIError as e:
            raise _fail(f"preparing bucket gs://{self.name}", e) from e

    def upload(self, name: str, path: Path, metadata: Mapping[str, str]) -> None:
        from google.api_core import exceptions

        blob = self._bucket().blob(name)
        blob.metadata = dict(metadata)
        try:
            blob.upload_from_filename(
                str(path), content_type="application/octet-stream", checksum="md5", timeout=TIMEOUT
            )
        except (exceptions.GoogleAPIError, ValueError) as e:
            raise _fail(f"uploading gs://{self.name}/{name}", e) from e

    def list(self, prefix: str) -> list[Stored]:
        from google.api_core import exceptions

        try:
            bucket = self._bucket()
            if not bucket.exists(timeout=TIMEOUT, retry=self._retry()):
                return []
            blobs = list(bucket.list_blobs(prefix=prefix, timeout=TIMEOUT, retry=self._retry()))
        except exceptions.GoogleAPIError as e:
            raise _fail(f"listing gs://{self.name}/{prefix}", e) from e
        found = []
        for blob in blobs:
            updated = blob.updated or datetime.datetime.now(datetime.UTC)
            found.append(
                Stored(blob.name, int(blob.size or 0), updated.isoformat(), dict(blob.metadata or {}))
            )
        return found

    def download(self, name: str, path: Path) -> None:
        from google.api_core import exceptions

        try:
            self._bucket().blob(name).download_to_filename(str(path), timeout=TIMEOUT, retry=self._retry())
        except exceptions.NotFound as e:
            raise StorageError(f"gs://{self.name}/{name} does not exist", "See `invoke db.backups`") from e
        except exceptions.GoogleAPIError as e:
            raise _fail(f"downloading gs://{self.name}/{name}", e) from e

    def delete(self, name: str) -> None:
        from google.api_core import exceptions

        try:
            self._bucket().blob(name).delete(timeout=TIMEOUT, retry=self._retry())
        except exceptions.NotFound:
            pass
        except exceptions.GoogleAPIError as e:
            raise _fail(f"deleting gs://{self.name}/{name}", e) from e

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
