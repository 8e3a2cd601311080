"""pipeline.toml and its environment overrides, checked when read: one line per mistake, nothing else run.

Measured on main (issue 10, defect 3): `rollout_timeout = "five minutes"` was pushed and applied before a
TypeError; `-5` rolled a good image back; a list for a table was a ValueError traceback; `"no"` for a
boolean was taken as true; an unknown section was ignored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import config, configschema
from pipeline.errors import ConfigError

from ..conftest import ROOT  # type: ignore[import-not-found]

BASE = (ROOT / "pipeline.toml").read_text()


def load(tmp_path: Path, text: str, **environ: str) -> config.Settings:
    (tmp_path / "pipeline.toml").write_text(text)
    return config.load(tmp_path, {"PIPELINE_GITOPS_REMOTE": "/remote.git", **environ})


def refused(tmp_path: Path, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, **environ)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("rollout_timeout = 300", 'rollout_timeout = "five minutes"'),
            "pipeline.toml: release.rollout_timeout must be a number of seconds > 0 (at most a day), "
            "got 'five minutes'. Write e.g. `rollout_timeout = 300`.",
        ),
        (
            ("rollout_timeout = 300", "rollout_timeout = -5"),
            "pipeline.toml: release.rollout_timeout must be a number of seconds > 0 (at most a day), got -5.",
        ),
        (("smoke_deadline = 60", "smoke_deadline = 0"), "release.smoke_deadline must be a number of seconds"),
        (
            ("protected = false", 'protected = "no"'),
            "pipeline.toml: environments.staging.protected must be true or false, got 'no'. "
            "Write e.g. `protected = false`.",
        ),
        (("push_attempts = 6", "push_attempts = 0"), "gitops.push_attempts must be a whole number from 1"),
        (("push_attempts = 6", "push_attempts = true"), "gitops.push_attempts must be a whole number"),
        (
            ("rollout_timeout = 300", "rolout_timeout = 300"),
            "unknown key release.rolout_timeout. Did you mean",
        ),
        (('host = "docker.io"', 'host = "docker io"'), "registry.host must be a registry host[:port]"),
        (('repository = "campus/backend"', 'repository = "Campus"'), "image.repository must be an image"),
        (('prebuild = ["sh", "build.sh"]', 'prebuild = "sh build.sh"'), "image.prebuild must be an array"),
        (
            ('overlay = "overlays/staging"', 'overlay = "../elsewhere"'),
            "environments.staging.overlay must be",
        ),
        (('gke_cluster = "staging"', 'gke_cluster = "Staging Cluster"'), "gke_cluster must be a GKE cluster"),
        (('path = "/healthz"', 'path = "healthz"'), "environments.staging.smoke #2: path must be a URL path"),
        (('name = "ready"', 'name = "greeting"'), "smoke #2: a second check named 'greeting'"),
        (('namespace = "campus"', 'namespace = "Campus"'), "secret.namespace must be a Kubernetes name"),
        (
            ('ADMIN_PASS = "CAMPUS_ADMIN_PASS"', 'ADMIN_PASS = "not a variable"'),
            "secret.keys.ADMIN_PASS must be an environment variable name, got 'not a variable'",
        ),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_key(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in BASE
    assert expected in refused(tmp_path, BASE.replace(old, new, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[bogus]\nx = 1\n", "pipeline.toml: unknown section [bogus]. Sections are: database, environments,"),
        ("[relase]\nx = 1\n", "unknown section [relase]. Did you mean [release]?"),
        ("release = [1, 2]\n", "pipeline.toml: release must be a table, got [1, 2]"),
        ("environments = [1]\n", "pipeline.toml: environments must be a table, got [1]"),
        ("[environments]\nstaging = [1]\n", "environments.staging must be a table, got [1]"),
        ("[environments.Staging]\n", "environments.Staging: 'Staging' is not a lower-case name"),
        ("[environments.staging]\nsmoke = { path = '/' }\n", "environments.staging.smoke must be an array"),
        ("[[environments.staging.smoke]]\nname = 'version'\n", "the built-in version check's"),
        (
            "[[environments.staging.smoke]]\nexpect_bdy = 'x'\n",
            "smoke #1: expect_bdy. Did you mean expect_body?",
        ),
        ("[release]\ningress_port = 70000\n", "release.ingress_port must be a port number from 1 to 65535"),
        ("[secret]\nkeys = { 'bad key' = 'X' }\n", "secret.keys.bad key: 'bad key' is not a Secret key"),
    ],
)
def test_unknown_and_misshapen_tables_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refused(tmp_path, text)


def test_credentials_in_the_file_are_refused_without_echoing_them(tmp_path: Path) -> None:
    message = refused(tmp_path, '[registry]\nhost = "docker.io"\ntoken = "dckr_pat_s3cr3t"\n')
    assert "registry.token does not belong here" in message and "DOCKERHUB_TOKEN" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"PIPELINE_INGRESS_PORT": "abc"},
            "environment variable PIPELINE_INGRESS_PORT must be a port number from 1 to 65535, got 'abc'",
        ),
        ({"PIPELINE_INGRESS_PORT": "0"}, "PIPELINE_INGRESS_PORT must be a port number"),
        ({"PIPELINE_REGISTRY": "no such host"}, "PIPELINE_REGISTRY must be a registry host[:port]"),
        (
            {"PIPELINE_IMAGE_REPOSITORY": "team/app:tag"},
            "PIPELINE_IMAGE_REPOSITORY must be an image repository",
        ),
        ({"PIPELINE_GKE_ENDPOINT": "ftp://x"}, "PIPELINE_GKE_ENDPOINT must be an http(s):// URL"),
        ({"PIPELINE_GKE_PROJECT": "Not A Project"}, "PIPELINE_GKE_PROJECT must be a GCP project id"),
        ({"PIPELINE_GITOPS_REMOTE": "two words"}, "PIPELINE_GITOPS_REMOTE must be a git URL or path"),
        ({"PIPELINE_INGRESS_CA_BUNDLE": "/no/such/ca.pem"}, "'/no/such/ca.pem' is not a readable file"),
        ({"PIPELINE_WEBHOOK_FORMAT": "teams"}, "PIPELINE_WEBHOOK_FORMAT must be slack or json, got 'teams'"),
        (
            {"PIPELINE_WEBHOOK_URL": "hooks.slack.com/s3cr3t"},
            "PIPELINE_WEBHOOK_URL must be an http(s):// URL, got (value hidden)",
        ),
    ],
)
def test_environment_overrides_are_checked_the_same_way(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    assert expected in refused(tmp_path, BASE, **environ)


def test_a_token_is_never_shown(tmp_path: Path) -> None:
    message = refused(tmp_path, BASE, DOCKERHUB_USERNAME="ci", DOCKERHUB_TOKEN="s3cr3t\nwith a newline")
    assert "DOCKERHUB_TOKEN" in message and "(value hidden)" in message and "s3cr3t" not in message


def test_overrides_and_defaults(tmp_path: Path) -> None:
    settings = load(
        tmp_path, BASE, PIPELINE_INGRESS_PORT="8443", PIPELINE_GKE_PROJECT="sandbox", PIPELINE_REGISTRY=""
    )
    assert settings.release.ingress_port == 8443
    assert settings.registry.host == "docker.io"  # empty counts as unset
    assert {e.gke_project for e in settings.environments.values()} == {"sandbox"}
    assert settings.release.rollout_timeout == 300
    empty = load(tmp_path, "")
    assert empty.release == config.ReleaseSettings() and empty.image == config.ImageSettings()
    assert empty.gitops == dataclasses.replace(config.GitOpsSettings(), remote="/remote.git")


# Settings that only the environment (or the pipeline itself) sets, never the file.
NOT_IN_FILE: dict[type, set[str]] = {
    config.Settings: {"root"},
    config.Environment: {"name"},  # the table's own name
    config.RegistrySettings: {"username", "token"},  # credentials: DOCKERHUB_USERNAME, DOCKERHUB_TOKEN
    config.DatabaseSettings: {"allow_major_upgrade"},  # a task option (release --allow-major-upgrade)
}


@pytest.mark.parametrize(
    ("table", "settings"),
    [
        (configschema.FileTable, config.Settings),
        (configschema.ImageTable, config.ImageSettings),
        (configschema.RegistryTable, config.RegistrySettings),
        (configschema.GitOpsTable, config.GitOpsSettings),
        (configschema.EnvironmentTable, config.Environment),
        (configschema.CheckTable, config.Check),
        (configschema.SecretTable, config.SecretSettings),
        (configschema.ReleaseTable, config.ReleaseSettings),
        (configschema.DatabaseTable, config.DatabaseSettings),
    ],
)
def test_the_schema_knows_every_setting(table: type, settings: type) -> None:
    # A field added to a settings dataclass must be added to its table too, or the file could not set it.
    fields = {f.name for f in dataclasses.fields(settings)} - NOT_IN_FILE.get(settings, set())
    assert set(table.__struct_fields__) == fields
