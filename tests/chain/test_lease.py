"""The environment's Lease against the sandbox's API server (no containers): how a cluster serves Leases
(create, update with resourceVersion, 409 on a stale update) and how ``pipeline.lease`` uses them: one
holder at a time, a refusal that names the holder, a wait with a progress line, the takeover of an
expired Lease only, and a holder that notices it was taken over before its next write.

Durations are shortened (2 s instead of 30 s) through the class's own parameters, not by patching.
"""

from __future__ import annotations

import gc
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from pipeline import kube
from pipeline.errors import KubeConflict, LeaseHeld, LeaseLost
from pipeline.lease import Lease, identity
from sandbox.home import ClusterSettings, Home, Settings, free_port
from tests.sandbox.conftest import RunningKube

NODE_IP = "127.0.0.65"
NAMESPACE = "lease-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.Kube]:
    settings = Settings(
        registry_port=free_port(),
        registry_user="sandbox",
        registry_password="unused",
        gke_port=free_port(),
        token_lifetime_seconds=3600,
        default_namespace="",
        clusters=(ClusterSettings("staging", NODE_IP, free_port(NODE_IP)),),
    )
    running = RunningKube(Home(tmp_path_factory.mktemp("lease-home")), settings).start()
    try:
        with kube.connect(kube.KubeContext("staging", str(running.kubeconfig))) as k:
            yield k
    finally:
        running.stop()
        # The stopped server's loop leaves the transports of our keep-alive connections behind; collect
        # them here, where they belong, rather than as a ResourceWarning in whichever test runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def lease(k: kube.Kube, name: str, holder: str, **kw: float) -> Lease:
    return Lease(k, NAMESPACE, name, holder, "release", **kw)  # type: ignore[arg-type]


def test_the_api_server_serves_leases_with_optimistic_concurrency(cluster: kube.Kube) -> None:
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "plain", "namespace": "default"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 30,
            "renewTime": "2026-12-02T10:00:00.000001Z",
        },
    }
    made = cluster.create(body)
    with pytest.raises(KubeConflict):
        cluster.create(body)  # AlreadyExists is a 409 too
    read = cluster.get("coordination.k8s.io/v1", "Lease", "plain", "default")
    assert read is not None and read["spec"]["renewTime"] == "2026-12-02T10:00:00.000001Z"
    newer = cluster.replace({**made, "spec": {**made["spec"], "holderIdentity": "b"}})
    assert int(newer["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    with pytest.raises(KubeConflict, match="conflict"):
        cluster.replace({**made, "spec": {**made["spec"], "holderIdentity": "c"}})  # stale resourceVersion
    kept = cluster.get("coordination.k8s.io/v1", "Lease", "plain", "default")
    assert kept is not None and kept["spec"]["holderIdentity"] == "b"


def test_identity_names_the_actions_run_or_the_user_and_host() -> None:
    run = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/app", "GITHUB_RUN_ID": "42"}
    assert identity(run, pid=7) == "https://github.com/org/app/actions/runs/42 pid 7"
    assert identity({}, pid=7).endswith(" pid 7") and "@" in identity({}, pid=7)


def test_one_holder_at_a_time_refusal_names_the_holder_wait_takes_it_when_released(
    cluster: kube.Kube,
) -> None:
    first = lease(cluster, "one-at-a-time", "alice@laptop pid 1")
    first.acquire(0)  # creates the namespace, then the Lease
    second = lease(cluster, "one-at-a-time", "ci pid 2", poll_every=0.2)
    started = time.monotonic()
    with pytest.raises(LeaseHeld, match=r"is held: the release by alice@laptop pid 1, started 20\d\d-"):
        second.acquire(0)
    assert time.monotonic() - started < 2  # --no-wait: at once
    with pytest.raises(LeaseHeld, match="still held after waiting 1 s"):
        second.acquire(1)

    lines: list[str] = []
    threading.Timer(1.0, first.release).start()
    second.acquire(30, lines.append)
    assert lines and lines[0].startswith("waiting for the release by alice@laptop pid 1, started ")
    obj = cluster.get("coordination.k8s.io/v1", "Lease", "one-at-a-time", NAMESPACE)
    assert obj is not None and obj["spec"]["holderIdentity"] == "ci pid 2"
    assert obj["spec"]["leaseTransitions"] == 0  # released, not taken over
    second.release()
    obj = cluster.get("coordination.k8s.io/v1", "Lease", "one-at-a-time", NAMESPACE)
    assert obj is not None and not obj["spec"].get("holderIdentity")


def test_the_holder_renews_and_is_not_taken_over_while_alive(cluster: kube.Kube) -> None:
    holder = lease(cluster, "renewed", "alive pid 1", duration=2, renew_every=0.5)
    holder.acquire(0)
    other = lease(cluster, "renewed", "other pid 2", duration=2, poll_every=0.2)
    with pytest.raises(LeaseHeld):
        other.acquire(4)  # twice the duration: renewals keep it held
    holder.check()
    holder.release()


def test_an_expired_lease_is_taken_over_and_its_old_holder_stops_before_writing(cluster: kube.Kube) -> None:
    # A holder that stopped renewing (a process paused, or killed): renew_every longer than the test.
    paused = lease(cluster, "taken-over", "paused pid 1", duration=2, renew_every=3600)
    paused.acquire(0)
    lines: list[str] = []
    started = time.monotonic()
    other = lease(cluster, "taken-over", "next pid 2", duration=2, poll_every=0.2)
    other.acquire(10, lines.append)
    waited = time.monotonic() - started
    assert 1.5 < waited < 5, f"took the expired Lease after {waited:.1f} s"
    assert lines and "paused pid 1" in lines[0]
    obj = cluster.get("coordination.k8s.io/v1", "Lease", "taken-over", NAMESPACE)
    assert obj is not None and obj["spec"]["holderIdentity"] == "next pid 2"
    assert obj["spec"]["leaseTransitions"] == 1

    with pytest.raises(LeaseLost, match="taken over by next pid 2"):
        paused.check()  # what the chain calls before each write
    paused.release()  # lets go of nothing: the Lease is the other's
    obj = cluster.get("coordination.k8s.io/v1", "Lease", "taken-over", NAMESPACE)
    assert obj is not None and obj["spec"]["holderIdentity"] == "next pid 2"
    other.release()


def test_two_runners_racing_for_a_free_lease_get_it_one_at_a_time(cluster: kube.Kube) -> None:
    held: list[str] = []
    overlap: list[str] = []
    guard = threading.Lock()

    def run(name: str) -> None:
        mine = lease(cluster, "race", name, poll_every=0.05)
        mine.acquire(30)
        with guard:
            if held:
                overlap.append(f"{name} while {held}")
            held.append(name)
        time.sleep(0.3)
        with guard:
            held.remove(name)
        mine.release()

    threads = [threading.Thread(target=run, args=(f"runner {i} pid {i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overlap
