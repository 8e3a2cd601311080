"""The sandbox kubeconfig: one context per cluster, authenticated by the sandbox's exec plugin.

Each context (named after the cluster: ``staging``, ``prod``) points at the cluster's HTTPS API server
with the sandbox CA inlined, and at a user whose credentials come from ``python -m sandbox token --home
DIR`` (``auth.exec_credential``), the way GKE's kubeconfigs call ``gke-gcloud-auth-plugin``. kubectl and
the official Python client both run the plugin and refresh on expiry or 401.

Neighbours: ``service.py`` writes it at start; ``invoke sandbox.env`` exports its path as ``KUBECONFIG``.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import yaml

import sandbox

USER = "sandbox"


def project_root() -> Path:
    """The folder that holds the ``sandbox`` package (the plugin runs with it on ``PYTHONPATH``)."""
    return Path(next(iter(sandbox.__path__))).resolve().parent


def kubeconfig(
    clusters: list[tuple[str, str]],
    ca_pem: bytes,
    home: Path,
    *,
    namespace: str | None = None,
    python: str | None = None,
) -> dict[str, object]:
    """The kubeconfig document; ``clusters`` is (name, server URL), the first is the current context."""
    ca_data = base64.b64encode(ca_pem).decode()
    context_extra = {"namespace": namespace} if namespace else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": clusters[0][0] if clusters else "",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
            for name, server in clusters
        ],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": USER, **context_extra}}
            for name, _ in clusters
        ],
        "users": [
            {
                "name": USER,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": python or sys.executable,
                        "args": ["-m", "sandbox", "token", "--home", str(home)],
                        "env": [{"name": "PYTHONPATH", "value": str(project_root())}],
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                        "installHint": "The sandbox's credential plugin runs `python -m sandbox token`; "
                        "start the sandbox with `invoke sandbox.up`.",
                    }
                },
            }
        ],
    }


def write_kubeconfig(
    path: Path,
    clusters: list[tuple[str, str]],
    ca_pem: bytes,
    home: Path,
    *,
    namespace: str | None = None,
    python: str | None = None,
) -> Path:
    """Write the kubeconfig (mode 0600, atomically) and return its path."""
    doc = kubeconfig(clusters, ca_pem, home, namespace=namespace, python=python)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    tmp.replace(path)
    return path
