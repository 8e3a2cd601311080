"""The Deployment controller's arithmetic (``sandbox/kube/controllers/rollout.py``) on plain dicts.

Expected numbers come from Kubernetes' own documentation and controller semantics: surge rounds up,
unavailability rounds down, proportional scaling gives a 10 -> 15 scale-up during a rollout 3 replicas to
the old ReplicaSet and 2 to the new one, and so on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.kube.controllers import rollout as ru
from sandbox.kube.controllers.objects import get_condition, parse_quantity, selector_matches

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(delta: float = 0) -> str:
    return (NOW + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(
    replicas: int = 3,
    surge: Any = None,
    unavailable: Any = None,
    *,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    strategy: str = "RollingUpdate",
    deadline: int | None = 600,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
        "strategy": {"type": strategy},
        "progressDeadlineSeconds": deadline,
    }
    if strategy == "RollingUpdate":
        ru_params: dict[str, Any] = {}
        if surge is not None:
            ru_params["maxSurge"] = surge
        if unavailable is not None:
            ru_params["maxUnavailable"] = unavailable
        spec["strategy"]["rollingUpdate"] = ru_params
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation},
        "spec": spec,
        "status": status or {},
    }


def rs(
    name: str, replicas: int, available: int = 0, *, ready: int | None = None, created: float = 0, **ann: str
) -> dict[str, Any]:
    annotations = {k.replace("_", "-"): v for k, v in ann.items()}
    return {
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "creationTimestamp": ts(created),
            "annotations": {f"deployment.kubernetes.io/{k}": v for k, v in annotations.items()},
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": available if ready is None else ready,
            "availableReplicas": available,
        },
    }


def cond_of(status: dict[str, Any], ctype: str) -> Any:
    return get_condition(status.get("conditions"), ctype)


# --- maxSurge / maxUnavailable ---


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 1, True, 1),
        ("25%", 1, False, 0),
        ("100%", 3, False, 3),
        (2, 10, True, 2),
        ("0%", 7, True, 0),
        ("33%", 3, True, 1),
        ("33%", 3, False, 0),
    ],
)
def test_scaled_value_rounds_as_kubernetes(value: Any, total: int, round_up: bool, expected: int) -> None:
    assert ru.scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["5", "abc%", "x"])
def test_scaled_value_rejects_non_percent_strings(value: str) -> None:
    with pytest.raises(ru.InvalidIntOrPercent):
        ru.scaled_value(value, 10, True)


def test_fenceposts_never_both_zero() -> None:
    assert ru.resolve_fenceposts(0, 0, 3) == (0, 1)
    assert ru.resolve_fenceposts("0%", "0%", 3) == (0, 1)
    assert ru.resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert ru.resolve_fenceposts("25%", "25%", 4) == (1, 1)


def test_defaults_are_25_percent_and_max_unavailable_is_capped() -> None:
    d = deployment(replicas=10)
    assert (ru.max_surge(d), ru.max_unavailable(d)) == (3, 2)
    assert ru.max_unavailable(deployment(replicas=3, unavailable=5)) == 3
    assert ru.max_unavailable(deployment(replicas=0, unavailable=1)) == 0
    recreate = deployment(strategy="Recreate")
    assert (ru.max_surge(recreate), ru.max_unavailable(recreate)) == (0, 0)


def test_validation_refuses_both_zero_and_bad_percentages() -> None:
    assert ru.validate_rolling_update(deployment(surge=1, unavailable=0)) == []
    errors = ru.validate_rolling_update(deployment(surge=0, unavailable="0%"))
    assert errors == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'
    ]
    assert "must not be greater than 100%" in ru.validate_rolling_update(deployment(surge="150%"))[0]
    assert "numeric string" in ru.validate_rolling_update(deployment(surge="1"))[0]


def test_progress_deadline_defaults_and_maxint_means_none() -> None:
    d = deployment()
    del d["spec"]["progressDeadlineSeconds"]
    assert ru.progress_deadline(d) == 600
    assert ru.progress_deadline(deployment(deadline=2**31 - 1)) is None


# --- rolling update steps ---


def test_new_replicaset_grows_within_surge() -> None:
    d = deployment(replicas=3, surge=1, unavailable=0)
    old, new = rs("old", 3, 3), rs("new", 0)
    assert ru.new_rs_new_replicas(d, [old, new], new) == 1
    new = rs("new", 1)
    assert ru.new_rs_new_replicas(d, [old, new], new) == 1  # 4 pods already: no more room
    old = rs("old", 2, 2)
    assert ru.new_rs_new_replicas(d, [old, new], new) == 2
    assert ru.new_rs_new_replicas(deployment(strategy="Recreate"), [old, new], new) == 3


def test_old_replicasets_shrink_only_as_new_pods_become_available() -> None:
    d = deployment(replicas=3, surge=1, unavailable=0)
    old = rs("old", 3, 3)
    assert ru.plan_old_scale_down(d, [old], rs("new", 1, 0)) == []
    assert ru.plan_old_scale_down(d, [old], rs("new", 1, 1)) == [ru.Scale("old", 3, 2)]


def test_unhealthy_old_pods_go_first_without_breaking_min_available() -> None:
    d = deployment(replicas=3, surge=1, unavailable=1)
    # Old ReplicaSet with one pod down: that one can go at once; the available ones must stay (2 >= 3-1).
    plan = ru.plan_old_scale_down(d, [rs("old", 3, 2)], rs("new", 1, 0))
    assert plan == [ru.Scale("old", 3, 2)]


def test_oldest_replicaset_is_scaled_down_first() -> None:
    d = deployment(replicas=2, surge=0, unavailable=2)
    a, b = rs("a", 1, 1, created=0), rs("b", 1, 1, created=10)
    plan = ru.plan_old_scale_down(d, [b, a], rs("new", 0))
    assert plan == [ru.Scale("a", 1, 0), ru.Scale("b", 1, 0)]


def test_proportional_scaling_during_a_rollout() -> None:
    # kubernetes.io "Proportional scaling": 10 replicas, maxSurge 3, scaled to 15 mid-rollout:
    # the 5 extra replicas go 3 to the old ReplicaSet (8 -> 11) and 2 to the new one (5 -> 7).
    d = deployment(replicas=15, surge=3, unavailable=2, status={"replicas": 13})
    old = rs("old", 8, 8, created=0, desired_replicas="10", max_replicas="13")
    new = rs("new", 5, 0, created=10, desired_replicas="10", max_replicas="13")
    assert ru.is_scaling_event(d, [old, new])
    plan = ru.plan_scale(d, new, [old])
    assert {s.name: s.new for s in plan} == {"old": 11, "new": 7}
    assert all(s.proportional for s in plan)


def test_scale_with_one_active_replicaset_sets_it_to_the_full_count() -> None:
    d = deployment(replicas=5)
    assert ru.plan_scale(d, rs("new", 3, 3), [rs("old", 0)]) == [ru.Scale("new", 3, 5)]
    assert ru.plan_scale(d, rs("new", 5, 5), []) == []


def test_saturated_new_replicaset_scales_old_ones_to_zero() -> None:
    d = deployment(replicas=2)
    new = rs("new", 2, 2, desired_replicas="2")
    assert ru.plan_scale(d, new, [rs("old", 1, 1)]) == [ru.Scale("old", 1, 0)]


def test_cleanup_keeps_revision_history_limit_and_skips_busy_replicasets() -> None:
    d = deployment()
    d["spec"]["revisionHistoryLimit"] = 1
    olds = [rs(f"r{i}", 0, revision=str(i)) for i in (1, 2, 3)]
    for o in olds:
        o["status"] = {"replicas": 0}
    olds[0]["status"]["replicas"] = 1  # a pod still terminating: not yet
    assert [r["metadata"]["name"] for r in ru.cleanup_candidates(d, olds)] == ["r2"]


# --- revisions and hashes ---


def test_pod_template_hash_is_stable_and_collision_count_changes_it() -> None:
    template = deployment()["spec"]["template"]
    h = ru.pod_template_hash(template)
    assert h == ru.pod_template_hash({**template, "metadata": {"labels": {"app": "web"}, "annotations": {}}})
    assert h != ru.pod_template_hash(template, 1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10


def test_equal_ignore_hash() -> None:
    template = deployment()["spec"]["template"]
    labelled = {**template, "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}}
    assert ru.equal_ignore_hash(labelled, template)
    other = {**template, "spec": {"containers": [{"name": "c", "image": "y"}]}}
    assert not ru.equal_ignore_hash(other, template)


def test_rollback_moves_the_revision_and_keeps_history() -> None:
    d = deployment()
    d["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "team": "core",
        ru.REVISION: "2",
    }
    old_rs = rs("v1", 0, revision="1")
    assert ru.set_new_rs_annotations(d, old_rs, 3, exists=True)
    ann = old_rs["metadata"]["annotations"]
    assert ann[ru.REVISION] == "3"
    assert ann[ru.REVISION_HISTORY] == "1"
    assert ann["team"] == "core"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in ann
    ann[ru.REVISION] = "3"
    assert ru.set_new_rs_annotations(d, old_rs, 5, exists=True)
    assert ann[ru.REVISION_HISTORY] == "1,3"


def test_new_replicaset_annotations_record_desired_and_max() -> None:
    d = deployment(replicas=4, surge="50%")
    new: dict[str, Any] = {"metadata": {}}
    ru.set_new_rs_annotations(d, new, 1, exists=False)
    assert new["metadata"]["annotations"] == {
        ru.REVISION: "1",
        ru.DESIRED_REPLICAS: "4",
        ru.MAX_REPLICAS: "6",
    }


# --- status and conditions ---


def test_status_counts_and_available_condition() -> None:
    d = deployment(replicas=3, unavailable=1)
    new, old = rs("new", 2, 1), rs("old", 2, 2, ready=2)
    status = ru.calculate_status([old, new], new, d, NOW)
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 4,
        "updatedReplicas": 2,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert status["unavailableReplicas"] == 1
    available = cond_of(status, ru.AVAILABLE)
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    short = ru.calculate_status([rs("new", 3, 1)], None, d, NOW)
    cond = cond_of(short, ru.AVAILABLE)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
    )


def test_wire_status_leaves_zeros_out_as_go_omitempty_does() -> None:
    status = ru.calculate_status([rs("new", 1, 0, ready=0)], rs("new", 1, 0), deployment(replicas=1), NOW)
    wire = ru.wire_status(status)
    assert "availableReplicas" not in wire and "readyReplicas" not in wire
    assert wire["unavailableReplicas"] == 1 and wire["observedGeneration"] == 1
    assert list(wire) == [
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "unavailableReplicas",
        "conditions",
    ]


def progressing(status: dict[str, Any]) -> Any:
    return cond_of(status, ru.PROGRESSING)


def test_progressing_conditions_through_a_rollout() -> None:
    created = ru.new_condition(
        ru.PROGRESSING, "True", ru.NEW_RS_CREATED, 'Created new replica set "web-1"', NOW
    )
    d = deployment(replicas=1, status={"replicas": 1, "conditions": [created]})
    new = rs("web-1", 1, 0)
    new["status"] = {"replicas": 1}
    later = NOW + timedelta(seconds=5)
    status = ru.rollout_status(d, [rs("web-0", 1, 1), new], new, later)
    cond = progressing(status)
    # updatedReplicas went 0 -> 1: progress, noted with a fresh lastUpdateTime but the same transition time.
    assert (cond["reason"], cond["message"]) == (ru.RS_UPDATED, 'ReplicaSet "web-1" is progressing.')
    assert cond["lastUpdateTime"] == ts(5) and cond["lastTransitionTime"] == ts(0)
    done = rs("web-1", 1, 1)
    d2 = deployment(replicas=1, status=ru.wire_status(status))
    status = ru.rollout_status(d2, [rs("web-0", 0), done], done, later)
    cond = progressing(status)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True",
        ru.NEW_RS_AVAILABLE,
        'ReplicaSet "web-1" has successfully progressed.',
    )
    # Conditions that changed move to the end, so a complete Deployment lists Available first.
    assert [c["type"] for c in status["conditions"]] == [ru.AVAILABLE, ru.PROGRESSING]


def test_progress_deadline_exceeded_without_progress() -> None:
    updated = ru.new_condition(
        ru.PROGRESSING, "True", ru.RS_UPDATED, 'ReplicaSet "web-2" is progressing.', NOW
    )
    counts = {"replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    d = deployment(replicas=1, deadline=10, status={**counts, "conditions": [updated]})
    new, old = rs("web-2", 1, 0), rs("web-1", 1, 1)
    status = ru.rollout_status(d, [old, new], new, NOW + timedelta(seconds=10))
    assert progressing(status)["reason"] == ru.RS_UPDATED  # exactly at the deadline: not yet (Before)
    status = ru.rollout_status(d, [old, new], new, NOW + timedelta(seconds=11))
    cond = progressing(status)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "ProgressDeadlineExceeded",
        'ReplicaSet "web-2" has timed out progressing.',
    )
    # Once timed out it stays so (until a new template or progress).
    d_timed = deployment(replicas=1, deadline=10, status={**counts, "conditions": status["conditions"]})
    again = ru.rollout_status(d_timed, [old, new], new, NOW + timedelta(seconds=60))
    assert progressing(again)["lastUpdateTime"] == cond["lastUpdateTime"]


def test_no_progressing_condition_without_deadline() -> None:
    d = deployment(replicas=1, deadline=2**31 - 1)
    d["status"] = {"conditions": [ru.new_condition(ru.PROGRESSING, "True", ru.NEW_RS_CREATED, "x", NOW)]}
    status = ru.rollout_status(d, [rs("n", 1, 1)], rs("n", 1, 1), NOW)
    assert progressing(status) is None


def test_set_condition_keeps_transition_time_while_status_stays() -> None:
    status: dict[str, Any] = {"conditions": []}
    ru.set_condition(status, ru.new_condition("Available", "True", "A", "m", NOW))
    ru.set_condition(status, ru.new_condition("Progressing", "True", "B", "m", NOW))
    ru.set_condition(status, ru.new_condition("Available", "True", "C", "m2", NOW + timedelta(seconds=9)))
    assert [c["type"] for c in status["conditions"]] == ["Progressing", "Available"]
    available = status["conditions"][1]
    assert available["lastTransitionTime"] == ts(0) and available["lastUpdateTime"] == ts(9)


def test_replica_failure_is_copied_from_the_new_replicaset() -> None:
    new = rs("n", 1, 0)
    new["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": "quota",
            "lastTransitionTime": ts(),
        }
    ]
    status = ru.rollout_status(deployment(replicas=1), [new], new, NOW)
    failure = cond_of(status, ru.REPLICA_FAILURE)
    assert failure["reason"] == "FailedCreate" and failure["lastUpdateTime"] == ts()


def test_recreate_waits_for_old_pods() -> None:
    new = rs("n", 0)
    assert ru.old_pods_running(new, [rs("o", 0)], {"o-uid": [{"status": {"phase": "Running"}}]})
    assert not ru.old_pods_running(new, [rs("o", 0)], {"o-uid": [{"status": {"phase": "Succeeded"}}]})
    assert not ru.old_pods_running(new, [rs("o", 0)], {"n-uid": [{"status": {"phase": "Running"}}]})


# --- shared helpers ---


def test_label_selector_semantics() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}
    assert selector_matches(expr, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert selector_matches(
        {"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["y"]}]}, labels
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2), ("128Mi", 128 * 2**20), ("1G", 10**9), ("1e3", 1000), ("1.5Gi", 1.5 * 2**30)],
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value
