"""Drift on the sandbox: a release, then hand edits with kubectl, found, repaired and recorded.

The stories of the drift issue in order, each test starting where the previous one left the cluster: a
release (through the CLI, with a webhook receiver on loopback) is checked and found equal within 2 s;
``kubectl scale``, ``kubectl set image`` and ``kubectl delete`` are found (exit 3) and nothing else, not
even a ``kubectl annotate`` of a field we do not own; ``--repair`` puts them back with a verified rollout
and records it; the next check is clean; an unreachable webhook does not fail a release.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline import config, gke, history, kube
from pipeline.release import drift
from tests.release.conftest import process_env, seeded_clone

from .conftest import ROOT, Clusters, Images, kubectl_env  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

NAMESPACE = "campus"
BACKEND = "backend-core-deployment"
CONFIG = "backend-core-config"


@dataclass
class Receiver:
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[tuple[str, str]]:
        return [(b["event"], b["result"]) for b in self.bodies]


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            got.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/drift-e2e"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Project:
    clone: Path
    remote: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters
    images: Images
    receiver: Receiver

    def access(self) -> gke.ClusterAccess:
        return self.clusters.access("staging")

    def live(self, kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any] | None:
        with kube.connect(self.access()) as k:
            return k.get(api_version, kind, name, NAMESPACE)

    def invoke(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
            env={**self.environ, "PIPELINE_ROOT": str(self.clone), **extra},
            cwd=self.clone,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["kubectl", "--context", "staging", "-n", NAMESPACE, *args],
            env=kubectl_env(self.clusters),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def project(
    clusters: Clusters, images: Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    clone, remote, environ = seeded_clone(
        tmp_path_factory.mktemp("drift-e2e"),
        clusters,
        PIPELINE_IMAGE_REPOSITORY=f"drift-e2e/backend-{uuid.uuid4().hex[:8]}",
        PYTHONPATH=str(ROOT),
    )
    settings = config.load(clone, environ)
    with process_env(environ), receiving() as receiver:
        environ["PIPELINE_WEBHOOK_URL"] = receiver.url
        yield Project(clone, remote, environ, settings, clusters, images, receiver)


def test_a_release_is_posted_and_a_healthy_environment_has_no_drift(project: Project) -> None:
    done = project.invoke("release", "--env", "staging", "--image", project.images.good, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "released"
    (message,) = project.receiver.bodies
    assert (message["event"], message["env"], message["result"]) == ("release", "staging", "released")
    assert message["digest"].startswith("sha256:")
    assert {"preflight", "apply", "rollout", "smoke", "record"} <= set(message["stages"])

    drift(project.settings, "staging")  # the first one looks the cluster up and authenticates
    (render,) = (project.clone / ".pipeline/cache/renders").glob("*.json")
    render.write_text("{not json")  # a damaged copy is a miss: rendered again, and replaced
    again = drift(project.settings, "staging")
    assert again.result == "equal"
    assert json.loads(render.read_text())["commit"] == again.commit
    started = time.monotonic()
    report = drift(project.settings, "staging")
    elapsed = time.monotonic() - started
    print(f"\ndrift check of a healthy staging: {elapsed:.2f} s ({len(report.objects)} objects)")
    assert report.result == "equal", report.to_dict()
    assert elapsed < 2, f"a drift check took {elapsed:.2f} s"

    started = time.monotonic()
    checked = project.invoke("drift", "--env", "staging")
    seconds = time.monotonic() - started
    print(f"`invoke drift --env staging` (a new process): {seconds:.2f} s")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Issue 12 asks for under 2 s here: 1.6 s on a quiet machine (the render comes from the cache, the
    # client library is imported while git answers), more on a loaded one: printed, not asserted.
    assert checked.stdout.startswith("drift staging: none"), checked.stdout
    assert len(project.receiver.bodies) == 1  # a check without drift is not news


def test_hand_edits_are_found_and_nothing_else(project: Project) -> None:
    project.kubectl("scale", f"deployment/{BACKEND}", "--replicas=3")
    other = project.images.good.rsplit(":", 1)[0] + ":other-tag"
    project.kubectl("set", "image", f"deployment/{BACKEND}", f"backend-core={other}")
    project.kubectl("delete", "configmap", CONFIG)
    # A field we never set, by someone else's field manager: not drift.
    project.kubectl("annotate", f"deployment/{BACKEND}", "oncall.example.com/owner=asha")

    found = project.invoke("drift", "--env", "staging", "--json")
    print(found.stderr)
    assert found.returncode == 3, found.stdout + found.stderr
    report = json.loads(found.stdout)
    assert report["result"] == "drift" and report["drift"] is True
    drifted = {(o["kind"], o["name"]): o for o in report["objects"] if o["state"] != "equal"}
    assert set(drifted) == {("Deployment", BACKEND), ("ConfigMap", CONFIG)}, drifted
    assert drifted[("ConfigMap", CONFIG)]["state"] == "missing"
    fields = {f["what"]: f for f in drifted[("Deployment", BACKEND)]["fields"]}
    assert set(fields) == {"replicas", "image"}, fields
    assert (fields["replicas"]["live"], fields["replicas"]["declared"]) == (3, 1)
    assert fields["image"]["live"] == other
    assert fields["image"]["declared"].startswith(project.images.good.rsplit(":", 1)[0] + ":good@sha256:")
    assert all(f["by"] for f in fields.values())  # who did it, from managedFields
    assert "oncall" not in found.stdout + found.stderr

    (message,) = [b for b in project.receiver.bodies if b["event"] == "drift"]
    assert message["env"] == "staging" and message["result"] == "drift" and message["digest"]
    assert len(message["details"]) == 3 and set(message["stages"]) == {"declared", "compare"}


def test_repair_puts_everything_back_verified_and_recorded(project: Project) -> None:
    repaired = project.invoke("drift", "--env", "staging", "--repair", "--json")
    assert repaired.returncode == 3, repaired.stdout + repaired.stderr  # drift was found (and repaired)
    report = json.loads(repaired.stdout)
    assert report["result"] == "repaired", report
    stages = {s["name"]: s["status"] for s in report["repair"]["stages"]}
    assert stages["apply"] == stages["rollout"] == stages["smoke"] == stages["record"] == "ok", stages
    assert stages["bump"] == "skipped"  # git is not touched

    deployment = project.live("Deployment", BACKEND)
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == report["image"] + "@" + report["digest"]
    assert deployment["metadata"]["annotations"]["oncall.example.com/owner"] == "asha"  # not ours: kept
    assert project.live("ConfigMap", CONFIG, "v1") is not None

    records = history.read(project.settings, "staging")
    assert (records[0].kind, records[0].result) == ("repair", "succeeded")
    assert records[0].digest == report["digest"]
    shown = project.invoke("history", "--env", "staging")
    assert "repair" in shown.stdout.splitlines()[0], shown.stdout
    assert [e for e in project.receiver.events() if e[0] == "repair"] == [("repair", "released")]

    again = project.invoke("drift", "--env", "staging")
    assert again.returncode == 0, again.stdout + again.stderr


def test_an_unreachable_webhook_does_not_fail_a_release(project: Project) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/secret-path"
    done = project.invoke(
        "release", "--env", "staging", "--image", project.images.good, PIPELINE_WEBHOOK_URL=url
    )
    assert done.returncode == 0, done.stderr
    assert "warning: notification not sent" in done.stderr
    assert "secret-path" not in done.stdout + done.stderr


HPA = f"""\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: backend, namespace: {NAMESPACE}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {BACKEND}}}
  minReplicas: 1
  maxReplicas: 3
"""


def owned_elsewhere(stdout: str) -> dict[str, list[str]]:
    report = json.loads(stdout)
    return {
        f["path"]: f["by"] for o in report["objects"] if o["name"] == BACKEND for f in o["owned_elsewhere"]
    }


def test_a_leftover_member_of_the_set_is_drift(project: Project) -> None:
    declared = project.live("ConfigMap", CONFIG, "v1")
    assert declared is not None
    labels = ",".join(f"{k}={v}" for k, v in declared["metadata"]["labels"].items())
    project.kubectl("create", "configmap", "leftover", "--from-literal=a=b")
    project.kubectl("label", "configmap", "leftover", *labels.split(","))
    found = project.invoke("drift", "--env", "staging", "--json")
    assert found.returncode == 3, found.stdout + found.stderr
    (leftover,) = [o for o in json.loads(found.stdout)["objects"] if o["state"] != "equal"]
    assert (leftover["kind"], leftover["name"], leftover["state"]) == ("ConfigMap", "leftover", "undeclared")
    assert leftover["note"] == "a repair deletes it"
    project.kubectl("delete", "configmap", "leftover")
    assert project.invoke("drift", "--env", "staging").returncode == 0


def test_fields_a_controller_owns_are_reported_but_not_drift(project: Project) -> None:
    project.kubectl("create", "-f", "-", stdin=HPA)
    project.kubectl("scale", f"deployment/{BACKEND}", "--replicas=2")
    checked = project.invoke("drift", "--env", "staging", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "HorizontalPodAutoscaler backend" in owned_elsewhere(checked.stdout)["spec.replicas"]
    assert "owned by" in checked.stderr and "(not drift)" in checked.stderr

    project.kubectl("delete", "hpa", "backend")
    found = project.invoke("drift", "--env", "staging")
    assert found.returncode == 3, found.stdout + found.stderr
    assert "replicas scaled by hand: spec.replicas: live 2, declared 1" in found.stdout

    # What the HPA controller does on a real cluster: write the replica count as kube-controller-manager.
    with kube.connect(project.access()) as k:
        scale = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": BACKEND, "namespace": NAMESPACE},
        }
        k.server_side_apply(
            {**scale, "spec": {"replicas": 3}}, field_manager="kube-controller-manager", force=True
        )
    checked = project.invoke("drift", "--env", "staging", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert owned_elsewhere(checked.stdout)["spec.replicas"] == ["kube-controller-manager"]


def test_a_changed_secret_is_named_and_its_values_never_shown(project: Project) -> None:
    value = f"not-the-released-one-{uuid.uuid4().hex}"
    found = project.invoke("drift", "--env", "staging", "--json", CAMPUS_ADMIN_PASS=value)
    assert found.returncode == 3, found.stdout + found.stderr
    report = json.loads(found.stdout)
    (secret,) = [o for o in report["objects"] if o["state"] != "equal"]
    assert (secret["kind"], secret["name"]) == ("Secret", "backend-core-secrets")
    assert [(f["path"], f["live"], f["declared"]) for f in secret["fields"]] == [
        ("data.ADMIN_PASS", "<hidden>", "<hidden>")
    ]
    shown = found.stdout + found.stderr + json.dumps(project.receiver.bodies)
    for secret_value in (value, project.environ["CAMPUS_ADMIN_PASS"]):
        assert secret_value not in shown and base64.b64encode(secret_value.encode()).decode() not in shown
