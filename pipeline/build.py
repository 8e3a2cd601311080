"""Build stage: build the backend image with the Docker engine and push it to the registry.

The only module that imports the ``docker`` SDK. It turns a source commit into a pushed, digest-resolved
:class:`Image`; an image whose tag already exists in the registry is neither rebuilt nor pushed, which is
what makes a repeated release cheap. Neighbours: ``gitops.source_state`` says which commit is built (and
whether the tree is dirty); ``release.py`` hands the :class:`Image` to ``overlays``/``gitops``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Progress, first_line, quiet
from .config import Settings
from .errors import (
    BuildError,
    ImageNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
)
from .images import DIGEST, Image, check_tag
from .retries import retrying

__all__ = ["BuildResult", "Image", "build", "lookup"]

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True)
class BuildResult:
    image: Image
    built: bool
    pushed: bool
    # Why nothing was built, for the summary ("already in the registry").
    skipped: str = ""


def _client() -> docker.DockerClient:
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as e:
        raise BuildError(
            "cannot reach the Docker engine", "Start Docker (or set DOCKER_HOST) and try again"
        ) from e
    return client


def _auth(settings: Settings) -> dict[str, str] | None:
    # Without explicit credentials the engine falls back to ~/.docker/config.json (`docker login`).
    if settings.registry.has_credentials:
        assert settings.registry.username and settings.registry.token
        return {"username": settings.registry.username, "password": settings.registry.token}
    return None


def _login_hint(settings: Settings) -> str:
    return f"Set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN, or run `docker login {settings.registry.host}`"


# How the engine reports a registry's 5xx, 429 and timeouts: trouble that passes, so it is retried.
_SERVER_TROUBLE = (
    "status: 500",
    "status: 502",
    "status: 503",
    "status: 504",
    "status: 429",
    "service unavailable",
    "toomanyrequests",
    "timeout",
)


def _registry_host(settings: Settings, repository: str) -> str:
    """The registry a repository lives in: its first part (``--image`` may name another registry)."""
    first = repository.split("/")[0]
    return first if "/" in repository and ("." in first or ":" in first) else settings.registry.host


def _registry_error(doing: str, message: str, settings: Settings, repository: str = "") -> RegistryError:
    """Translate the engine's registry errors into ours; the message never contains credentials."""
    text = message.lower()
    first = first_line(message, 200)
    host = _registry_host(settings, repository or settings.image_repository)
    ours = host == settings.registry.host
    if any(s in text for s in ("unauthorized", "authentication required", "no basic auth", "denied")):
        hint = _login_hint(settings) if ours else f"Run `docker login {host}`"
        return RegistryAuthError(f"{doing}: 401 unauthorized", hint)
    if any(s in text for s in ("connection refused", "no such host", "i/o timeout", "dial tcp", "eof")):
        hint = "Check PIPELINE_REGISTRY and that the registry is up (for the sandbox: invoke sandbox.up)"
        return RegistryUnreachable(
            f"{doing}: registry {host} unreachable ({first})",
            hint if ours else f"Check the registry host in the image reference ({host})",
        )
    if any(s in text for s in _SERVER_TROUBLE):
        return RegistryUnreachable(
            f"{doing}: registry {host} kept failing ({first})",
            "The registry is having trouble; try again in a few minutes",
        )
    if any(s in text for s in ("manifest unknown", "not found", "name unknown")):
        return ImageNotFound(f"{doing}: not found in {host}", "Build and push it first")
    return RegistryError(f"{doing}: {first}", "Check the registry and try again")


def lookup(
    settings: Settings, tag: str, client: docker.DockerClient | None = None, *, repository: str | None = None
) -> Image | None:
    """The image with this tag as the registry has it (digest included), or None when it is absent.

    One plain HTTP request to the registry (``registry.lookup``) when that can decide; else the engine.
    """
    if client is None:
        from . import registry

        answer = registry.lookup(settings, tag, repository=repository)
        if not isinstance(answer, registry.Unknown):
            return answer
    import docker

    client = client or _client()
    image = Image(repository or settings.image_repository, check_tag(tag))
    # Our registry's credentials go to our registry only, never to a host named in --image.
    ours = _registry_host(settings, image.repository) == settings.registry.host

    def inspect() -> Any:
        try:
            return client.api.inspect_distribution(image.ref, auth_config=_auth(settings) if ours else None)
        except docker.errors.APIError as e:
            error = _registry_error(
                f"looking up {image.ref}", str(e.explanation or e), settings, image.repository
            )
            if isinstance(error, ImageNotFound):
                return None
            raise error from None

    found = retrying(f"looking up {image.ref}")(inspect)
    if found is None:
        return None
    return Image(image.repository, image.tag, found["Descriptor"]["digest"])


def _events(stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for event in stream:
        if "error" in event:
            raise _StreamError(event.get("errorDetail", {}).get("message") or event["error"])
        yield event


class _StreamError(Exception):
    pass


def _prebuild(settings: Settings, context: Path, commit: str, progress: Progress) -> None:
    if not settings.image.prebuild:
        return
    progress(f"prebuild: {' '.join(settings.image.prebuild)}")
    env = {**os.environ, "SOURCE_COMMIT": commit}
    proc = subprocess.run(
        list(settings.image.prebuild), cwd=context, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BuildError(
            f"prebuild `{' '.join(settings.image.prebuild)}` failed in {context} ({last[0]})",
            "Fix the build script or [image] prebuild in pipeline.toml",
        )


def _build(
    client: docker.DockerClient, settings: Settings, image: Image, commit: str, progress: Progress
) -> None:
    import docker

    context = settings.root / settings.image.context
    dockerfile = context / settings.image.dockerfile
    if not dockerfile.is_file():
        raise BuildError(
            f"no Dockerfile at {dockerfile}", "Set [image] context and dockerfile in pipeline.toml"
        )
    _prebuild(settings, context, commit, progress)
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=settings.image.dockerfile,
            tag=image.ref,
            buildargs={"SOURCE_COMMIT": commit},
            labels={"org.opencontainers.image.revision": commit},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for event in _events(stream):
            line = str(event.get("stream", "")).strip()
            if line:
                progress(line)
    except (_StreamError, docker.errors.APIError) as e:
        raise BuildError(
            f"building {image.ref} failed: {str(e).strip()[:300]}", "Fix the Dockerfile"
        ) from None


def _push(client: docker.DockerClient, settings: Settings, image: Image, progress: Progress) -> str:
    # A retried push sends only the layers the registry does not have yet.
    return retrying(f"pushing {image.ref}")(_push_once, client, settings, image, progress)


def _push_once(client: docker.DockerClient, settings: Settings, image: Image, progress: Progress) -> str:
    import docker

    digest = ""
    try:
        stream = client.api.push(
            image.repository, tag=image.tag, auth_config=_auth(settings), stream=True, decode=True
        )
        for event in _events(stream):
            if "aux" in event and "Digest" in event["aux"]:
                digest = event["aux"]["Digest"]
            elif event.get("status") and not event.get("progressDetail"):
                progress(f"{event.get('id', '')} {event['status']}".strip())
    except _StreamError as e:
        raise _registry_error(f"pushing {image.ref}", str(e), settings) from None
    except docker.errors.APIError as e:
        raise _registry_error(f"pushing {image.ref}", str(e.explanation or e), settings) from None
    if not DIGEST.fullmatch(digest):
        raise RegistryError(f"pushing {image.ref}: the registry returned no digest", "Try again")
    return digest


def build(
    settings: Settings,
    commit: str,
    tag: str,
    *,
    push: bool,
    force: bool = False,
    progress: Progress = quiet,
) -> BuildResult:
    """Build ``commit``'s image as ``tag`` and (with ``push``) push it, unless the registry already has it."""
    image = Image(settings.image_repository, check_tag(tag))
    if not force:
        # Without a client: the registry is asked over plain HTTP, so a skip never starts the Docker SDK.
        existing = lookup(settings, tag)
        if existing is not None:
            return BuildResult(existing, built=False, pushed=False, skipped="already in the registry")
    client = _client()
    _build(client, settings, image, commit, progress)
    if not push:
        return BuildResult(image, built=True, pushed=False)
    digest = _push(client, settings, image, progress)
    return BuildResult(Image(image.repository, image.tag, digest), built=True, pushed=True)
