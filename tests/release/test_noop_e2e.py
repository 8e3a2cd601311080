"""The no-op shortcut on the sandbox: taken only when nothing differs, the full pre-flight otherwise.

A verified release leaves its fingerprint on the ApplySet parent; the next release of the same image
finds nothing new from cheap facts and skips the pre-flight. Then, one at a time, a hand edit in the
cluster (``kubectl scale``), a changed overlay on the GitOps remote, a changed Secret value and another
image each send the release down the full path (every pre-flight check runs), and after each the
shortcut is taken again. ``plan`` and ``drift`` still show the hand edit: they never use the shortcut.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import config, fingerprint, gke, kube
from pipeline.release import ReleaseReport, drift, plan, release

from .conftest import Clusters, git, process_env, running_sandbox, seeded_clone  # type: ignore[import-not-found]

pytestmark = [
    pytest.mark.e2e,
    # One of the in-process releases leaves a client socket to the API server for the garbage collector
    # (seen once in a full run, in whichever request the collection happened to interrupt); not yet traced.
    # A release runs as a process of its own for users, where this costs nothing; tracked, not hidden.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

NAMESPACE = "campus"
BACKEND = "backend-core-deployment"
AUTHOR = ("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid")


@dataclass
class Project:
    clone: Path
    remote: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters
    work: Path

    def access(self) -> gke.ClusterAccess:
        return self.clusters.access("staging")

    def kubectl(self, *args: str) -> str:
        proc = subprocess.run(
            ["kubectl", "--context", "staging", "-n", NAMESPACE, *args],
            env={**os.environ, "KUBECONFIG": self.clusters.env["KUBECONFIG"]},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def deployment(self) -> dict[str, object]:
        with kube.connect(self.access()) as k:
            obj = k.get("apps/v1", "Deployment", BACKEND, NAMESPACE)
        assert obj is not None
        return obj

    def commit_to_remote(self, path: str, edit: str) -> None:
        """A change to the GitOps remote made by someone else (a clone, an edit, a push)."""
        other = self.work / f"other-{uuid.uuid4().hex[:6]}"
        git("clone", "-q", str(self.remote), str(other))
        target = other / path
        target.write_text(target.read_text() + edit)
        git(*AUTHOR, "commit", "-qam", "staging: hand-made overlay change", cwd=other)
        git("push", "-q", "origin", "HEAD:main", cwd=other)


def ran(report: ReleaseReport) -> dict[str, str]:
    return {s.name: s.status for s in report.stages}


def explain(report: ReleaseReport) -> str:
    rows = "\n".join(f"  {s.name}: {s.status} {s.seconds:.2f}s {s.detail}" for s in report.stages)
    return f"{report.result}: {report.reason}\n{rows}\n{report.diagnosis}"


def assert_full_path(report: ReleaseReport, why: str) -> None:
    stages = {s.name: s for s in report.stages}
    assert stages["noop"].status == "ok" and why in stages["noop"].detail, explain(report)
    assert stages["preflight"].status == "ok", explain(report)


def assert_shortcut(project: Project) -> ReleaseReport:
    version = project.deployment()["metadata"]["resourceVersion"]  # type: ignore[index]
    report = release(project.settings, "staging", image_ref=project.environ["IMAGE"])
    assert report.result == "unchanged", explain(report)
    assert ran(report)["noop"] == "ok" and ran(report)["preflight"] == "skipped", explain(report)
    assert project.deployment()["metadata"]["resourceVersion"] == version  # type: ignore[index]
    return report


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox-noop"), "127.0.0.82,127.0.0.83") as made:
        yield made


@pytest.fixture(scope="module")
def project(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    work = tmp_path_factory.mktemp("noop-e2e")
    clone, remote, environ = seeded_clone(
        work, clusters, PIPELINE_IMAGE_REPOSITORY=f"noop-e2e/backend-{uuid.uuid4().hex[:8]}"
    )
    settings = config.load(clone, environ)
    with process_env(environ):
        yield Project(clone, remote, environ, settings, clusters, work)
        with kube.connect(Project(clone, remote, environ, settings, clusters, work).access()) as k:
            k.delete("v1", "Namespace", NAMESPACE)


def test_a_verified_release_leaves_its_fingerprint(project: Project) -> None:
    report = release(project.settings, "staging")
    assert report.result == "released", explain(report)
    assert ran(report)["noop"] == "ok" and ran(report)["fingerprint"] == "ok", explain(report)
    project.environ["IMAGE"] = report.image.pinned
    with kube.connect(project.access()) as k:
        parent = k.get("v1", "ConfigMap", "campus-pipeline-staging", NAMESPACE)
    left = fingerprint.read(parent)
    assert left is not None and left.inputs and left.members and left.objects


def test_nothing_new_takes_the_shortcut(project: Project) -> None:
    started = time.monotonic()
    assert_shortcut(project)
    assert time.monotonic() - started < 3
    # Without --image too (the build step finds the tag in the registry, then the same shortcut).
    report = release(project.settings, "staging")
    assert report.result == "unchanged" and ran(report)["preflight"] == "skipped", explain(report)


def test_a_hand_edit_takes_the_full_path_and_plan_and_drift_show_it(project: Project) -> None:
    project.kubectl("scale", f"deployment/{BACKEND}", "--replicas=2")
    diffs = {f"{d.kind} {d.name}": d for d in plan(project.settings, "staging").diffs}
    assert diffs[f"Deployment {BACKEND}"].action == "change"
    assert drift(project.settings, "staging").found
    report = release(project.settings, "staging", image_ref=project.environ["IMAGE"])
    assert_full_path(report, "changed since the last release")
    assert report.result == "released", explain(report)
    assert project.deployment()["spec"]["replicas"] == 1  # type: ignore[index]
    assert_shortcut(project)


def test_a_changed_overlay_takes_the_full_path(project: Project) -> None:
    project.commit_to_remote(
        "overlays/staging/kustomization.yaml", "commonAnnotations:\n  campus.example/noop-test: changed\n"
    )
    report = release(project.settings, "staging", image_ref=project.environ["IMAGE"])
    assert_full_path(report, "differ from the last release")
    assert report.result == "released", explain(report)
    annotations = project.deployment()["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["campus.example/noop-test"] == "changed"
    assert_shortcut(project)


def test_a_changed_secret_value_takes_the_full_path(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPUS_ADMIN_PASS", "rotated-" + uuid.uuid4().hex[:8])
    report = release(project.settings, "staging", image_ref=project.environ["IMAGE"])
    assert_full_path(report, "Secret's values differ")
    assert report.result == "released", explain(report)
    assert_shortcut(project)


def test_another_image_takes_the_full_path(project: Project) -> None:
    import docker

    current = project.environ["IMAGE"].split("@")[0]
    repository, _, _ = current.rpartition(":")
    context = project.work / "relabelled"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {current}\nLABEL campus.example/noop-test=another\n")
    client = docker.from_env()
    tag = f"another-{uuid.uuid4().hex[:6]}"
    client.images.build(path=str(context), tag=f"{repository}:{tag}", rm=True)
    auth = {"username": project.environ["DOCKERHUB_USERNAME"], "password": project.environ["DOCKERHUB_TOKEN"]}
    for line in client.images.push(repository, tag, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
    report = release(project.settings, "staging", image_ref=f"{repository}:{tag}")
    assert_full_path(report, "of this image")
    assert report.result == "released", explain(report)
    project.environ["IMAGE"] = report.image.pinned
    assert_shortcut(project)


def test_rollout_success_is_noticed_within_0_3_s_of_the_status(project: Project) -> None:
    """The wait is a watch: its verdict follows the Deployment's status update, not a polling tick.

    A watch of our own sees the API server's status update that completes the rollout; the pipeline's
    verdict must come within 0.3 s of it (both hear the same event from the same server).
    """
    import threading

    from pipeline import rollout
    from pipeline.rollout.status import judge

    before = int(project.deployment()["metadata"]["generation"])  # type: ignore[index]
    seen: list[float] = []
    done = threading.Event()

    def observe() -> None:
        with kube.connect(project.access()) as k:
            stream = k.watch("apps/v1", "Deployment", namespace=NAMESPACE, name=BACKEND, timeout=90)
            for event in stream:
                obj = event.object
                status = obj.get("status") or {}
                if (
                    int(obj["metadata"].get("generation", 0)) > before
                    and status.get("observedGeneration") == obj["metadata"]["generation"]
                    and judge(obj).done
                ):
                    seen.append(time.monotonic())
                    break
                if done.is_set():
                    break
            stream.stop()
            for _ in stream:  # let the stream end and give its connection back, as the waiter does
                pass

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the watch is open before the change
    project.kubectl("rollout", "restart", f"deployment/{BACKEND}")
    with kube.connect(project.access()) as k:
        result = rollout.wait(k, [("Deployment", NAMESPACE, BACKEND)], timeout=90)
    verdict = time.monotonic()
    done.set()
    watcher.join(timeout=30)
    assert result.ok, result.diagnosis
    assert seen, "our own watch never saw the rollout complete"
    lag = verdict - seen[0]
    print(f"rollout verdict {lag * 1000:.0f} ms after the completing status update")
    assert lag < 0.3, f"the verdict came {lag:.2f} s after the status said complete"
