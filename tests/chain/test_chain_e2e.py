"""One operation at a time, and a kill at any moment converges: issue 10's must-shows on the sandbox.

The stories run in order on one project with two clones (two machines) of the project and one GitOps
remote, each through the CLI as a user runs it (in its own session when a test kills it, as
``setsid invoke release ... &`` would be), then checked from the outside: the pin on the remote, the
Deployment and its pods, the service over the NodePort, and ``history``. Nothing of ``pipeline/`` is
patched; the remote refusing pushes is a real ``pre-receive`` hook in the bare repository.
"""

from __future__ import annotations

import http.client
import re
import signal
import time

import pytest

from pipeline import history

from .conftest import Project, Variants  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

NODE_PORT = 30100
GREETING = "Hello from the other side!"
# What the Lease's expiry allows a killed release's successor to wait, at most (30 s + polls and slack).
EXPIRY_BOUND = 45


def greeting(ip: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ip, NODE_PORT, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def digest_of(project: Project, ref: str) -> str:
    """The digest the pin records for ``ref`` (repository:tag), from the history's newest mention."""
    for r in history.read(project.settings, "staging"):
        if r.image == ref and r.digest:
            return r.digest
    raise AssertionError(f"no record of {ref}")


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def converged(project: Project, ref: str) -> None:
    """Git pins ``ref``, the Deployment and every pod run exactly that, and the service answers."""
    pinned = project.pinned()
    assert pinned.startswith(f"{ref}@sha256:"), pinned
    image, pods = project.running()
    assert image == pinned
    assert pods == {pinned}, pods
    assert greeting(project.node_ip) == (200, GREETING)


def test_two_releases_at_once_from_two_machines_run_one_after_the_other(
    project: Project, images: Variants
) -> None:
    a = project.start("release", "--env", "staging", "--image", images.good, clone=0)
    b = project.start("release", "--env", "staging", "--image", images.b, clone=1)
    done = {images.good: a.finish(), images.b: b.finish()}
    for ref, result in done.items():
        assert result.returncode == 0, f"{ref}:\n{result.stderr}"
    # One of them found the other holding the environment, said so, and went second.
    waited = [ref for ref, result in done.items() if "waiting for the release by" in result.stderr]
    assert len(waited) == 1, {ref: r.stderr for ref, r in done.items()}
    line = next(x for x in done[waited[0]].stderr.splitlines() if "waiting for the release by" in x)
    assert re.search(r"waiting for the release by \S+@\S+ pid \d+, started 20\d\d-\d\d-\d\dT", line), line
    last = waited[0]
    first = images.b if last == images.good else images.good
    assert (a if last == images.good else b).ended_at >= (b if last == images.good else a).ended_at  # type: ignore[operator]

    converged(project, last)
    records = history.read(project.settings, "staging")
    assert [(r.image, r.result) for r in records[:2]] == [(last, "succeeded"), (first, "succeeded")]
    assert records[1].at <= records[0].at


def test_a_release_killed_mid_rollout_converges_on_the_next_run(project: Project, images: Variants) -> None:
    before = project.pinned()
    victim = project.start("release", "--env", "staging", "--image", images.c)
    victim.wait_for("[rollout]", 180)
    time.sleep(0.3)
    victim.signal_group(signal.SIGKILL)  # kill -9 -- -PID
    assert victim.finish(30).returncode == -signal.SIGKILL, victim.stderr  # killed, not finished
    assert project.pinned() != before  # its bump is in

    # Its Lease outlives it (until it expires): another machine is refused at once with --no-wait.
    busy = project.invoke("release", "--env", "staging", "--image", images.b, "--no-wait", clone=1)
    assert busy.returncode == 1, busy.stderr
    (line,) = error_lines(busy.stderr)
    assert re.search(
        r"Lease campus/campus-pipeline-staging is held: the release by \S+ pid \d+, started ", line
    ), line

    started = time.monotonic()
    again = project.invoke("release", "--env", "staging", "--image", images.c)
    elapsed = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    assert "waiting for the release by" in again.stderr  # the dead holder's Lease, until it expired
    assert "nothing to do" not in again.stderr
    assert elapsed < EXPIRY_BOUND + 120, f"converged in {elapsed:.0f} s"
    converged(project, images.c)
    records = history.read(project.settings, "staging")
    assert [(r.image, r.result) for r in records[:2]] == [(images.c, "succeeded"), (images.c, "interrupted")]
    shown = project.invoke("history", "--env", "staging", "--limit", "5")
    assert re.findall(r"^\S+\s+(\S+)\s+release ", shown.stdout, re.M)[:2] == ["succeeded", "interrupted"], (
        shown
    )


def test_rerun_after_a_kill_with_a_crashing_image_verifies_and_rolls_back(
    project: Project, images: Variants
) -> None:
    """Measured defect 1: this used to say "nothing to do" and exit 0 with the pod in CrashLoopBackOff."""
    victim = project.start("release", "--env", "staging", "--image", images.crash)
    victim.wait_for("[rollout]", 180)
    time.sleep(0.3)
    victim.signal_group(signal.SIGKILL)
    assert victim.finish(30).returncode == -signal.SIGKILL, victim.stderr
    assert project.pinned().startswith(images.crash)  # git and (soon) the cluster agree on the crash

    again = project.invoke("release", "--env", "staging", "--image", images.crash)
    assert again.returncode == 1, again.stderr
    assert "nothing to do" not in again.stderr
    assert "no release of it succeeded here: verifying it" in again.stderr
    # The pod is caught either in its back-off or between two, after a restart: both name the crash.
    assert re.search(r"CrashLoopBackOff|Error, exit code 3, \d+ restarts", again.stderr), again.stderr
    (line,) = error_lines(again.stderr)
    assert line.startswith("error: release staging rolled-back: rollout:"), line
    converged(project, images.c)
    records = history.read(project.settings, "staging")
    assert [(r.image, r.result) for r in records[:3]] == [
        (images.crash, "rolled-back"),
        (images.crash, "interrupted"),
        (images.c, "succeeded"),
    ]


def test_sigterm_mid_rollout_stops_and_rolls_back_and_says_so(project: Project, images: Variants) -> None:
    run = project.start("release", "--env", "staging", "--image", images.b)
    run.wait_for("[rollout]", 180)
    time.sleep(0.3)
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(240)
    assert result.returncode == 1, result.stderr
    assert (
        "interrupted by SIGTERM during rollout: the release had started to change staging, so rolling back"
        in (result.stderr)
    )
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: release staging interrupted: interrupted by SIGTERM during rollout"), line
    assert "rolled back to good-c" in line, line
    converged(project, images.c)
    records = history.read(project.settings, "staging")
    assert (records[0].image, records[0].result) == (images.b, "interrupted")
    # An interrupted release says nothing against its image: it is not refused as "failed before".
    assert records[0].digest not in history.failed_digests(records)


def test_a_remote_refusing_the_revert_still_shows_the_diagnosis_and_restores_the_cluster(
    project: Project, images: Variants
) -> None:
    """Measured defect 4: the push failure used to hide the CrashLoopBackOff and leave the crash running."""
    hook = project.remote / "hooks" / "pre-receive"
    run = project.start("release", "--env", "staging", "--image", images.crash, "--force")
    run.wait_for("[rollout]", 180)
    hook.write_text("#!/bin/sh\necho 'pushes are closed for maintenance' >&2\nexit 1\n")
    hook.chmod(0o755)
    try:
        result = run.finish(300)
    finally:
        hook.unlink()
    assert result.returncode == 1, result.stderr
    (line,) = error_lines(result.stderr)
    assert "CrashLoopBackOff" in line and "exit code 3" in line, line  # the diagnosis, not hidden
    assert "reverting git failed" in line and "pushes are closed for maintenance" in line, line
    assert "the cluster runs good-c again, verified" in line, line
    assert "Left to do: git still pins" in line and "invoke rollback --env staging" in line, line
    assert "recording it in the history failed too" in line, line
    # The cluster is back on the last good image although git could not be written.
    image, pods = project.running()
    good = f"{images.c}@{digest_of(project, images.c)}"
    assert image == good and pods == {good}
    assert project.pinned().startswith(images.crash)

    # What is left to do, once the remote accepts pushes again.
    done = project.invoke("rollback", "--env", "staging")
    assert done.returncode == 0, done.stderr
    converged(project, images.c)


def test_a_release_killed_mid_smoke_is_verified_by_the_next_run(project: Project, images: Variants) -> None:
    victim = project.start("release", "--env", "staging", "--image", images.b)
    victim.wait_for("[smoke]", 180)
    victim.signal_group(signal.SIGKILL)
    assert victim.finish(30).returncode == -signal.SIGKILL, victim.stderr
    assert project.pinned().startswith(images.b)

    again = project.invoke("release", "--env", "staging", "--image", images.b)
    assert again.returncode == 0, again.stderr
    assert "no release of it succeeded here: verifying it" in again.stderr  # not "nothing to do"
    converged(project, images.b)
    records = history.read(project.settings, "staging")
    assert [(r.image, r.result) for r in records[:2]] == [(images.b, "succeeded"), (images.b, "interrupted")]


def test_a_rollback_killed_half_way_is_finished_by_the_next_rollback(
    project: Project, images: Variants
) -> None:
    victim = project.start("release", "--env", "staging", "--image", images.crash, "--force")
    victim.wait_for("[rollout (previous)]", 240)  # the revert is pushed, the good image rolling out again
    victim.signal_group(signal.SIGKILL)
    assert victim.finish(30).returncode == -signal.SIGKILL, victim.stderr

    again = project.invoke("rollback", "--env", "staging")
    assert again.returncode == 0, again.stderr
    pinned = project.pinned()
    assert not pinned.startswith(images.crash)
    image, pods = project.running()
    assert image == pinned and pods == {pinned}
    assert greeting(project.node_ip) == (200, GREETING)
    records = history.read(project.settings, "staging")
    assert records[0].result == "succeeded" and records[0].kind == "rollback"
    assert (records[1].image, records[1].result) == (images.crash, "interrupted")
