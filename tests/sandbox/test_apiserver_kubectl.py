"""kubectl itself against the sandbox API server: discovery, server-side apply, dry runs, tables, errors."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import RunningKube  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

APP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{GREETING: hello}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: registry.example/web:1.0
        ports: [{{containerPort: 8080}}]
        envFrom: [{{configMapRef: {{name: settings}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {node_port}}}]
---
apiVersion: networking.gke.io/v1
kind: ManagedCertificate
metadata: {{name: web, namespace: {ns}}}
spec:
  domains: [web.example.com]
"""


def test_version_and_discovery(kube: RunningKube) -> None:
    version = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.31.")
    resources = kube.kubectl("api-resources", "-o", "name").stdout.split()
    for name in (
        "deployments.apps",
        "ingresses.networking.k8s.io",
        "managedcertificates.networking.gke.io",
        "backendconfigs.cloud.google.com",
        "frontendconfigs.networking.gke.io",
        "events.events.k8s.io",
    ):
        assert name in resources
    assert "Number of desired pods" in kube.kubectl("explain", "deployment.spec.replicas").stdout
    nodes = kube.kubectl("get", "nodes", "-o", "wide").stdout
    assert "Ready" in nodes and "127.0.0.12" in nodes
    assert "127.0.0.13" in kube.kubectl("get", "nodes", "-o", "wide", context="prod").stdout


def test_server_side_apply_dry_run_get_and_delete(kube: RunningKube) -> None:
    manifest = APP.format(ns="kubectl-app", node_port=30100)
    # As on a real cluster, a dry run cannot create a namespace for the objects that follow it.
    dry = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert "namespace/kubectl-app serverside-applied (server dry run)" in dry.stdout
    assert 'namespaces "kubectl-app" not found' in dry.stderr
    kube.kubectl("create", "namespace", "kubectl-app")
    dry = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest)
    assert "deployment.apps/web serverside-applied (server dry run)" in dry.stdout
    assert "NotFound" in kube.kubectl("-n", "kubectl-app", "get", "deploy", "web", check=False).stderr

    out = kube.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "deployment.apps/web serverside-applied" in out
    assert "managedcertificate.networking.gke.io/web serverside-applied" in out
    dep = json.loads(
        kube.kubectl(
            "-n", "kubectl-app", "get", "deploy", "web", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert dep["spec"]["progressDeadlineSeconds"] == 600 and dep["spec"]["revisionHistoryLimit"] == 10
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    entry = dep["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")

    # The same apply again changes nothing.
    again = kube.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    dep2 = json.loads(kube.kubectl("-n", "kubectl-app", "get", "deploy", "web", "-o", "json").stdout)
    assert "serverside-applied" in again
    assert dep2["metadata"]["resourceVersion"] == dep["metadata"]["resourceVersion"]

    table = kube.kubectl("-n", "kubectl-app", "get", "deploy,svc,cm").stdout
    assert "READY   UP-TO-DATE   AVAILABLE   AGE" in table
    assert "80:30100/TCP" in table and "NodePort" in table
    assert kube.kubectl("-n", "kubectl-app", "get", "managedcertificates").stdout.startswith("NAME")

    kube.kubectl("-n", "kubectl-app", "scale", "deploy/web", "--replicas=3")
    conflict = kube.kubectl("apply", "--server-side", "-f", "-", input=manifest, check=False)
    assert (
        conflict.returncode != 0
        and "conflict with" in conflict.stderr
        and ".spec.replicas" in conflict.stderr
    )
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)

    kube.kubectl(
        "-n", "kubectl-app", "wait", "--for=jsonpath={.spec.replicas}=2", "deploy/web", "--timeout=10s"
    )
    kube.kubectl("-n", "kubectl-app", "delete", "configmap", "settings", "--wait=true")
    assert "NotFound" in kube.kubectl("-n", "kubectl-app", "get", "cm", "settings", check=False).stderr
    kube.kubectl("delete", "namespace", "kubectl-app")


def test_client_side_apply_and_imperative_commands(kube: RunningKube) -> None:
    manifest = APP.format(ns="kubectl-csa", node_port=30101)
    kube.kubectl("apply", "-f", "-", input=manifest)
    second = kube.kubectl("apply", "-f", "-", input=manifest).stdout
    assert "deployment.apps/web unchanged" in second
    kube.kubectl("-n", "kubectl-csa", "set", "image", "deploy/web", "app=registry.example/web:2.0")
    kube.kubectl("-n", "kubectl-csa", "label", "deploy/web", "tier=front")
    kube.kubectl("-n", "kubectl-csa", "rollout", "restart", "deploy/web")
    dep = json.loads(kube.kubectl("-n", "kubectl-csa", "get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:2.0"
    assert dep["metadata"]["generation"] == 3
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    # The namespace comes first in the file: as on a real cluster it turns Terminating, and the objects
    # after it are still there to be deleted.
    deleted = kube.kubectl("delete", "-f", "-", input=manifest).stdout
    assert 'namespace "kubectl-csa" deleted' in deleted and 'deployment.apps "web" deleted' in deleted
    created = kube.kubectl("-n", "kubectl-csa", "create", "configmap", "late", check=False)
    assert created.returncode != 0


def test_errors_are_the_api_server_s(kube: RunningKube) -> None:
    unknown = kube.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        check=False,
        input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\nbogus: 1\n",
    )
    assert 'strict decoding error: unknown field "bogus"' in unknown.stderr
    missing_ns = kube.kubectl(
        "create", "configmap", "x", "-n", "no-such-namespace", "--from-literal=a=b", check=False
    )
    assert 'namespaces "no-such-namespace" not found' in missing_ns.stderr
    invalid = kube.kubectl(
        "create",
        "deployment",
        "Bad_Name",
        "--image=x",
        check=False,
    )
    assert "Invalid value" in invalid.stderr and "RFC 1123" in invalid.stderr
    taken = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: NodePort
  ports: [{{port: 80, nodePort: 30999}}]
"""
    kube.kubectl("apply", "--server-side", "-f", "-", input=taken.format(name="first"))
    second = kube.kubectl("apply", "--server-side", "-f", "-", input=taken.format(name="second"), check=False)
    assert "spec.ports[0].nodePort: Invalid value: 30999: provided port is already allocated" in second.stderr
    kube.kubectl("delete", "service", "first")


def test_watch_with_kubectl_get_w(kube: RunningKube) -> None:
    kube.kubectl("create", "namespace", "kubectl-watch")
    cache = kube.home.path / "kubectl-cache"
    with subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(kube.kubeconfig),
            "--cache-dir",
            str(cache),
            "-n",
            "kubectl-watch",
            "get",
            "configmaps",
            "-w",
            "--request-timeout=8s",
            "-o",
            "name",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=kube.env(),
    ) as watcher:
        try:
            time.sleep(1.5)
            kube.kubectl("-n", "kubectl-watch", "create", "configmap", "seen", "--from-literal=a=1")
            kube.kubectl("-n", "kubectl-watch", "delete", "configmap", "seen")
            lines: list[str] = []
            assert watcher.stdout is not None
            while lines.count("configmap/seen") < 2:
                line = watcher.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
            assert lines.count("configmap/seen") >= 2, lines
        finally:
            watcher.kill()
    kube.kubectl("delete", "namespace", "kubectl-watch")
