"""The registry's digest for a tag, asked with one plain HTTP request to its v2 API (no Docker SDK).

Deciding "already in the registry" (an unchanged build, a release's pre-flight, the no-op check) needs one
``HEAD /v2/<repository>/manifests/<tag>``: the registry answers with ``Docker-Content-Digest``, the same
digest ``docker push`` printed and the Docker engine's distribution inspect returns. Authentication
follows the registry's challenge: HTTP Basic (the sandbox's htpasswd registry, most private ones) or a
bearer token from the realm it names (Docker Hub), with the credentials of ``[registry]``
(``DOCKERHUB_USERNAME``/``DOCKERHUB_TOKEN``) or, without them, the plain ``auths`` entry that
``docker login`` wrote to ``~/.docker/config.json``.

Anything this module cannot decide cheaply (a credential helper holds the login, a registry that speaks
neither scheme, a network error) returns :data:`UNKNOWN`, and ``build.lookup`` asks the Docker engine as
before, so the answer never depends on this shortcut. Only the standard library: importing it costs
about as much as ``ssl``. Credentials never enter a message or a log.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Final

from .config import Settings
from .errors import RegistryAuthError
from .images import DIGEST, Image, check_tag


class Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


# Not decided here: ask the Docker engine (``build.lookup``).
UNKNOWN: Final = Unknown()

TIMEOUT_SECONDS = 10.0
_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _endpoint(host: str) -> tuple[str, str]:
    """(scheme, host[:port]) of the registry's API; Docker Hub's lives at registry-1.docker.io."""
    if host in ("docker.io", "index.docker.io"):
        return "https", "registry-1.docker.io"
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    # As the Docker engine does: loopback registries are spoken to over plain HTTP.
    loopback = name in ("localhost", "::1", "[::1]") or name.startswith("127.")
    return ("http" if loopback else "https"), host


def _basic(settings: Settings) -> str | None:
    """``user:secret`` base64, from the settings or from ``docker login``'s config file; None if neither."""
    reg = settings.registry
    if reg.has_credentials:
        return base64.b64encode(f"{reg.username}:{reg.token}".encode()).decode()
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    hosts = {settings.registry.host}
    if settings.registry.host in ("docker.io", "index.docker.io"):
        hosts |= {"https://index.docker.io/v1/", "index.docker.io", "docker.io"}
    for key, entry in auths.items():
        if key in hosts and isinstance(entry, dict) and entry.get("auth"):
            return str(entry["auth"])
    return None


def _request(
    scheme: str, host: str, method: str, path: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = cls(host, timeout=TIMEOUT_SECONDS)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _bearer(challenge: str, basic: str | None, repository: str) -> str | None:
    params = dict(_CHALLENGE.findall(challenge))
    realm = params.get("realm")
    if not realm:
        return None
    query = {
        "service": params.get("service", ""),
        "scope": params.get("scope") or f"repository:{repository}:pull",
    }
    url = urllib.parse.urlsplit(realm)
    path = f"{url.path or '/'}?{urllib.parse.urlencode(query)}"
    headers = {"Authorization": f"Basic {basic}"} if basic else {}
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = cls(url.netloc, timeout=TIMEOUT_SECONDS)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None


def lookup(settings: Settings, tag: str, *, repository: str | None = None) -> Image | Unknown | None:
    """The image with this tag and its registry digest; None when the registry says it has no such tag.

    :data:`UNKNOWN` when this could not be decided with plain HTTP (then ask the Docker engine).
    """
    repo_ref = repository or settings.image_repository
    image = Image(repo_ref, check_tag(tag))
    host = settings.registry.host
    prefix = f"{host}/"
    if not repo_ref.startswith(prefix):
        return UNKNOWN
    name = repo_ref[len(prefix) :]
    if host in ("docker.io", "index.docker.io") and "/" not in name:
        name = f"library/{name}"
    scheme, api_host = _endpoint(host)
    path = f"/v2/{name}/manifests/{urllib.parse.quote(image.tag)}"
    headers = {"Accept": _ACCEPT}
    basic = _basic(settings)
    if basic and api_host != "registry-1.docker.io":
        # Private registries mostly take Basic: sent at once, it saves the 401 round trip. One that wants
        # a bearer token answers 401 with its challenge all the same.
        headers["Authorization"] = f"Basic {basic}"
    try:
        response = _request(scheme, api_host, "HEAD", path, headers)
        if response.status == 401:
            challenge = response.getheader("WWW-Authenticate") or ""
            scheme_asked = challenge.split(" ", 1)[0].lower()
            if scheme_asked == "bearer":
                token = _bearer(challenge, basic, name)
                if token is None:
                    return UNKNOWN
                headers["Authorization"] = f"Bearer {token}"
                response = _request(scheme, api_host, "HEAD", path, headers)
            elif scheme_asked == "basic" and basic and "Authorization" not in headers:
                headers["Authorization"] = f"Basic {basic}"
                response = _request(scheme, api_host, "HEAD", path, headers)
            # Else refused as it stands (Basic sent and refused, or nothing to send): judged below.
    except (OSError, http.client.HTTPException):
        return UNKNOWN  # the engine's path says what is wrong, with its own advice
    if response.status == 404:
        return None
    if response.status == 401 and settings.registry.has_credentials:
        raise RegistryAuthError(
            f"looking up {image.ref}: 401 unauthorized",
            f"Set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN, or run `docker login {host}`",
        )
    digest = response.getheader("Docker-Content-Digest") or ""
    if response.status != 200 or not DIGEST.fullmatch(digest):
        return UNKNOWN
    return Image(image.repository, image.tag, digest)
