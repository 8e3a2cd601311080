"""`sandbox.up`, `down`, `down --purge`: down stops everything, state survives, purge deletes it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox import control
from sandbox.home import Home, free_port
from sandbox.kube.kubelet import LABEL_HOME, home_hash

ROOT = Path(__file__).resolve().parents[2]

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: life}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: life}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: life}
spec:
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: postgres:15-bookworm
          env:
            - {name: POSTGRES_PASSWORD, value: lifecycle-test}
            - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
          ports: [{containerPort: 5432}]
          readinessProbe: {tcpSocket: {port: 5432}, periodSeconds: 1}
          volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: life}
spec:
  type: NodePort
  selector: {app: db}
  ports: [{port: 5432, targetPort: 5432, nodePort: 30200}]
"""


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def kubectl(ready: dict[str, Any], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--context", "staging", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": ready["env"]["KUBECONFIG"]},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.e2e
def test_down_leaves_nothing_running_up_restores_state_purge_cleans(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    ports = {name: free_port() for name in ("registry", "api", "gke", "ingress")}
    home.ensure_settings(
        {
            "SANDBOX_REGISTRY_PORT": str(ports["registry"]),
            "SANDBOX_CLUSTERS": "staging",
            "SANDBOX_NODE_IPS": "127.0.0.62",
            "SANDBOX_API_PORT": str(ports["api"]),
            "SANDBOX_GKE_PORT": str(ports["gke"]),
            "SANDBOX_INGRESS_PORT": str(ports["ingress"]),
        }
    )
    engine = docker.from_env()
    label = f"{LABEL_HOME}={home_hash(home.path)}"
    ready = control.up(home, ROOT)
    try:
        kubectl(ready, "apply", "--server-side", "-f", "-", stdin=MANIFEST)
        kubectl(ready, "-n", "life", "rollout", "status", "deploy/db", "--timeout=90s")
        deadline = time.monotonic() + 30
        while not listening("127.0.0.62", 30200) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listening("127.0.0.62", 30200)
        assert engine.containers.list(filters={"label": label})
        assert engine.volumes.list(filters={"label": label})
    finally:
        control.down(home)

    # Nothing runs or listens any more: no container, no network, no port.
    assert engine.containers.list(all=True, filters={"label": label}) == []
    assert engine.networks.list(filters={"label": label}) == []
    for host, port in [
        ("127.0.0.1", ports["registry"]),
        ("127.0.0.1", ports["gke"]),
        ("127.0.0.62", ports["api"]),
        ("127.0.0.62", ports["ingress"]),
        ("127.0.0.62", 30200),
    ]:
        assert not listening(host, port), f"{host}:{port} still listening"
    # The database's volume outlives `down`, as a disk outlives a stopped cluster.
    assert engine.volumes.list(filters={"label": label})

    ready = control.up(home, ROOT)
    try:
        deployment = json.loads(kubectl(ready, "-n", "life", "get", "deploy", "db", "-o", "json"))
        assert deployment["metadata"]["name"] == "db"
        kubectl(ready, "-n", "life", "rollout", "status", "deploy/db", "--timeout=90s")
    finally:
        control.purge(home)
    assert engine.volumes.list(filters={"label": label}) == []
    assert not home.path.exists()
