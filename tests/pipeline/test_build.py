"""The build stage against the real Docker engine and the sandbox's registry (htpasswd auth)."""

from __future__ import annotations

import contextlib
import time

import docker
import pytest

from pipeline import build, images, registry, release
from pipeline.errors import BuildError, ConfigError, RegistryAuthError, RegistryUnreachable, SourceError
from sandbox.home import free_port

from ..conftest import Project, git  # type: ignore[import-not-found]


@pytest.fixture(autouse=True)
def _no_local_images() -> object:
    yield
    client = docker.from_env()
    for image in client.images.list(filters={"reference": "*/test/app-*"}):
        # Another run on the same engine may have removed it first.
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image.id, force=True)


def test_build_push_then_skip(project: Project) -> None:
    settings = project.settings()
    first = release.build(settings, push=True, allow_dirty=False)
    commit = git("rev-parse", "HEAD", cwd=project.root).strip()
    assert first.built and first.pushed
    assert first.image.tag == f"sha-{commit[:7]}"
    assert first.image.digest and first.image.digest.startswith("sha256:")
    assert build.lookup(settings, first.image.tag) == first.image

    start = time.monotonic()
    second = release.build(settings, push=True, allow_dirty=False)
    assert not second.built and not second.pushed and second.skipped == "already in the registry"
    assert second.image == first.image
    assert time.monotonic() - start < 4


def test_skip_asks_the_registry_without_the_docker_engine(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = project.settings()
    first = release.build(settings, push=True, allow_dirty=False)
    # No engine to ask: the skip decision is one HTTP request to the registry's v2 API.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    second = release.build(settings, push=True, allow_dirty=False)
    assert second.skipped == "already in the registry" and second.image == first.image
    assert registry.lookup(settings, first.image.tag) == first.image
    assert registry.lookup(settings, "sha-0000000") is None


def test_progress_is_reported(project: Project) -> None:
    lines: list[str] = []
    release.build(project.settings(), push=True, allow_dirty=False, progress=lines.append)
    assert any("Step" in line for line in lines)


def test_dirty_tree_is_refused_unless_allowed(project: Project) -> None:
    (project.root / "app" / "hello.txt").write_text("changed\n")
    with pytest.raises(SourceError, match="uncommitted changes"):
        release.build(project.settings(), push=True, allow_dirty=False)
    result = release.build(project.settings(), push=True, allow_dirty=True)
    assert result.image.tag.endswith("-dirty") and result.pushed


def test_wrong_credentials_one_line_without_the_token(project: Project) -> None:
    settings = project.settings(DOCKERHUB_TOKEN="not-the-token-42")
    with pytest.raises(RegistryAuthError) as e:
        release.build(settings, push=True, allow_dirty=False)
    message = str(e.value)
    assert "401 unauthorized" in message and "DOCKERHUB_TOKEN" in message
    assert "not-the-token-42" not in message and "\n" not in message


def test_unreachable_registry(project: Project) -> None:
    settings = project.settings(PIPELINE_REGISTRY=f"127.0.0.1:{free_port()}")
    with pytest.raises(RegistryUnreachable, match="unreachable"):
        release.build(settings, push=True, allow_dirty=False)


def test_missing_dockerfile(project: Project) -> None:
    (project.root / "app" / "Dockerfile").unlink()
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "rm", cwd=project.root)
    with pytest.raises(BuildError, match="no Dockerfile at"):
        release.build(project.settings(), push=True, allow_dirty=False)


def test_invalid_tag() -> None:
    with pytest.raises(ConfigError, match="not a valid Docker tag"):
        images.check_tag("-nope")
    assert images.check_tag("sha-1a2b3c4") == "sha-1a2b3c4"


def test_another_registry_in_image_is_named_and_never_gets_our_credentials(project: Project) -> None:
    # Measured on main: an --image on another registry was reported under PIPELINE_REGISTRY's name, and
    # DOCKERHUB_USERNAME/TOKEN were offered to whichever host the reference named.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="other"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    other = f"127.0.0.1:{server.server_address[1]}"
    try:
        settings = project.settings()
        assert settings.registry.has_credentials
        with pytest.raises(RegistryAuthError) as caught:
            build.lookup(settings, "sha-1a2b3c4", repository=f"{other}/team/backend")
    finally:
        server.shutdown()
        server.server_close()
    assert seen and not any(seen), seen
    message = str(caught.value)
    assert f"looking up {other}/team/backend:sha-1a2b3c4: 401 unauthorized" in message
    assert f"docker login {other}" in message and settings.registry.host not in message
