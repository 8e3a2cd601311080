"""The sandbox's home folder and its settings, chosen once and kept.

Everything the sandbox owns lives under one git-ignored folder (``SANDBOX_HOME``, default
``<project>/.sandbox``). ``settings.json`` is written at the first ``up`` and reused afterwards, so that
addresses and credentials stay stable across ``down``/``up`` (overlays pin image references that contain
the registry address). Environment variables seen at that first ``up`` may override the defaults; tests use
them to run a second sandbox beside a user's.

Neighbours: ``daemon.py`` runs the services described here, ``control.py`` starts and stops the daemon.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_CLUSTERS = ("staging", "prod")


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    # Each cluster's one node has its own loopback address, so both can serve NodePort 30100 as in the seed.
    node_ip: str
    api_port: int


@dataclass(frozen=True)
class Settings:
    registry_port: int
    registry_user: str
    registry_password: str = field(repr=False)
    gke_port: int = 0
    # The Cloud Storage emulator (database backups); 0 in settings kept from before it existed.
    storage_port: int = 0
    # 443 as on GKE; users who are not root choose another port at their first `up`.
    ingress_port: int = 443
    # One hour, as Google's access tokens; tests shorten it to exercise refreshing.
    token_lifetime_seconds: int = 3600
    gcp_project: str = "sandbox"
    gcp_location: str = "local"
    clusters: tuple[ClusterSettings, ...] = ()
    # The kubeconfig contexts' namespace, so `kubectl --context staging get pods` shows the app's.
    default_namespace: str = "campus"
    # What GitHub environment secrets hold in production: the values of the app's Secret, made up once.
    app_secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["clusters"] = tuple(ClusterSettings(**c) for c in data.get("clusters", ()))
        return cls(**data)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return int(value) if value else default


def default_settings(env: Mapping[str, str]) -> Settings:
    """Defaults for a first ``up``; ``SANDBOX_*`` variables override them."""
    ips = (env.get("SANDBOX_NODE_IPS") or "127.0.0.2,127.0.0.3").split(",")
    names_text = env.get("SANDBOX_CLUSTERS", ",".join(DEFAULT_CLUSTERS))
    names = [n for n in names_text.split(",") if n.strip()]
    api_port = _port(env, "SANDBOX_API_PORT", 6443)
    clusters = tuple(
        ClusterSettings(name=n.strip(), node_ip=ip.strip(), api_port=api_port)
        for n, ip in zip(names, ips, strict=False)
    )
    return Settings(
        registry_port=_port(env, "SANDBOX_REGISTRY_PORT", 5000),
        registry_user="sandbox",
        registry_password=secrets.token_urlsafe(24),
        gke_port=_port(env, "SANDBOX_GKE_PORT", 8443),
        # A free port rather than the emulator's 9023: test sandboxes start beside the user's.
        storage_port=_port(env, "SANDBOX_STORAGE_PORT", 0) or free_port(),
        ingress_port=_port(env, "SANDBOX_INGRESS_PORT", 443),
        token_lifetime_seconds=_port(env, "SANDBOX_TOKEN_LIFETIME", 3600),
        clusters=clusters,
        app_secrets={
            "CAMPUS_POSTGRES_PASSWORD": secrets.token_urlsafe(18),
            "CAMPUS_ADMIN_PASS": secrets.token_urlsafe(18),
        },
    )


@dataclass(frozen=True)
class Home:
    path: Path

    @classmethod
    def locate(cls, project_root: Path | None = None, env: Mapping[str, str] | None = None) -> Home:
        env = os.environ if env is None else env
        root = project_root or Path.cwd()
        return cls(Path(env.get("SANDBOX_HOME") or root / ".sandbox").resolve())

    @property
    def settings_file(self) -> Path:
        return self.path / "settings.json"

    @property
    def run(self) -> Path:
        return self.path / "run"

    @property
    def pid_file(self) -> Path:
        return self.run / "daemon.pid"

    @property
    def log_file(self) -> Path:
        return self.run / "daemon.log"

    @property
    def ready_file(self) -> Path:
        return self.run / "ready.json"

    @property
    def registry_dir(self) -> Path:
        return self.path / "registry"

    @property
    def git_remote(self) -> Path:
        return self.path / "git" / "remote.git"

    @property
    def kube_dir(self) -> Path:
        return self.path / "kube"

    def load_settings(self) -> Settings | None:
        if not self.settings_file.exists():
            return None
        return Settings.from_json(self.settings_file.read_text())

    def ensure_settings(self, env: Mapping[str, str] | None = None) -> Settings:
        """The kept settings, or new defaults written with owner-only permissions."""
        existing = self.load_settings()
        if existing is not None and existing.storage_port:
            return existing
        if existing is not None:
            # Kept from before the storage emulator: everything stays, the emulator gets a port.
            settings = replace(existing, storage_port=free_port())
        else:
            settings = default_settings(os.environ if env is None else env)
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.settings_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(settings.to_json())
        return settings

    def read_ready(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.ready_file.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return None
