"""GKE access remembered between commands, as gcloud's kubeconfig and gke-gcloud-auth-plugin's cache do.

Looking a cluster up (google-cloud-container) and getting a token (google-auth) cost most of a second
per process, more than a no-op check itself. So the first command that reaches an environment's cluster
does both through ``gke`` and keeps the endpoint, the cluster's CA and the access token with its expiry in
``.pipeline/cache/gke/`` (mode 0600; ``.pipeline/`` is never committed). Later commands read that while the
token has more than five minutes left and the credentials it came from (the file, the Container API
endpoint) are unchanged, and import no Google library at all. A cached token that the API server refuses
(a 401 invalidates it) or that runs out during a long rollout gives way to a fresh one from google-auth
(:class:`CachedToken`), and the file is dropped. An endpoint kept this way lives no longer than the token
(an hour at most), so a recreated cluster is found again within the hour. In CI every runner starts
without the file and takes the full path. Tokens never enter a message or a log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .access import Access, ClusterAccess, TokenSource
from .config import Environment, Settings

MARGIN_SECONDS = 300.0


def _credentials_file() -> Path:
    named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        return Path(named)
    config = Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    return config / "application_default_credentials.json"


def _source_key(settings: Settings) -> str:
    """What the cached token came from: the credentials file (path, size, mtime) and the Container API."""
    path = _credentials_file()
    try:
        stat = path.stat()
        described = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        described = "no credentials file"  # the metadata server's, on GCE: keyed by the endpoint alone
    text = f"{described}|{settings.release.gke_endpoint}"
    return hashlib.sha256(text.encode()).hexdigest()


def _path(settings: Settings, env: Environment) -> Path:
    name = f"{env.gke_project}.{env.gke_location}.{env.gke_cluster}.json".replace("/", "_")
    return settings.root / ".pipeline" / "cache" / "gke" / name


def _describe(env: Environment) -> str:
    return f"GKE cluster {env.gke_project}/{env.gke_location}/{env.gke_cluster}"


class CachedToken:
    """The cached token while it has time left, then google-auth's (``gke.token_source``); thread-safe."""

    def __init__(self, token: str, expires: float, describe: str, file: Path) -> None:
        self._token, self._expires, self._describe, self._file = token, expires, describe, file
        self._fresh: TokenSource | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedToken({self._describe})"

    def token(self) -> str:
        with self._lock:
            if self._fresh is None and time.time() < self._expires - MARGIN_SECONDS:
                return self._token
            if self._fresh is None:
                from . import gke

                self._fresh = gke.token_source(self._describe)
            return self._fresh.token()

    def invalidate(self) -> None:
        with self._lock:
            self._file.unlink(missing_ok=True)
            if self._fresh is None:
                self._expires = 0.0  # the next token() asks google-auth
            else:
                self._fresh.invalidate()


def access(settings: Settings, env: Environment) -> ClusterAccess | None:
    """The cluster's access from the cache, without any Google library; None when it cannot say."""
    if env.kube_context or not (env.gke_project and env.gke_location and env.gke_cluster):
        return None
    file = _path(settings, env)
    try:
        kept: dict[str, Any] = json.loads(file.read_text())
        token, expires = str(kept["token"]), float(kept["expires"])
        server, ca_pem, key = str(kept["server"]), str(kept["ca_pem"]), str(kept["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if key != _source_key(settings) or time.time() >= expires - MARGIN_SECONDS:
        return None
    describe = _describe(env)
    return ClusterAccess(describe, server, ca_pem, CachedToken(token, expires, describe, file))


def remember(settings: Settings, env: Environment, found: ClusterAccess, expires: float | None) -> None:
    """Keep ``found`` for later commands (only with a stated expiry; a failure to write is no error)."""
    if expires is None:
        return
    file = _path(settings, env)
    record = {
        "server": found.server,
        "ca_pem": found.ca_pem,
        "token": found.tokens.token(),
        "expires": expires,
        "key": _source_key(settings),
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = file.with_suffix(f".{os.getpid()}.tmp")
        # Created 0600 before the token is written into it, then renamed into place in one step.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        partial.replace(file)
    except OSError:
        return


def environment_access(settings: Settings, env: Environment) -> Access:
    """``gke.environment_access``, from the cache when it holds a live entry for ``env``."""
    cached = access(settings, env)
    if cached is not None:
        return cached
    from . import gke

    found = gke.environment_access(settings, env)
    if isinstance(found, ClusterAccess) and isinstance(found.tokens, gke.GoogleToken):
        remember(settings, env, found, found.tokens.expires())
    return found
