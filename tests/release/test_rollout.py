"""Rollout judgement on plain dicts: kubectl's rollout-status rules and the fail-fast pod diagnosis."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from pipeline import rollout

NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int | None = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
    conditions: list[dict[str, Any]] | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if paused:
        spec["paused"] = True
    status = {
        "observedGeneration": observed,
        "replicas": total,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "conditions": conditions or [],
    }
    # The API omits zero counts; so do we, to judge what the server really sends.
    status = {k: v for k, v in status.items() if v}
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "campus", "generation": generation},
        "spec": spec,
        "status": status,
    }


@pytest.mark.parametrize(
    ("fields", "done", "failed", "message"),
    [
        ({}, True, False, 'deployment "web" successfully rolled out'),
        ({"generation": 3}, False, False, "Waiting for deployment spec update to be observed..."),
        ({"updated": 1}, False, False, "1 out of 2 new replicas have been updated"),
        ({"total": 3}, False, False, "1 old replicas are pending termination"),
        ({"available": 1}, False, False, "1 of 2 updated replicas are available"),
        ({"available": 0, "updated": 0, "total": 0}, False, False, "0 out of 2 new replicas"),
        # Without spec.replicas kubectl skips the first check.
        ({"replicas": None, "updated": 1, "total": 1, "available": 1}, True, False, "successfully"),
        (
            {
                "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            },
            False,
            True,
            "exceeded its progress deadline",
        ),
        ({"paused": True, "updated": 0}, False, True, "paused"),
    ],
)
def test_deployment_status_follows_kubectl(
    fields: dict[str, Any], done: bool, failed: bool, message: str
) -> None:
    judgement = rollout.judge(deployment(**fields))
    assert (judgement.done, judgement.failed) == (done, failed)
    assert message in judgement.message


def test_deadline_is_only_read_once_the_generation_is_observed() -> None:
    stale = deployment(
        generation=3,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    )
    assert not rollout.judge(stale).failed


def statefulset(**status: Any) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, **status},
    }


def test_statefulset_status() -> None:
    waiting = statefulset(readyReplicas=1)
    assert rollout.judge(waiting).message == "Waiting for 1 pods to be ready..."
    rolling = statefulset(readyReplicas=2, updateRevision="db-2", currentRevision="db-1", updatedReplicas=1)
    assert not rollout.judge(rolling).done
    done = statefulset(readyReplicas=2, updateRevision="db-2", currentRevision="db-2", currentReplicas=2)
    assert rollout.judge(done).done
    unobserved = statefulset(readyReplicas=2)
    unobserved["status"]["observedGeneration"] = 0
    assert "observed" in rollout.judge(unobserved).message
    partitioned = statefulset(readyReplicas=2, updatedReplicas=1)
    partitioned["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 1}
    assert rollout.judge(partitioned).done
    ondelete = statefulset()
    ondelete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout.judge(ondelete).failed


def test_daemonset_status() -> None:
    ds: dict[str, Any] = {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": 1},
        "spec": {},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2},
    }
    assert "0 of 2 updated pods are available" in rollout.judge(ds).message
    ds["status"]["numberAvailable"] = 2
    assert rollout.judge(ds).done


def pod(containers: list[dict[str, Any]], conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "web-abc-1", "labels": {"pod-template-hash": "abc"}},
        "status": {"containerStatuses": containers, "conditions": conditions or []},
    }


def waiting(reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": "m"}},
        **extra,
    }


@pytest.mark.parametrize(
    "reason",
    ["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"],
)
def test_fatal_waiting_reasons_fail_at_once(reason: str) -> None:
    problem = rollout.pod_problem(pod([waiting(reason)]), now=NOW)
    assert problem is not None
    assert (problem.reason, problem.container, problem.logs) == (reason, "web", "none")


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing"])
def test_ordinary_waiting_is_not_a_problem(reason: str) -> None:
    assert rollout.pod_problem(pod([waiting(reason)]), now=NOW) is None


def test_crash_loop_names_exit_code_and_wants_previous_logs() -> None:
    crashed = waiting(
        "CrashLoopBackOff",
        restartCount=1,
        lastState={"terminated": {"exitCode": 3, "reason": "Error"}},
    )
    problem = rollout.pod_problem(pod([crashed]), now=NOW)
    assert problem is not None
    assert (problem.reason, problem.exit_code, problem.restarts, problem.logs) == (
        "CrashLoopBackOff",
        3,
        1,
        "previous",
    )


def test_restarts_between_back_offs_count_as_a_crash() -> None:
    running = {
        "name": "web",
        "restartCount": 2,
        "state": {"running": {"startedAt": "2025-01-01T11:59:58Z"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    }
    problem = rollout.pod_problem(pod([running]), now=NOW)
    assert problem is not None
    assert (problem.reason, problem.exit_code) == ("OOMKilled", 137)
    running["restartCount"] = 1
    assert rollout.pod_problem(pod([running]), now=NOW) is None


def test_init_containers_are_checked_too() -> None:
    p = pod([])
    p["status"]["initContainerStatuses"] = [waiting("CrashLoopBackOff", name="migrate")]
    problem = rollout.pod_problem(p, now=NOW)
    assert problem is not None and problem.container == "migrate"


def test_unschedulable_only_after_the_grace() -> None:
    def unschedulable(seconds_ago: int) -> dict[str, Any]:
        since = (NOW - datetime.timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
        return pod(
            [],
            [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                    "lastTransitionTime": since,
                }
            ],
        )

    assert rollout.pod_problem(unschedulable(5), now=NOW, unschedulable_grace=30) is None
    problem = rollout.pod_problem(unschedulable(31), now=NOW, unschedulable_grace=30)
    assert problem is not None and problem.reason == "Unschedulable" and "Insufficient cpu" in problem.message


def test_new_replicaset_is_the_one_with_the_deployments_template() -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "b:2"}]},
    }
    dep: dict[str, Any] = {
        "metadata": {"uid": "u1", "generation": 2, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"template": template},
        "status": {"observedGeneration": 2},
    }

    def rs(hash_: str, image: str, revision: str, owner: str = "u1") -> dict[str, Any]:
        labels = {"app": "web", "pod-template-hash": hash_}
        return {
            "metadata": {
                "name": f"web-{hash_}",
                "labels": labels,
                "ownerReferences": [{"uid": owner}],
                "annotations": {"deployment.kubernetes.io/revision": revision},
            },
            "spec": {
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                }
            },
        }

    old, new, foreign = rs("old", "b:1", "1"), rs("new", "b:2", "2"), rs("xyz", "b:2", "7", owner="u2")
    found = rollout.new_replicaset(dep, [foreign, old, new])
    assert found is not None and found["metadata"]["name"] == "web-new"
    # A template the sandbox (or an admission webhook) defaulted differently: the revision decides.
    new["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    found = rollout.new_replicaset(dep, [old, new])
    assert found is not None and found["metadata"]["name"] == "web-new"
    dep["metadata"]["generation"] = 3  # not observed yet: no guess
    assert rollout.new_replicaset(dep, [old, new]) is None


def test_selector_string() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert rollout.selector_string(selector) == "a=1,b=2,tier in (web,api),!canary"


def test_result_round_trips_through_json() -> None:
    outcome = rollout.WorkloadOutcome(
        "Deployment",
        "campus",
        "web",
        "failed",
        "pod web-1: CrashLoopBackOff, exit code 3",
        "CrashLoopBackOff",
        pod="web-1",
        container="web",
        exit_code=3,
        restarts=2,
        events=("Warning BackOff: back-off",),
        logs=("boom",),
        duration=12.5,
    )
    result = rollout.RolloutResult(False, (outcome,), outcome.diagnosis(), 13.0, "Deployment campus/web: x")
    text = result.to_json()
    assert rollout.RolloutResult.from_dict(json.loads(text)) == result
    assert "exit code 3" in result.diagnosis and "boom" in result.diagnosis and "BackOff" in result.diagnosis


def test_only_workloads_can_be_waited_for() -> None:
    with pytest.raises(rollout.RolloutError):
        rollout.judge({"kind": "Service"})
