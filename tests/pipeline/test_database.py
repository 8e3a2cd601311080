"""The database stage's pure parts against real small things: a git repository, the settings loader.
(The bucket is tested in tests/release/test_storage.py, the whole story in test_database_e2e.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline import config, migrations
from pipeline.dbrelease import _major
from pipeline.errors import ConfigError

GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@example.invalid")


def _settings(root: Path, toml: str = "", **env: str) -> config.Settings:
    (root / "pipeline.toml").write_text(toml)
    return config.load(root, env)


def test_database_settings_defaults_overrides_and_mistakes(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[database]\nkeep = 3\n", PIPELINE_STORAGE_ENDPOINT="http://127.0.0.1:1")
    assert settings.database.keep == 3
    assert settings.database.storage_endpoint == "http://127.0.0.1:1"
    assert settings.database.bucket_for("prod") == "campus-prod-db-backups"
    with pytest.raises(ConfigError, match="bucket_name"):
        _settings(tmp_path, '[database]\nbucket_name = "x"\n')
    with pytest.raises(ConfigError, match=r"database\.keep"):
        _settings(tmp_path, "[database]\nkeep = 0\n")


@pytest.mark.parametrize(
    ("image", "major"),
    [
        ("postgres:15-bookworm", 15),
        ("docker.io/library/postgres:16.4@sha256:" + "a" * 64, 16),
        ("127.0.0.1:5000/postgres:17", 17),
        ("postgres", None),
        ("127.0.0.1:5000/postgres", None),
    ],
)
def test_postgres_major_version_of_an_image(image: str, major: int | None) -> None:
    assert _major(image) == major


def test_pending_migrations_are_the_files_the_new_tree_adds(tmp_path: Path) -> None:
    subprocess.run([*GIT, "init", "-q", str(tmp_path)], check=True)
    folder = tmp_path / "backend" / "migrations"
    folder.mkdir(parents=True)

    def commit(name: str) -> str:
        (folder / name).write_text("-- +migrate Up\nSELECT 1;\n")
        subprocess.run([*GIT, "-C", str(tmp_path), "add", "."], check=True)
        subprocess.run([*GIT, "-C", str(tmp_path), "commit", "-qm", name], check=True)
        return subprocess.run(
            ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()

    first, second = commit("0001_a.sql"), commit("0002_b.sql")
    settings = _settings(tmp_path)
    assert migrations.pending(settings, first, second) == ("0002_b.sql",)
    assert migrations.pending(settings, second, second) == ()
    assert migrations.pending(settings, None, second) == ("0001_a.sql", "0002_b.sql")
    assert migrations.pending(settings, first, "f" * 40) == ("(unknown source tree: all)",)


def test_the_migration_job_is_the_backend_pod_running_migrate_up() -> None:
    backend = {
        "kind": "Deployment",
        "metadata": {"name": "backend-core-deployment", "namespace": "campus", "labels": {"app": "b"}},
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{"name": "b", "image": "old", "envFrom": [{"secretRef": {"name": "s"}}]}],
                }
            }
        },
    }
    job = migrations.job_for(config.load(Path("."), {}), [backend], "r/b:sha-1@sha256:x", "m-1")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "r/b:sha-1@sha256:x" and container["args"] == ["migrate", "up"]
    assert container["envFrom"] == [{"secretRef": {"name": "s"}}]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
