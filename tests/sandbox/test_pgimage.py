"""The offline ``postgres:15-bookworm``: built from the host's Debian packages, it acts as the official one.

Built under a throwaway tag so a running sandbox's image is never touched; clients connect over TCP from
inside the container to its own network address, which goes through ``pg_hba``'s ``host`` rule (SCRAM).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from sandbox.kube import pgimage

pytestmark = pytest.mark.e2e

ENV = {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "appdb"}


@pytest.fixture(scope="module")
def image(engine: docker.DockerClient) -> Iterator[str]:
    name = f"sandbox-test/postgres:{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    assert pgimage.ensure_image(engine, name) == name
    assert time.monotonic() - began < 60
    yield name
    engine.images.remove(name, force=True)


@pytest.fixture
def volume(engine: docker.DockerClient) -> Iterator[str]:
    name = f"sandbox-test-pg-{uuid.uuid4().hex[:8]}"
    engine.volumes.create(name)
    yield name
    for info in engine.api.containers(all=True, filters={"volume": name}):
        engine.api.remove_container(info["Id"], force=True)
    engine.api.remove_volume(name, force=True)


@pytest.fixture
def run(engine: docker.DockerClient, image: str) -> Iterator[Any]:
    """Start containers of the image; all are removed at the end."""
    started: list[Any] = []

    def start(volume: str, env: dict[str, str], mount: str = "/var/lib/postgresql/data") -> Any:
        container = engine.containers.run(
            image, detach=True, environment=env, volumes={volume: {"bind": mount}}
        )
        started.append(container)
        return container

    yield start
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def wait_ready(container: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    probe = ["sh", "-c", 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']
    while container.exec_run(probe).exit_code != 0:
        container.reload()
        assert container.status == "running", container.logs().decode()
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.3)
    # pg_isready answers during the init phase's socket-only server too; wait for the real one.
    while b"PostgreSQL init process complete" not in container.logs() and b"Skipping initialization" not in (
        container.logs()
    ):
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.3)
    while container.exec_run(probe).exit_code != 0:
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.3)


def psql_tcp(container: Any, sql: str, password: str = "s3cret") -> tuple[int, str]:
    container.reload()
    ip = container.attrs["NetworkSettings"]["IPAddress"]
    url = f"postgresql://app:{password}@{ip}:5432/appdb"
    result = container.exec_run(["psql", url, "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
    return result.exit_code, result.output.decode()


def test_ensure_image_is_cached_and_named_as_asked(engine: docker.DockerClient, image: str) -> None:
    began = time.monotonic()
    assert pgimage.ensure_image(engine, image) == image
    assert time.monotonic() - began < 1
    config = engine.images.get(image).attrs["Config"]
    assert config["StopSignal"] == "SIGINT" and config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert "PGDATA=/var/lib/postgresql/data" in config["Env"]


def test_rows_survive_a_new_container_on_the_same_volume(run: Any, volume: str) -> None:
    env = {**ENV, "PGDATA": "/var/lib/postgresql/data/pgdata"}
    first = run(volume, env)
    wait_ready(first)
    assert psql_tcp(first, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('a'), ('b');")[0] == 0
    # The entrypoint ran as root and handed over to the postgres user (uid 999, as the official image).
    assert first.exec_run(["stat", "-c", "%u", "/proc/1"]).output == b"999\n"
    began = time.monotonic()
    first.stop(timeout=20)
    assert time.monotonic() - began < 10  # SIGINT: a fast shutdown, not a wait for clients
    first.remove()

    second = run(volume, env)
    wait_ready(second)
    assert b"Skipping initialization" in second.logs()
    assert psql_tcp(second, "SELECT string_agg(body, ',' ORDER BY body) FROM notes") == (0, "a,b\n")
    code, output = psql_tcp(second, "SELECT 1", password="wrong")
    assert code != 0 and 'password authentication failed for user "app"' in output


def test_refuses_to_start_without_a_password(run: Any, volume: str) -> None:
    container = run(volume, {"POSTGRES_USER": "app"})
    assert container.wait(timeout=30)["StatusCode"] == 1
    assert b"Database is uninitialized and superuser password is not specified" in container.logs()


def test_a_mount_root_with_lost_and_found_is_refused_by_initdb(
    run: Any, volume: str, engine: docker.DockerClient, image: str
) -> None:
    # What a freshly formatted ext4 disk (a GKE persistent disk) holds at its root.
    data = "/var/lib/postgresql/data"  # mounting over the image's VOLUME, so no anonymous volume is made
    engine.containers.run(
        image, [f"{data}/lost+found"], entrypoint=["mkdir"], volumes={volume: {"bind": data}}, remove=True
    )
    container = run(volume, ENV)
    assert container.wait(timeout=30)["StatusCode"] != 0
    logs = container.logs().decode()
    assert 'directory "/var/lib/postgresql/data" exists but is not empty' in logs
    assert "lost+found" in logs
