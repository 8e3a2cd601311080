"""Faults injected into the sandbox during real releases (`invoke release`), one test per row of the table.

Each test throws one switch of the sandbox's control interface (API server, registry, git remote, token
endpoint, a container, the database pod) before or during a release of a new image, then checks the
outcome from the outside: the exit code, the one-line diagnosis, and that git and the cluster agree
(the remote's pin is what the cluster runs, its rollout complete) with nothing half-done (no new commit
after a refused release). The rows go to docs/reliability.md through ``scripts/reliability-report``.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from pipeline import history

from .conftest import NAMESPACE, Project, last_line  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


def consistent(project: Project, env: str = "staging") -> str:
    """git's pin and the running image agree and the rollout is complete; returns the pin."""
    pin = project.pin(env)
    image, done = project.running(env)
    assert image == pin, f"git pins {pin} but {env} runs {image}"
    assert done, f"{env}: the backend's rollout is not complete"
    return pin


def released(
    project: Project,
    rows: list[dict[str, Any]],
    fault: str,
    injected: str,
    outcome: str = "retried; released and verified",
    **during: Any,
) -> None:
    """Release a new image, the fault thrown first or (``when='bumped'``) as the bump lands: success."""
    image = next(project.variants)
    before = project.main()
    started = time.monotonic()
    throw = during.pop("throw")
    if during.get("when") == "bumped":
        project.when_bumped(before, throw)
    else:
        throw()
    done = project.invoke("release", "--env", "staging", "--image", image)
    seconds = time.monotonic() - started
    project.faults.clear()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    pin = consistent(project)
    assert pin.startswith(image + "@")
    assert history.read(project.settings, "staging")[0].result == "succeeded"
    rows.append(
        {
            "fault": fault,
            "injected": injected,
            "outcome": outcome,
            "exit": done.returncode,
            "diagnosis": "",
            "seconds": round(seconds, 1),
            "checked": "pin == running image, rollout complete, history succeeded",
        }
    )


def refused(
    project: Project, rows: list[dict[str, Any]], fault: str, injected: str, expect: str, throw: Any
) -> str:
    """Release a new image with the fault on all along; expect exit 1, ``expect`` in the last line, and
    nothing changed (no commit on the remote, the cluster still on the last good image)."""
    image = next(project.variants)
    before, pin_before = project.main(), consistent(project)
    started = time.monotonic()
    throw()
    try:
        done = project.invoke("release", "--env", "staging", "--image", image)
    finally:
        project.faults.clear()
        project.faults.allow_git_pushes()
    seconds = time.monotonic() - started
    line = last_line(done)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert expect in line, line
    assert project.main() == before, "a refused release left a commit on the remote"
    assert consistent(project) == pin_before
    rows.append(
        {
            "fault": fault,
            "injected": injected,
            "outcome": "refused, nothing written",
            "exit": done.returncode,
            "diagnosis": line,
            "seconds": round(seconds, 1),
            "checked": "no new commit, cluster on the last good image, rollout complete",
        }
    )
    return line


def test_first_release_is_the_baseline(project: Project, rows: list[dict[str, Any]]) -> None:
    done = project.invoke("release", "--env", "staging", "--image", next(project.variants))
    assert done.returncode == 0, done.stderr[-2000:]
    consistent(project)


def test_api_server_503_for_4s_before_the_release(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "API server answers 503",
        "api:staging status 503 for 4 s, from the start",
        throw=lambda: project.faults.set_fault("api:staging", "status", status=503, seconds=4),
    )


def test_api_server_500_for_4s_after_the_bump(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "API server answers 500 mid-release",
        "api:staging status 500 for 4 s, as the bump lands (apply, rollout)",
        when="bumped",
        throw=lambda: project.faults.set_fault("api:staging", "status", status=500, seconds=4),
    )


def test_api_server_refuses_connections_for_4s_mid_rollout(
    project: Project, rows: list[dict[str, Any]]
) -> None:
    released(
        project,
        rows,
        "API server unreachable (connection refused) mid-release",
        "api:staging refuse for 4 s (listener and open connections closed), as the bump lands",
        when="bumped",
        throw=lambda: project.faults.set_fault("api:staging", "refuse", seconds=4),
    )


def test_api_server_hangs_for_3s(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "API server hangs",
        "api:staging hang for 3 s (requests held, then answered), as the bump lands",
        when="bumped",
        throw=lambda: project.faults.set_fault("api:staging", "hang", seconds=3),
    )


def test_api_latency_200ms_for_a_whole_release(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "API latency",
        "api:staging latency +200 ms on every request, all along",
        throw=lambda: project.faults.set_fault("api:staging", "latency", delay_ms=200),
    )


def test_api_server_down_beyond_the_retry_budget(project: Project, rows: list[dict[str, Any]]) -> None:
    refused(
        project,
        rows,
        "API server unreachable for good",
        "api:staging refuse until cleared",
        "cannot reach the API server",
        lambda: project.faults.set_fault("api:staging", "refuse"),
    )


def test_registry_503_for_4s(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "registry answers 503",
        "registry status 503 for 4 s, from the start (digest lookup)",
        throw=lambda: project.faults.set_fault("registry", "status", status=503, seconds=4),
    )


def test_registry_401(project: Project, rows: list[dict[str, Any]]) -> None:
    refused(
        project,
        rows,
        "registry answers 401",
        "registry status 401 until cleared",
        "401 unauthorized",
        lambda: project.faults.set_fault("registry", "status", status=401),
    )


def test_git_remote_refuses_pushes(project: Project, rows: list[dict[str, Any]]) -> None:
    # The first write of a release is its "started" record (a git note), so that is what is refused.
    refused(
        project,
        rows,
        "git remote refuses pushes",
        "pre-receive hook declines every push",
        "the remote refuses pushes (pre-receive hook declined)",
        lambda: project.faults.refuse_git_pushes(),
    )


def without_cached_token(project: Project, throw: Any) -> Any:
    """``throw``, after dropping the GKE access kept between commands (pipeline/gkecache.py): the
    release then needs the token endpoint, as a fresh CI runner does."""

    def thrown() -> Any:
        shutil.rmtree(project.clone / ".pipeline" / "cache" / "gke", ignore_errors=True)
        return throw()

    return thrown


def test_token_endpoint_503_for_4s(project: Project, rows: list[dict[str, Any]]) -> None:
    released(
        project,
        rows,
        "token endpoint answers 503",
        "token status 503 for 4 s, from the start (GKE authentication)",
        throw=without_cached_token(
            project, lambda: project.faults.set_fault("token", "status", status=503, seconds=4)
        ),
    )


def test_token_endpoint_failing(project: Project, rows: list[dict[str, Any]]) -> None:
    refused(
        project,
        rows,
        "token endpoint failing",
        "token status 500 until cleared",
        "token endpoint kept failing",
        without_cached_token(project, lambda: project.faults.set_fault("token", "status", status=500)),
    )


def _newest_backend_pod(project: Project, image: str) -> str | None:
    from pipeline import kube

    with kube.connect(project.access("staging")) as k:
        pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector="app=backend-core")
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if pod["spec"]["containers"][0]["image"].startswith(image) and any(
            (s.get("state") or {}).get("running") for s in statuses
        ):
            return str(pod["metadata"]["name"])
    return None


def test_backend_container_killed_mid_rollout(project: Project, rows: list[dict[str, Any]]) -> None:
    image = next(project.variants)
    killed: list[str] = []

    def kill_when_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            pod = _newest_backend_pod(project, image)
            if pod is not None:
                killed.extend(project.faults.kill_container("staging", NAMESPACE, pod, "backend-core"))
                return
            time.sleep(0.1)

    before = project.main()
    started = time.monotonic()
    project.when_bumped(before, kill_when_running)
    done = project.invoke("release", "--env", "staging", "--image", image)
    assert done.returncode == 0, done.stderr[-2000:]
    assert killed, "the new pod's container was never seen running"
    assert consistent(project).startswith(image + "@")
    assert history.read(project.settings, "staging")[0].result == "succeeded"
    rows.append(
        {
            "fault": "container killed",
            "injected": "SIGKILL of the new backend pod's container as soon as it runs",
            "outcome": "kubelet restarts it; released and verified",
            "exit": done.returncode,
            "diagnosis": "",
            "seconds": round(time.monotonic() - started, 1),
            "checked": "pin == running image, rollout complete, history succeeded",
        }
    )


def test_database_pod_deleted_mid_release(project: Project, rows: list[dict[str, Any]]) -> None:
    from pipeline import kube

    with kube.connect(project.access("staging")) as k:
        pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector="app=db-core")
    assert pods, "no database pod"
    name = str(pods[0]["metadata"]["name"])
    released(
        project,
        rows,
        "database pod deleted",
        f"pod {name} deleted as the bump lands",
        "its Deployment recreates it on the same claim; released and verified",
        when="bumped",
        throw=lambda: project.faults.delete_pod("staging", NAMESPACE, name),
    )
    with kube.connect(project.access("staging")) as k:
        deadline = time.monotonic() + 90
        while True:
            pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector="app=db-core")
            ready = [
                p
                for p in pods
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions") or []
                )
            ]
            if ready and ready[0]["metadata"]["name"] != name:
                break
            assert time.monotonic() < deadline, "the database pod did not come back"
            time.sleep(0.5)


def test_git_refuses_pushes_while_a_crashing_image_rolls_back(
    project: Project, rows: list[dict[str, Any]]
) -> None:
    """Defect 4 of issue 10: the revert cannot be pushed, yet the cluster goes back to the last good image
    (verified), the line keeps the rollout's diagnosis and says what is left to do in git; once the
    remote accepts pushes again, `invoke rollback` makes git agree."""
    good = consistent(project)
    before = project.main()
    started = time.monotonic()
    project.when_bumped(before, project.faults.refuse_git_pushes)
    try:
        done = project.invoke("release", "--env", "staging", "--image", project.images.crash)
    finally:
        project.faults.allow_git_pushes()
    line = last_line(done)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert "rollout:" in line and "reverting git failed" in line and "again, verified" in line, line
    image, complete = project.running("staging")
    assert image == good and complete, f"the cluster runs {image}, not the last good {good}"
    assert project.pin("staging").startswith(project.images.crash + "@")  # what the line says is left
    again = project.invoke("rollback", "--env", "staging")
    assert again.returncode == 0, again.stderr[-2000:]
    assert consistent(project) == good
    rows.append(
        {
            "fault": "git remote refuses pushes during a rollback",
            "injected": "pre-receive hook declines every push from the moment a crashing image's bump lands",
            "outcome": "rollout fails (CrashLoopBackOff); the cluster is put back and verified although "
            "the revert cannot be pushed; `invoke rollback` afterwards makes git agree",
            "exit": done.returncode,
            "diagnosis": line,
            "seconds": round(time.monotonic() - started, 1),
            "checked": "cluster on the last good image at once; after `invoke rollback`: pin == image",
        }
    )
