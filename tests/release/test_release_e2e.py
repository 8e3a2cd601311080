"""The whole release chain on the sandbox: the project's real backend, overlays, git remote and clusters.

One module-scoped project (a clone of this checkout with its own bare GitOps remote and image repository)
goes through the stories of issue 4 in order, each test starting from where the previous one left it:
a missing image refused, a good release verified over the NodePort and HTTPS, a no-op release, a plan
that hides secret values, a crashing image caught and reverted while the service keeps answering, an
approved promotion to prod, a rollback to the previous good release, and the database's data surviving
its pod. Nothing of ``pipeline/`` is patched: the tests drive the library (and, twice, the CLI) against
the real registry, git and clusters, then look at the results from the outside.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import config, gke, history, kube
from pipeline.build import Image
from pipeline.errors import ApprovalRequired, ImageNotFound, ReleaseRefused
from pipeline.release import ReleaseReport, plan, promote, release, rollback

from .conftest import ROOT, Clusters, git, process_env, seeded_clone  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

NAMESPACE = "campus"
BACKEND = "backend-core-deployment"
NODE_PORT = 30100
GREETING = "Hello from the other side!"
OVERLAY = "overlays/{env}/kustomization.yaml"
AUTHOR = ("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid")
APPROVED_BY = "--format=%(trailers:key=Approved-by,valueonly)"


@dataclass
class Carried:
    """What one test leaves for the next ones."""

    first: Image | None = None
    first_commit: str = ""


@dataclass
class Project:
    clone: Path
    remote: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters
    carried: Carried = field(default_factory=Carried)

    @property
    def repository(self) -> str:
        return self.settings.image_repository

    def node_ip(self, env: str) -> str:
        return str(self.clusters.ready["kube"]["clusters"][env]["node_ip"])

    def main(self) -> str:
        return git("--git-dir", str(self.remote), "rev-parse", "main").strip()

    def subjects(self, count: int) -> list[str]:
        return git("--git-dir", str(self.remote), "log", f"-{count}", "--format=%s", "main").splitlines()

    def pin(self, env: str, ref: str = "main") -> dict[str, str]:
        """The backend's kustomize ``images:`` entry in the environment's overlay on the remote."""
        text = git("--git-dir", str(self.remote), "show", f"{ref}:{OVERLAY.format(env=env)}")
        entries = yaml.safe_load(text)["images"]
        return {k: str(v) for k, v in next(e for e in entries if e["name"] == "backend").items()}

    def pinned(self, env: str) -> str:
        entry = self.pin(env)
        return f"{entry['newName']}:{entry['newTag']}@{entry['digest']}"

    def access(self, env: str) -> gke.ClusterAccess:
        return self.clusters.access(env)

    def live(self, env: str, kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
        with kube.connect(self.access(env)) as k:
            obj = k.get(api_version, kind, name, NAMESPACE)
        assert obj is not None, f"{kind} {NAMESPACE}/{name} is not in {env}"
        return obj

    def pods(self, env: str, app: str) -> list[dict[str, Any]]:
        """The app's pods that are not on their way out."""
        with kube.connect(self.access(env)) as k:
            pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={app}")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command as a user runs it, on this project (PIPELINE_ROOT) with the sandbox's variables."""
        return subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
            env={**self.environ, "PIPELINE_ROOT": str(self.clone)},
            cwd=self.clone,
            stdin=subprocess.DEVNULL,  # no terminal: no interactive approval prompt
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )


def _delete_namespace(project: Project, env: str, *, wait: bool) -> None:
    """Start from (or leave) a cluster without the app: other modules apply the same overlay with other
    secrets, and PostgreSQL keeps the password of the data directory it first initialised."""
    with kube.connect(project.access(env)) as k:
        if not k.delete("v1", "Namespace", NAMESPACE) or not wait:
            return
        deadline = time.monotonic() + 90
        while k.get("v1", "Namespace", NAMESPACE) is not None:
            assert time.monotonic() < deadline, f"namespace {NAMESPACE} still terminating in {env}"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def project(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A clone of this checkout's HEAD with its own bare remote and image repository, on the sandbox."""
    clone, remote, environ = seeded_clone(
        tmp_path_factory.mktemp("release-e2e"),
        clusters,
        PIPELINE_IMAGE_REPOSITORY=f"release-e2e/backend-{uuid.uuid4().hex[:8]}",
    )
    settings = config.load(clone, environ)
    with process_env(environ):
        # release.py builds the app's Secret from os.environ and authenticates with google.auth.default().
        made = Project(clone, remote, environ, settings, clusters)
        for env in ("staging", "prod"):
            _delete_namespace(made, env, wait=True)
        try:
            yield made
        finally:
            for env in ("staging", "prod"):
                with contextlib.suppress(Exception):
                    _delete_namespace(made, env, wait=False)
            _remove_local_images(settings.image_repository)


def _remove_local_images(repository: str) -> None:
    import docker

    client = docker.from_env()
    for image in client.images.list(filters={"reference": f"{repository}:*"}):
        for tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, force=True)


# --- talking to the service as its users do ----------------------------------------------------------------


def http_get(ip: str, port: int, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def http_post_json(ip: str, port: int, path: str, body: dict[str, Any]) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def https_get(ip: str, port: int, host: str, path: str, ca_file: str) -> tuple[int, str]:
    """GET over TLS to ``ip``, ``host`` as SNI and Host, chain and name checked against ``ca_file``."""
    context = ssl.create_default_context(cafile=ca_file)
    raw = socket.create_connection((ip, port), timeout=10)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.sock = tls
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def served_commit(ip: str) -> str:
    status, body = http_get(ip, NODE_PORT, "/version")
    assert status == 200, body
    return str(json.loads(body)["commit"])


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error: {last!r})")


class Poller(threading.Thread):
    """GET / on the NodePort every 0.2 s, noting each answer (a status, or the error instead)."""

    def __init__(self, ip: str, port: int) -> None:
        super().__init__(daemon=True)
        self.ip, self.port = ip, port
        self.answers: list[int | str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, _ = http_get(self.ip, self.port, "/", timeout=2)
                self.answers.append(status)
            except (OSError, http.client.HTTPException) as e:
                self.answers.append(f"{type(e).__name__}: {e}")
            self.done.wait(0.2)

    def stop(self) -> list[int | str]:
        self.done.set()
        self.join(timeout=10)
        return self.answers


def explain(report: ReleaseReport) -> str:
    rows = "\n".join(f"  {s.name}: {s.status} {s.seconds:.1f}s {s.detail}" for s in report.stages)
    return f"{report.result}: {report.reason}\n{rows}\n{report.diagnosis}"


# --- the stories, in order ---------------------------------------------------------------------------------


def test_missing_image_is_refused_before_any_commit(project: Project) -> None:
    before = project.main()
    with pytest.raises(ImageNotFound, match="no-such-tag"):
        release(project.settings, "staging", image_ref=f"{project.repository}:no-such-tag")
    assert project.main() == before
    assert history.read(project.settings, "staging") == []
    with kube.connect(project.access("staging")) as k:
        assert k.get("v1", "Namespace", NAMESPACE) is None  # nor was anything applied


def test_good_release_reaches_staging_verified(project: Project) -> None:
    head = git("rev-parse", "HEAD", cwd=project.clone).strip()
    before = project.main()
    report = release(project.settings, "staging")
    assert report.result == "released", explain(report)
    assert report.image is not None and report.image.digest
    assert report.image.tag == f"sha-{head[:7]}"
    assert report.source_commit == head
    # noop: the no-op check comes first (it finds another image); fingerprint: what the next one reads. A
    # first release has nothing to back up yet, and its migrations run once the apply made the database.
    stages = [
        "build", "noop", "preflight", "backup", "bump", "apply", "migrate", "rollout", "smoke", "record",
        "fingerprint",
    ]  # fmt: skip
    assert [s.name for s in report.stages] == stages

    # Git: one commit on top of what was there, touching only staging's overlay, pinning tag and digest.
    assert report.bump_commit == project.main()
    assert git("--git-dir", str(project.remote), "rev-parse", "main~1").strip() == before
    changed = git("--git-dir", str(project.remote), "diff", "--name-only", "main~1", "main").split()
    assert changed == [OVERLAY.format(env="staging")]
    pin = project.pin("staging")
    assert pin["newName"] == project.repository
    assert pin["newTag"] == f"sha-{head[:7]}"
    assert pin["digest"] == report.image.digest

    # The service as users reach it: the NodePort on the node, and HTTPS through the Ingress.
    ip = project.node_ip("staging")
    assert http_get(ip, NODE_PORT, "/") == (200, GREETING)
    assert served_commit(ip) == head
    ingress = project.live("staging", "Ingress", "backend-core-ingress", "networking.k8s.io/v1")
    host = ingress["spec"]["rules"][0]["host"]
    env = project.environ
    status, body = https_get(ip, int(env["PIPELINE_INGRESS_PORT"]), host, "/", env["SANDBOX_CA_CERT"])
    assert (status, body) == (200, GREETING)

    records = history.read(project.settings, "staging")
    assert records[0].result == "succeeded"
    assert records[0].digest == report.image.digest and records[0].source_commit == head
    project.carried.first, project.carried.first_commit = report.image, head


def test_second_release_with_nothing_new_changes_nothing(project: Project) -> None:
    before = project.main()
    version = project.live("staging", "Deployment", BACKEND)["metadata"]["resourceVersion"]
    started = time.monotonic()
    report = release(project.settings, "staging")
    elapsed = time.monotonic() - started
    assert report.result == "unchanged", explain(report)
    assert elapsed < 5, f"a no-op release took {elapsed:.1f} s"
    assert project.main() == before
    assert project.live("staging", "Deployment", BACKEND)["metadata"]["resourceVersion"] == version
    ran = {s.name: s.status for s in report.stages}
    assert all(ran[name] == "skipped" for name in ("bump", "apply", "rollout", "smoke", "record"))


@pytest.fixture(scope="module")
def crash(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The released good image with CRASH_ON_START set (it exits with code 3), pushed beside it."""
    import docker

    good = project.carried.first
    assert good is not None, "needs the good release of test_good_release_reaches_staging_verified"
    tag = f"crash-{uuid.uuid4().hex[:6]}"
    context = tmp_path_factory.mktemp("crash-image")
    (context / "Dockerfile").write_text(f"FROM {good.ref}\nENV CRASH_ON_START=1\n")
    client = docker.from_env()
    client.images.build(path=str(context), tag=f"{good.repository}:{tag}", rm=True)
    auth = {"username": project.environ["DOCKERHUB_USERNAME"], "password": project.environ["DOCKERHUB_TOKEN"]}
    digest = ""
    for line in client.images.push(good.repository, tag, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, f"pushing {good.repository}:{tag}: {line['error']}"
        digest = line.get("aux", {}).get("Digest", digest)
    assert digest.startswith("sha256:")
    return Image(good.repository, tag, digest)


def test_plan_shows_changes_and_hides_secret_values(
    project: Project, crash: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = project.main()
    version = project.live("staging", "Deployment", BACKEND)["metadata"]["resourceVersion"]
    old = os.environ["CAMPUS_ADMIN_PASS"]
    new = f"another-admin-{uuid.uuid4().hex}"
    monkeypatch.setenv("CAMPUS_ADMIN_PASS", new)
    result = plan(project.settings, "staging")
    diffs = {d.ref: d for d in result.diffs}
    secret = diffs[f"Secret {NAMESPACE}/backend-core-secrets"]
    assert secret.action == "change"
    assert dict(secret.secret_keys) == {"ADMIN_PASS": "changed", "POSTGRES_PASSWORD": "unchanged"}
    assert {d.action for d in diffs.values() if d is not secret} == {"unchanged"}
    shown = repr(result)
    for value in (old, new, os.environ["CAMPUS_POSTGRES_PASSWORD"]):
        encoded = base64.b64encode(value.encode()).decode()
        assert all(value not in d.diff and encoded not in d.diff for d in result.diffs)
        assert value not in shown and encoded not in shown
    monkeypatch.undo()

    assert crash.digest is not None
    result = plan(project.settings, "staging", image_ref=f"{crash.ref}@{crash.digest}")
    diffs = {d.ref: d for d in result.diffs}
    deployment = diffs[f"Deployment {NAMESPACE}/{BACKEND}"]
    assert deployment.action == "change"
    lines = deployment.diff.splitlines()
    assert f"-        image: {project.pinned('staging')}" in lines, deployment.diff
    assert f"+        image: {crash.pinned}" in lines, deployment.diff
    assert diffs[f"Secret {NAMESPACE}/backend-core-secrets"].action == "unchanged"
    # A plan writes nothing.
    assert project.main() == before
    assert project.live("staging", "Deployment", BACKEND)["metadata"]["resourceVersion"] == version


def test_crashing_image_is_caught_and_reverted_while_the_service_answers(
    project: Project, crash: Image
) -> None:
    good = project.carried.first
    assert good is not None and good.digest is not None
    before = project.main()
    poller = Poller(project.node_ip("staging"), NODE_PORT)
    poller.start()
    try:
        started = time.monotonic()
        report = release(project.settings, "staging", image_ref=crash.ref)
        elapsed = time.monotonic() - started
    finally:
        answers = poller.stop()
    assert report.result == "rolled-back", explain(report)
    assert elapsed < 90, f"caught and reverted in {elapsed:.0f} s"
    assert "CrashLoopBackOff" in report.reason and "exit code 3" in report.reason, report.reason
    assert "CRASH_ON_START" in report.diagnosis  # the pod's last log lines
    assert report.image is not None and report.image.digest == crash.digest

    # The service kept answering: every poll got 200 (a refused connection is recorded as an error).
    assert len(answers) >= 5, answers
    assert all(a == 200 for a in answers), [a for a in answers if a != 200][:5]

    # Git: the bump, then the revert naming why.
    assert git("--git-dir", str(project.remote), "rev-parse", "main~2").strip() == before
    revert, bump = project.subjects(2)
    assert bump.startswith(f"deploy(staging): backend {crash.tag}"), bump
    assert revert.startswith(f"rollback(staging): backend back to {good.tag}"), revert
    message = git("--git-dir", str(project.remote), "log", "-1", "--format=%B", "main")
    assert "CrashLoopBackOff" in message and f"Failed-Image: {crash.pinned}" in message
    assert project.pin("staging")["newTag"] == good.tag
    assert project.pin("staging")["digest"] == good.digest

    # The cluster: the Deployment and every pod that stays run the good image again.
    deployment = project.live("staging", "Deployment", BACKEND)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == good.pinned
    pods = project.pods("staging", "backend-core")
    assert pods and {p["spec"]["containers"][0]["image"] for p in pods} == {good.pinned}
    assert http_get(project.node_ip("staging"), NODE_PORT, "/") == (200, GREETING)

    records = history.read(project.settings, "staging")
    assert records[0].result == "rolled-back" and records[0].digest == crash.digest

    # A digest that failed is not released again unless forced (a push to main cannot undo the revert).
    after = project.main()
    with pytest.raises(ReleaseRefused, match="failed in staging before"):
        release(project.settings, "staging", image_ref=crash.ref)
    assert project.main() == after


def test_first_release_that_fails_has_no_previous_release_to_restore(project: Project, crash: Image) -> None:
    # Prod has never had a release: its overlay still pins the placeholder the repository ships with.
    placeholder = project.pin("prod")
    assert "digest" not in placeholder and placeholder["newTag"] == "sha-0000000"
    report = release(project.settings, "prod", image_ref=crash.ref, approved_by="Asha Rao")
    assert report.result == "failed", explain(report)
    assert "CrashLoopBackOff" in report.reason, report.reason
    # Nothing to go back to: say so, rather than "restore" an image that was never built.
    assert "no previous release to return to" in report.reason, report.reason
    assert "failed too" not in report.reason, report.reason
    image = project.live("prod", "Deployment", BACKEND)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image != f"{placeholder['newName']}:{placeholder['newTag']}"


def test_prod_needs_approval_then_runs_stagings_exact_digest(project: Project) -> None:
    before = project.main()
    with pytest.raises(ApprovalRequired):
        promote(project.settings, "prod")
    assert project.main() == before

    refused = project.invoke("promote", "--env", "prod")
    assert refused.returncode == 1, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "prod is protected" in errors[0], refused.stderr
    assert refused.stderr.strip() == errors[0]
    assert refused.stdout == ""
    assert project.main() == before

    report = promote(project.settings, "prod", approved_by="Asha Rao")
    assert report.result == "released", explain(report)
    assert report.kind == "promote"
    staging = project.pinned("staging")
    assert project.pinned("prod") == staging
    deployment = project.live("prod", "Deployment", BACKEND)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == staging
    pods = project.pods("prod", "backend-core")
    assert len(pods) == 2 and {p["spec"]["containers"][0]["image"] for p in pods} == {staging}
    assert http_get(project.node_ip("prod"), NODE_PORT, "/") == (200, GREETING)

    assert report.bump_commit == project.main()
    trailer = git("--git-dir", str(project.remote), "log", "-1", APPROVED_BY, report.bump_commit)
    assert trailer.strip() == "Asha Rao"
    records = history.read(project.settings, "prod")
    assert records[0].result == "succeeded" and records[0].kind == "promote"
    assert records[0].approved_by == "Asha Rao"
    assert report.image is not None and records[0].digest == report.image.digest


def test_rollback_returns_to_the_previous_good_release(project: Project) -> None:
    first = project.carried.first
    assert first is not None
    ip = project.node_ip("staging")
    # A second good release, from a new commit (the README is not in the build context, but the commit
    # is baked into the binary, so the image is new), through the CLI as a user runs it.
    readme = project.clone / "backend" / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- release e2e: a second commit -->\n")
    git(*AUTHOR, "commit", "-qam", "backend: a note in the README", cwd=project.clone)
    second = git("rev-parse", "HEAD", cwd=project.clone).strip()
    done = project.invoke("release", "--env", "staging", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["result"] == "released" and result["ok"] is True
    assert result["image"]["tag"] == f"sha-{second[:7]}"
    assert result["image"]["digest"].startswith("sha256:")
    assert result["image"]["digest"] == project.pin("staging")["digest"]
    assert served_commit(ip) == second

    report = rollback(project.settings, "staging")
    assert report.result == "released", explain(report)
    assert report.kind == "rollback"
    assert project.pin("staging")["newTag"] == first.tag
    assert project.pin("staging")["digest"] == first.digest
    assert served_commit(ip) == project.carried.first_commit
    assert history.read(project.settings, "staging")[0].kind == "rollback"


def test_database_keeps_its_data_when_its_pod_is_deleted(project: Project) -> None:
    ip = project.node_ip("staging")
    text = f"kept across a pod deletion {uuid.uuid4().hex[:8]}"
    status, body = http_post_json(ip, NODE_PORT, "/api/notes", {"text": text})
    assert status == 201, body
    (old,) = project.pods("staging", "db-core")
    with kube.connect(project.access("staging")) as k:
        assert k.delete("v1", "Pod", old["metadata"]["name"], NAMESPACE)

    def db_ready() -> bool:
        pods = [
            p for p in project.pods("staging", "db-core") if p["metadata"]["uid"] != old["metadata"]["uid"]
        ]
        conditions = [c for p in pods for c in p.get("status", {}).get("conditions") or []]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for("a new db-core pod Ready", db_ready, 90)
    wait_for("backend /healthz 200", lambda: http_get(ip, NODE_PORT, "/healthz")[0] == 200, 60)
    status, body = http_get(ip, NODE_PORT, "/api/notes")
    assert status == 200, body
    assert text in [note["text"] for note in json.loads(body)]
