"""Rollout wait against the sandbox: real pods of a real serving, crashing and missing backend image."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from pipeline import apply, gke, rollout

from .conftest import Clusters, Images, deployment  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


def fresh_namespace(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deploy(access: Any, objects: list[dict[str, Any]], inventory: str) -> apply.ApplyResult:
    return apply.apply(access, objects, inventory=inventory)


def test_good_image_rolls_out(staging: gke.ClusterAccess, images: Images) -> None:
    ns = fresh_namespace("good")
    result = deploy(staging, deployment(ns, images.good), ns)
    progress: list[str] = []
    outcome = rollout.wait(staging, result.workloads, timeout=60, on_progress=progress.append)
    assert outcome.ok, outcome.diagnosis
    assert outcome.workloads[0].status == "complete"
    assert progress[-1] == f'Deployment {ns}/web: deployment "web" successfully rolled out'


def test_crashing_image_is_caught_fast_with_exit_code_and_logs(
    staging: gke.ClusterAccess, images: Images
) -> None:
    ns = fresh_namespace("crash")
    deploy(staging, deployment(ns, images.good), ns)
    assert rollout.wait(staging, [("Deployment", ns, "web")], timeout=60).ok
    # The realistic case: a new version over a serving one, whose old pod must not be blamed.
    result = deploy(staging, deployment(ns, images.crash), ns)
    assert result.changed_workloads == [("Deployment", ns, "web")]
    started = time.monotonic()
    outcome = rollout.wait(staging, result.workloads, timeout=300)
    elapsed = time.monotonic() - started
    assert not outcome.ok
    assert elapsed < 60, f"judged in {elapsed:.0f} s"
    failed = outcome.workloads[0]
    assert failed.status == "failed"
    assert failed.reason in ("CrashLoopBackOff", "Error")
    assert failed.exit_code == 3
    assert failed.container == "web"
    assert any("CRASH_ON_START" in line for line in failed.logs), failed.logs
    assert any("BackOff" in line or "Started" in line for line in failed.events), failed.events
    assert "exit code 3" in outcome.diagnosis and "CRASH_ON_START" in outcome.diagnosis
    assert outcome.summary.startswith(f"Deployment {ns}/web: ")
    # Rolling back to the serving image completes again (the old ReplicaSet becomes the new one).
    back = deploy(staging, deployment(ns, images.good), ns)
    assert rollout.wait(staging, back.workloads, timeout=60).ok


def test_missing_image_is_an_image_pull_failure(staging: gke.ClusterAccess, images: Images) -> None:
    ns = fresh_namespace("missing")
    result = deploy(staging, deployment(ns, images.missing), ns)
    started = time.monotonic()
    outcome = rollout.wait(staging, result.workloads, timeout=300)
    assert time.monotonic() - started < 60
    failed = outcome.workloads[0]
    assert not outcome.ok and failed.reason in ("ErrImagePull", "ImagePullBackOff")
    assert "no-such-tag" in failed.message
    assert failed.logs == ()  # the container never ran


def test_progress_deadline_is_honoured(staging: gke.ClusterAccess, images: Images) -> None:
    ns = fresh_namespace("deadline")
    # Runs, never becomes ready: only the controller's progress deadline can end it.
    objects = deployment(
        ns, images.good, probe={"httpGet": {"path": "/nope", "port": 8080}}, progressDeadlineSeconds=4
    )
    result = deploy(staging, objects, ns)
    started = time.monotonic()
    outcome = rollout.wait(staging, result.workloads, timeout=120)
    assert time.monotonic() - started < 30
    assert not outcome.ok and outcome.workloads[0].reason == "ProgressDeadlineExceeded"


def test_pipeline_timeout_ends_the_wait(staging: gke.ClusterAccess, images: Images) -> None:
    ns = fresh_namespace("timeout")
    result = deploy(
        staging, deployment(ns, images.good, probe={"httpGet": {"path": "/nope", "port": 8080}}), ns
    )
    outcome = rollout.wait(staging, result.workloads, timeout=4)
    assert not outcome.ok and outcome.workloads[0].status == "timeout"
    assert outcome.duration < 10


def test_missing_workload_is_reported(staging: gke.ClusterAccess) -> None:
    outcome = rollout.wait(staging, [("Deployment", "default", "no-such-deployment")], timeout=10)
    assert not outcome.ok and outcome.workloads[0].reason == "NotFound"


def test_token_expiring_mid_rollout_is_refreshed(clusters: Clusters, adc: None, images: Images) -> None:
    lifetime = clusters.token_lifetime
    access = gke.cluster_access("sandbox", "local", "staging", api_endpoint=clusters.gke_endpoint)
    ns = fresh_namespace("refresh")
    # Ready only after longer than a token lives, so the wait outlives the token it started with.
    objects = deployment(ns, images.good, probe={"initialDelaySeconds": int(lifetime) + 4})
    result = deploy(access, objects, ns)
    assert isinstance(access.tokens, gke.GoogleToken)
    before = access.tokens.refreshes
    # Watches are reopened every 2 s (every minute by default): each reopen needs a live token.
    outcome = rollout.wait(access, result.workloads, timeout=90, watch_window=2)
    assert outcome.ok, outcome.diagnosis
    assert outcome.duration > lifetime
    assert access.tokens.refreshes > before
