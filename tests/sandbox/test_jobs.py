"""The Job controller over a real store (no Docker): pods made and owned, Complete, Failed, retries."""

from __future__ import annotations

from typing import Any

from sandbox.kube.controllers.events import EventRecorder
from sandbox.kube.controllers.jobs import JobController
from sandbox.kube.store import Store
from sandbox.kube.store.kinds import JOBS, PODS


def _job(store: Store, backoff: int = 0) -> dict[str, Any]:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "campus"},
        "spec": {
            "backoffLimit": backoff,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": "migration"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "b:1"}]},
            },
        },
    }
    return store.create(JOBS, job, manager="test")


def _pods(store: Store) -> list[dict[str, Any]]:
    return store.list(PODS, "campus")[0]


def _finish(store: Store, pod: dict[str, Any], phase: str) -> None:
    pod = store.get(PODS, "campus", pod["metadata"]["name"]) or {}
    pod["status"] = {"phase": phase}
    store.update(PODS, pod, manager="kubelet", subresource="status")


def _conditions(store: Store) -> dict[str, dict[str, Any]]:
    job = store.get(JOBS, "campus", "migrate") or {}
    return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}


def test_a_job_runs_one_owned_pod_and_completes() -> None:
    store = Store()
    job = _job(store)
    controller = JobController(store, EventRecorder(store))
    controller.sync_all()
    controller.sync_all()  # level-triggered: a second pass makes no second pod
    (pod,) = _pods(store)
    assert pod["metadata"]["labels"]["job-name"] == "migrate"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert (store.get(JOBS, "campus", "migrate") or {})["status"]["active"] == 1
    _finish(store, pod, "Succeeded")
    controller.sync_all()
    assert _conditions(store)["Complete"]["status"] == "True"
    status = (store.get(JOBS, "campus", "migrate") or {})["status"]
    assert status["succeeded"] == 1 and "active" not in status and status["completionTime"]


def test_a_failed_pod_beyond_the_backoff_limit_fails_the_job() -> None:
    store = Store()
    _job(store, backoff=1)
    controller = JobController(store, EventRecorder(store))
    controller.sync_all()
    _finish(store, _pods(store)[0], "Failed")
    controller.sync_all()
    assert len(_pods(store)) == 2 and "Failed" not in _conditions(store)  # one retry allowed
    _finish(store, next(p for p in _pods(store) if p.get("status", {}).get("phase") != "Failed"), "Failed")
    controller.sync_all()
    failed = _conditions(store)["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
    controller.sync_all()
    assert len(_pods(store)) == 2
