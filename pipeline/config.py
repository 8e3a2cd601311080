"""Typed settings, read once from ``pipeline.toml`` and overridden by the environment.

Layers, lowest first: the defaults written on the dataclasses below, the project's ``pipeline.toml``,
environment variables (``PIPELINE_*`` and the Docker Hub credentials), then task options, which
``tasks.py`` applies with :func:`dataclasses.replace`. Credentials only ever come from the environment
(or Docker's own credential files, read by the Docker engine): the TOML file is committed.

Every other module receives a :class:`Settings` (or a part of it) and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dbconfig import DatabaseSettings, database_settings
from .errors import ConfigError

CONFIG_FILE = "pipeline.toml"
# The built-in smoke check that compares GET /version's commit with the release; user checks may not take it.
VERSION_CHECK = "version"


@dataclass(frozen=True)
class Check:
    """One HTTP request and what its answer must be, configured per environment in ``pipeline.toml``.

    ``expect_body`` is a *substring* of the body, not the whole body: it states "this is our service
    answering" (the greeting) without breaking on a trailing newline or surrounding markup; the commit's
    identity is the version check's job. ``expect_json`` is a *subset*: the body must be a JSON object and
    every key given here must have exactly the given value; other keys are ignored.
    """

    name: str
    path: str = "/"
    expect_status: int = 200
    expect_body: str | None = None
    expect_json: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ImageSettings:
    # Docker Hub-style "namespace/name"; the registry host is kept apart so the sandbox can stand in.
    repository: str = "campus/backend"
    # The placeholder the base manifests use in `image:`; overlays pin it through kustomize `images:`.
    kustomize_name: str = "backend"
    # Relative to the project root.
    context: str = "backend"
    dockerfile: str = "Dockerfile"
    # Run in the context before `docker build`. Empty for a self-contained multi-stage Dockerfile; our
    # offline Dockerfile needs its static binary compiled first because no base image can be pulled.
    prebuild: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrySettings:
    # Docker Hub by default; PIPELINE_REGISTRY points at a private registry or the sandbox.
    host: str = "docker.io"
    username: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def has_credentials(self) -> bool:
        return bool(self.username and self.token)


@dataclass(frozen=True)
class GitOpsSettings:
    # Where bumps are pushed. Empty means "this checkout's origin", resolved at load time.
    remote: str = ""
    branch: str = "main"
    author_name: str = "campus-pipeline"
    author_email: str = "pipeline@users.noreply.github.com"
    # A racing push is fetched, re-applied and retried this many times before we give up.
    push_attempts: int = 6
    # The pipeline's own clones live here, never in the user's working tree.
    cache_dir: str = ".pipeline/gitops"


@dataclass(frozen=True)
class Environment:
    name: str
    overlay: str
    # Protected environments need a named approver (or an interactive yes) before anything is written.
    protected: bool = False
    # GKE coordinates; the sandbox uses project "sandbox", location "local", cluster = env name.
    gke_project: str = ""
    gke_location: str = ""
    gke_cluster: str = ""
    # Teams on other clusters may name a kubeconfig context instead of a GKE cluster.
    kube_context: str = ""
    # What "it works" means for this environment, checked through the NodePort and the Ingress.
    smoke: tuple[Check, ...] = ()


@dataclass(frozen=True)
class SecretSettings:
    """The app's Secret, built at deploy time from environment variables: never in git, never printed."""

    name: str = "backend-core-secrets"
    namespace: str = "campus"
    # Secret key -> environment variable holding its value.
    keys: Mapping[str, str] = field(
        default_factory=lambda: {
            "POSTGRES_PASSWORD": "CAMPUS_POSTGRES_PASSWORD",
            "ADMIN_PASS": "CAMPUS_ADMIN_PASS",
        }
    )


@dataclass(frozen=True)
class ReleaseSettings:
    # One field manager owns every field we apply, so server-side apply can tell our changes from others'.
    field_manager: str = "campus-pipeline"
    # Upper bound for a rollout; the Deployment's own progressDeadlineSeconds usually ends it sooner.
    rollout_timeout: float = 300.0
    # A new pod may need a few seconds behind the Ingress and NodePort before it answers.
    smoke_deadline: float = 60.0
    # The Container API; empty for Google's. The sandbox exports PIPELINE_GKE_ENDPOINT.
    gke_endpoint: str = ""
    # CA bundle that verifies the Ingress certificate; empty for the system's trust store.
    ingress_ca_bundle: str = ""
    # Port of the HTTPS Ingress (443 on GKE; the sandbox may use another for users who are not root).
    ingress_port: int = 443


@dataclass(frozen=True)
class Settings:
    root: Path
    image: ImageSettings
    registry: RegistrySettings
    gitops: GitOpsSettings
    environments: Mapping[str, Environment]
    secret: SecretSettings = field(default_factory=SecretSettings)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)

    @property
    def image_repository(self) -> str:
        """The full repository name a pushed image has, registry host included."""
        return f"{self.registry.host}/{self.image.repository}"

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"unknown environment {name!r}", f"Use one of: {known} (see [environments] in {CONFIG_FILE})"
            ) from None


def checks_from_config(raw: Sequence[Mapping[str, Any]], where: str = "smoke") -> tuple[Check, ...]:
    """Checks from ``[[environments.NAME.smoke]]`` tables; any mistake is one :class:`ConfigError` line.

    ``where`` names the array in messages (e.g. ``environments.staging.smoke``). A check without a
    ``name`` is called ``GET <path>``; names must be distinct, and ``version`` is the built-in check's.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ConfigError(f"pipeline.toml: {where} must be an array of tables", "Write [[{where}]] entries")
    keys = {"name", "path", "expect_status", "expect_body", "expect_json"}
    checks: list[Check] = []
    for i, entry in enumerate(raw, 1):
        at = f"pipeline.toml: {where} #{i}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{at} must be a table", "Write it as [[{where}]] with keys under it")
        unknown = sorted(set(entry) - keys)
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r}", f"Use only: {', '.join(sorted(keys))}")
        path = entry.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
            raise ConfigError(f"{at}: path {path!r} must start with / and hold no spaces", "e.g. path = '/'")
        status = entry.get("expect_status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError(f"{at}: expect_status {status!r} is not an HTTP status", "e.g. 200")
        body = entry.get("expect_body")
        if body is not None and (not isinstance(body, str) or not body):
            raise ConfigError(f"{at}: expect_body must be a non-empty string", "It is matched as a substring")
        expect_json = entry.get("expect_json")
        if expect_json is not None and not isinstance(expect_json, Mapping):
            raise ConfigError(f"{at}: expect_json must be a table", 'e.g. expect_json = { status = "ok" }')
        name = entry.get("name", f"GET {path}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{at}: name must be a non-empty string", "Name the check")
        if name == VERSION_CHECK:
            raise ConfigError(f"{at}: the name {name!r} is the built-in version check's", "Choose another")
        if any(c.name == name for c in checks):
            raise ConfigError(f"{at}: a second check named {name!r}", "Give each check a distinct name")
        checks.append(
            Check(
                name=name,
                path=path,
                expect_status=status,
                expect_body=body,
                expect_json=dict(expect_json) if expect_json is not None else None,
            )
        )
    return tuple(checks)


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{CONFIG_FILE}: [{name}] must be a table", "Fix the file and try again")
    return value


def _build(cls: type[Any], values: Mapping[str, Any], where: str, **extra: Any) -> Any:
    try:
        return cls(**values, **extra)
    except TypeError as e:
        raise ConfigError(f"{CONFIG_FILE}: bad key in [{where}] ({e})", "Check the key names") from None


def _origin_url(root: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def load(root: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``pipeline.toml`` under ``root`` (default: ``PIPELINE_ROOT`` or the cwd) plus the environment."""
    env = os.environ if environ is None else environ
    root = Path(root or env.get("PIPELINE_ROOT") or Path.cwd()).resolve()
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text()) if path.exists() else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})", "Fix the syntax and try again") from None

    image_values = _section(data, "image")
    if "prebuild" in image_values:
        image_values["prebuild"] = tuple(image_values["prebuild"])
    image: ImageSettings = _build(ImageSettings, image_values, "image")
    if env.get("PIPELINE_IMAGE_REPOSITORY"):
        image = replace(image, repository=env["PIPELINE_IMAGE_REPOSITORY"])

    reg_values = _section(data, "registry")
    registry: RegistrySettings = _build(
        RegistrySettings,
        {**reg_values, "host": env.get("PIPELINE_REGISTRY") or reg_values.get("host", "docker.io")},
        "registry",
        username=env.get("DOCKERHUB_USERNAME") or None,
        token=env.get("DOCKERHUB_TOKEN") or None,
    )

    git_values = _section(data, "gitops")
    gitops: GitOpsSettings = _build(GitOpsSettings, git_values, "gitops")
    remote = env.get("PIPELINE_GITOPS_REMOTE") or gitops.remote or _origin_url(root)
    gitops = replace(gitops, remote=remote)

    envs: dict[str, Environment] = {}
    for name, values in _section(data, "environments").items():
        if not isinstance(values, dict):
            raise ConfigError(f"{CONFIG_FILE}: [environments.{name}] must be a table", "Fix the file")
        values = {"overlay": f"overlays/{name}", **values}
        values["smoke"] = checks_from_config(values.get("smoke", []), where=f"environments.{name}.smoke")
        # The sandbox has one GCP project and location for all its clusters; so may a team's test setup.
        for key in ("gke_project", "gke_location"):
            if env.get(f"PIPELINE_{key.upper()}"):
                values[key] = env[f"PIPELINE_{key.upper()}"]
        envs[name] = _build(Environment, values, f"environments.{name}", name=name)

    secret_values = _section(data, "secret")
    secret: SecretSettings = _build(SecretSettings, secret_values, "secret")
    release_values = _section(data, "release")
    release: ReleaseSettings = _build(ReleaseSettings, release_values, "release")
    release = replace(
        release,
        gke_endpoint=env.get("PIPELINE_GKE_ENDPOINT") or release.gke_endpoint,
        ingress_ca_bundle=env.get("PIPELINE_INGRESS_CA_BUNDLE") or release.ingress_ca_bundle,
        ingress_port=int(env.get("PIPELINE_INGRESS_PORT") or release.ingress_port),
    )
    return Settings(
        root=root,
        image=image,
        registry=registry,
        gitops=gitops,
        environments=envs,
        secret=secret,
        release=release,
        database=database_settings(_section(data, "database"), env),
    )
