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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dbconfig import DatabaseSettings, database_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from . import configschema

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
    # How long a release waits for another operation on the same environment to finish (its Lease, see
    # pipeline/lease.py) before giving up: ten minutes covers a slow rollout plus its rollback.
    lock_wait: float = 600.0
    # The namespace of the environment's Lease: the app's, which every runner of the environment can write.
    lock_namespace: str = "campus"


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


def checks_from_config(raw: object, where: str = "smoke") -> tuple[Check, ...]:
    """Checks from ``[[environments.NAME.smoke]]`` tables; any mistake is one :class:`ConfigError` line.

    ``where`` names the array in messages (e.g. ``environments.staging.smoke``). A check without a
    ``name`` is called ``GET <path>``; names must be distinct, and ``version`` is the built-in check's.
    """
    from . import configschema as schema

    at: tuple[str | int, ...] = tuple(where.split("."))
    entries = schema.check_section(CONFIG_FILE, at, raw, list[dict[str, Any]])
    checks: list[Check] = []
    for i, entry in enumerate(entries):
        values = schema.set_fields(schema.check_section(CONFIG_FILE, (*at, i), entry, schema.CheckTable))
        check = Check(**{"name": f"GET {values.get('path', '/')}", **values})
        place = f"{CONFIG_FILE}: {where} #{i + 1}"
        if check.name == VERSION_CHECK:
            raise ConfigError(
                f"{place}: the name {check.name!r} is the built-in version check's", "Choose another"
            )
        if any(c.name == check.name for c in checks):
            raise ConfigError(
                f"{place}: a second check named {check.name!r}", "Give each check a distinct name"
            )
        checks.append(check)
    return tuple(checks)


def _environments(raw: Mapping[str, Any], overrides: configschema.Overrides) -> dict[str, Environment]:
    from . import configschema as schema

    envs: dict[str, Environment] = {}
    for name, table in raw.items():
        schema.check_name(CONFIG_FILE, ("environments",), name, schema.EnvName)
        at = ("environments", name)
        values = schema.set_fields(schema.check_section(CONFIG_FILE, at, table, schema.EnvironmentTable))
        values = {"overlay": f"overlays/{name}", **values}
        values["smoke"] = checks_from_config(values.get("smoke", []), where=f"environments.{name}.smoke")
        # The sandbox has one GCP project and location for all its clusters; so may a team's test setup.
        if overrides.PIPELINE_GKE_PROJECT is not schema.UNSET:
            values["gke_project"] = overrides.PIPELINE_GKE_PROJECT
        if overrides.PIPELINE_GKE_LOCATION is not schema.UNSET:
            values["gke_location"] = overrides.PIPELINE_GKE_LOCATION
        envs[name] = Environment(name=name, **values)
    return envs


def _secret(values: dict[str, Any]) -> SecretSettings:
    from . import configschema as schema

    if "keys" in values:
        for key, variable in values["keys"].items():
            schema.check_name(CONFIG_FILE, ("secret", "keys"), key, schema.SecretKey)
            schema.check_section(CONFIG_FILE, ("secret", "keys", key), variable, schema.EnvVar)
        values["keys"] = dict(values["keys"])
    return SecretSettings(**values)


def _ca_bundle(path: str, source: str) -> str:
    # Read by the smoke stage, after the bump: a bundle that cannot be read must stop the release now.
    if path and not (Path(path).is_file() and os.access(path, os.R_OK)):
        raise ConfigError(
            f"{source} {path!r} is not a readable file", "Point it at the Ingress CA's PEM file, or unset it"
        )
    return path


def _origin_url(root: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def load(root: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``pipeline.toml`` under ``root`` (default: ``PIPELINE_ROOT`` or the cwd) plus the environment.

    Every value is checked (``configschema``) before anything else runs: a mistake is one ConfigError line.
    """
    from . import configschema as schema

    env = os.environ if environ is None else environ
    root = Path(root or env.get("PIPELINE_ROOT") or Path.cwd()).resolve()
    if not root.is_dir():
        # Else every setting would silently be a default and every environment unknown.
        raise ConfigError(
            f"PIPELINE_ROOT {str(root)!r} is not a directory", "Point it at a checkout, or unset it"
        )
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text()) if path.exists() else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})", "Fix the syntax and try again") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e.__class__.__name__})", "Check the file") from None
    overrides = schema.check_environ(env)
    file = schema.check_section(CONFIG_FILE, (), data, schema.FileTable)

    image_values = schema.set_fields(file.image)
    if "prebuild" in image_values:
        image_values["prebuild"] = tuple(image_values["prebuild"])
    if overrides.PIPELINE_IMAGE_REPOSITORY is not schema.UNSET:
        image_values["repository"] = overrides.PIPELINE_IMAGE_REPOSITORY
    registry_values = schema.set_fields(file.registry)
    if overrides.PIPELINE_REGISTRY is not schema.UNSET:
        registry_values["host"] = overrides.PIPELINE_REGISTRY
    registry = RegistrySettings(
        **registry_values,
        username=overrides.DOCKERHUB_USERNAME or None,
        token=overrides.DOCKERHUB_TOKEN or None,
    )
    gitops = GitOpsSettings(**schema.set_fields(file.gitops))
    remote = overrides.PIPELINE_GITOPS_REMOTE or gitops.remote or _origin_url(root)
    release = ReleaseSettings(**schema.set_fields(file.release))
    source = "[release] ingress_ca_bundle"
    if overrides.PIPELINE_INGRESS_CA_BUNDLE:
        release = replace(release, ingress_ca_bundle=overrides.PIPELINE_INGRESS_CA_BUNDLE)
        source = "PIPELINE_INGRESS_CA_BUNDLE"
    _ca_bundle(release.ingress_ca_bundle, source)
    release = replace(
        release,
        gke_endpoint=overrides.PIPELINE_GKE_ENDPOINT or release.gke_endpoint,
        ingress_port=overrides.PIPELINE_INGRESS_PORT or release.ingress_port,
    )
    return Settings(
        root=root,
        image=ImageSettings(**image_values),
        registry=registry,
        gitops=replace(gitops, remote=remote),
        environments=_environments(file.environments or {}, overrides),
        secret=_secret(schema.set_fields(file.secret)),
        release=release,
        database=database_settings(
            schema.set_fields(file.database), overrides.PIPELINE_STORAGE_ENDPOINT or ""
        ),
    )
