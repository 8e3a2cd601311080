"""The kubelet against the real Docker engine: pods from a busybox image built FROM scratch on the spot.

Back-off is shortened to 1 s (the messages keep the kubelet's wording). Every test cleans up through
``Kubelet.cleanup`` and the fixture checks that no container or network of its cluster is left.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests

from sandbox.kube import pgimage
from sandbox.kube.kubelet import (
    LABEL_CLUSTER,
    LABEL_HOME,
    ContainerNotFound,
    Kubelet,
    ResolvedPod,
    default_pull_policy,
    expand,
    go_duration,
    home_hash,
    parse_quantity,
    registry_host,
    split_image,
)

Status = dict[str, Any]


@pytest.fixture
def kubelet(engine: docker.DockerClient, tmp_path: Path) -> Iterator[Kubelet]:
    cluster = f"t{uuid.uuid4().hex[:6]}"
    k = Kubelet(cluster, "node-1", "127.0.0.2", engine, {}, tmp_path / "home", backoff_base=1, backoff_max=4)
    yield k
    k.cleanup()
    selector = [f"{LABEL_HOME}={home_hash(tmp_path / 'home')}", f"{LABEL_CLUSTER}={cluster}"]
    assert engine.api.containers(all=True, filters={"label": selector}) == []
    assert engine.api.networks(filters={"label": selector}) == []


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns1", "uid": str(uuid.uuid4())},
        "spec": {"terminationGracePeriodSeconds": 1, **spec, "containers": list(containers)},
    }


def wait_for(
    kubelet: Kubelet,
    p: dict[str, Any],
    check: Callable[[Status], bool],
    resolved: ResolvedPod | None = None,
    timeout: float = 20,
) -> Status:
    deadline = time.monotonic() + timeout
    status = kubelet.sync_pod(p, resolved or ResolvedPod())
    while not check(status):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pod {p['metadata']['name']} never reached the state; last status: {status}"
            )
        time.sleep(0.2)
        status = kubelet.sync_pod(p, resolved or ResolvedPod())
    return status


def container(status: Status, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = status["containerStatuses"][index]
    return result


def ready(status: Status) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])


def waiting_reason(status: Status) -> str | None:
    reason: str | None = container(status)["state"].get("waiting", {}).get("reason")
    return reason


def reasons(kubelet: Kubelet, p: dict[str, Any]) -> list[str]:
    return [e["reason"] for e in kubelet.drain_events("ns1", p["metadata"]["name"])]


# --- pure helpers -------------------------------------------------------------------------------------


def test_helpers_follow_kubernetes() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(MISSING)", {"A": "1", "B": "x"}) == "1-x-$(A)-$(MISSING)"
    assert go_duration(10) == "10s" and go_duration(80) == "1m20s" and go_duration(300) == "5m0s"
    assert parse_quantity("512Mi") == 512 * 2**20 and parse_quantity("500m") == 0.5
    assert split_image("127.0.0.1:5000/team/app:sha-1") == ("127.0.0.1:5000/team/app", "sha-1", None)
    assert split_image("127.0.0.1:5000/app") == ("127.0.0.1:5000/app", None, None)
    assert registry_host("127.0.0.1:5000/app:1") == "127.0.0.1:5000"
    assert registry_host("postgres:15-bookworm") == "docker.io"
    assert default_pull_policy("app") == "Always" and default_pull_policy("app:latest") == "Always"
    assert default_pull_policy("postgres:15-bookworm") == "IfNotPresent"


# --- running, probes, crashes -------------------------------------------------------------------------


def test_pod_runs_becomes_ready_and_serves_on_its_ip(kubelet: Kubelet, busybox: str) -> None:
    web = pod(
        "web",
        {
            "name": "web",
            "image": busybox,
            "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
            # As the backend's manifest asks.
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        },
        securityContext={"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
    )
    first = kubelet.sync_pod(web, ResolvedPod())
    assert first["phase"] == "Pending" and not ready(first)
    status = wait_for(kubelet, web, ready)
    assert status["phase"] == "Running" and status["hostIP"] == "127.0.0.2"
    c = container(status)
    assert c["ready"] and c["started"] and c["restartCount"] == 0 and "running" in c["state"]
    assert c["containerID"].startswith("docker://") and c["imageID"].startswith("docker://sha256:")
    assert {x["type"] for x in status["conditions"]} == {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    assert requests.get(f"http://{status['podIP']}:8080/", timeout=5).text == "hello from busybox\n"
    host_config = kubelet.docker.api.inspect_container(c["containerID"][9:])["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"] and host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["ReadonlyRootfs"]
    assert reasons(kubelet, web)[:3] == ["Pulled", "Created", "Started"]
    # Idempotent: syncing again changes nothing.
    again = kubelet.sync_pod(web, ResolvedPod())
    assert container(again)["containerID"] == c["containerID"] and again["podIP"] == status["podIP"]


def test_crashing_container_backs_off_and_keeps_its_last_state(kubelet: Kubelet, busybox: str) -> None:
    crash = pod("crash", {"name": "app", "image": busybox, "command": ["sh", "-c", "echo boom $$; exit 3"]})
    uid = crash["metadata"]["uid"]
    status = wait_for(kubelet, crash, lambda s: waiting_reason(s) == "CrashLoopBackOff")
    c = container(status)
    assert c["restartCount"] >= 1 and not c["ready"]
    message = f"back-off {{}} restarting failed container=app pod=crash_ns1({uid})"
    assert c["state"]["waiting"]["message"] in {message.format(go_duration(s)) for s in (1, 2, 4)}
    terminated = c["lastState"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert terminated["finishedAt"] >= terminated["startedAt"]
    assert status["phase"] == "Running"  # restarting after a crash still counts as running
    status = wait_for(kubelet, crash, lambda s: container(s)["restartCount"] >= 2)
    assert "BackOff" in reasons(kubelet, crash)
    assert kubelet.pod_logs("ns1", "crash", "app", 5).startswith("boom")
    assert kubelet.pod_logs("ns1", "crash", "app", 5, previous=True).startswith("boom")
    with pytest.raises(ContainerNotFound, match='container "nope" in pod "crash" is waiting to start'):
        kubelet.pod_logs("ns1", "crash", "nope", 5)


def test_restart_policy_never_ends_in_succeeded_or_failed(kubelet: Kubelet, busybox: str) -> None:
    ok = pod("ok", {"name": "job", "image": busybox, "command": ["true"]}, restartPolicy="Never")
    ok["spec"]["containers"][0]["command"] = ["sh", "-c", "exit 0"]
    bad = pod(
        "bad", {"name": "job", "image": busybox, "command": ["sh", "-c", "exit 2"]}, restartPolicy="Never"
    )
    assert (
        wait_for(kubelet, ok, lambda s: s["phase"] == "Succeeded")["containerStatuses"][0]["state"][
            "terminated"
        ]["reason"]
        == "Completed"
    )
    failed = wait_for(kubelet, bad, lambda s: s["phase"] == "Failed")
    assert (
        container(failed)["state"]["terminated"]["exitCode"] == 2 and container(failed)["restartCount"] == 0
    )


def test_liveness_failure_kills_and_restarts(kubelet: Kubelet, busybox: str) -> None:
    sick = pod(
        "sick",
        {
            "name": "web",
            "image": busybox,
            "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": 8080},
                "periodSeconds": 1,
                "failureThreshold": 2,
            },
        },
    )
    status = wait_for(kubelet, sick, lambda s: container(s)["restartCount"] >= 1)
    events = kubelet.drain_events("ns1", "sick")
    unhealthy = [e for e in events if e["reason"] == "Unhealthy"]
    assert (
        unhealthy
        and unhealthy[0]["message"] == "Liveness probe failed: HTTP probe failed with statuscode: 404"
    )
    assert unhealthy[0]["type"] == "Warning" and unhealthy[0]["fieldPath"] == "spec.containers{web}"
    assert any(
        e["reason"] == "Killing" and e["message"] == "Container web failed liveness probe, will be restarted"
        for e in events
    )
    assert container(status)["lastState"]["terminated"]["exitCode"] != 0


def test_exec_probes_env_expansion_and_field_refs(kubelet: Kubelet, busybox: str) -> None:
    app = pod(
        "envy",
        {
            "name": "app",
            "image": busybox,
            "command": [
                "sh",
                "-c",
                "echo $(GREETING) $NAME $POD_IP > /tmp/out; touch /tmp/ready; exec sleep 600",
            ],
            "env": [
                {"name": "NAME", "value": "world"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
        },
    )
    resolved = ResolvedPod(env={"app": {"GREETING": "hello", "NAME": "$(GREETING)-world"}})
    status = wait_for(kubelet, app, ready, resolved)
    output = kubelet.docker.containers.get(container(status)["containerID"][9:]).exec_run(["cat", "/tmp/out"])
    assert output.output.decode().strip() == f"hello hello-world {status['podIP']}"


# --- images -------------------------------------------------------------------------------------------


def test_image_pull_policy_never_and_config_errors(kubelet: Kubelet, busybox: str) -> None:
    never = pod("never", {"name": "app", "image": "sandbox-test/absent:1", "imagePullPolicy": "Never"})
    status = wait_for(kubelet, never, lambda s: waiting_reason(s) == "ErrImageNeverPull")
    assert container(status)["state"]["waiting"]["message"] == (
        'Container image "sandbox-test/absent:1" is not present with pull policy of Never'
    )
    assert status["phase"] == "Pending"

    app = pod("cfg", {"name": "app", "image": busybox, "command": ["sleep", "600"]})
    broken = ResolvedPod(config_error='configmap "app-config" not found')
    status = wait_for(kubelet, app, lambda s: waiting_reason(s) == "CreateContainerConfigError", broken)
    assert container(status)["state"]["waiting"]["message"] == 'configmap "app-config" not found'
    events = kubelet.drain_events("ns1", "cfg")
    assert {
        "reason": "Failed",
        "message": 'Error: configmap "app-config" not found',
        "type": "Warning",
    }.items() <= (next(e for e in events if e["reason"] == "Failed").items())
    # Once the ConfigMap exists, the same pod starts.
    wait_for(kubelet, app, lambda s: "running" in container(s)["state"])


@pytest.fixture
def registry(
    sandbox_ready: dict[str, Any], engine: docker.DockerClient, busybox: str
) -> Iterator[dict[str, str]]:
    """The sandbox registry holding a copy of the busybox image under a fresh repository."""
    env = sandbox_ready["env"]
    auth = {"username": env["DOCKERHUB_USERNAME"], "password": env["DOCKERHUB_TOKEN"]}
    repository = f"{env['PIPELINE_REGISTRY']}/kubelet-test/bb-{uuid.uuid4().hex[:6]}"
    engine.images.get(busybox).tag(repository, "v1")
    for line in engine.api.push(repository, "v1", auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
    engine.images.remove(f"{repository}:v1")
    yield {"host": env["PIPELINE_REGISTRY"], "repository": repository, **auth}
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(f"{repository}:v1", force=True)


@pytest.mark.e2e
def test_pull_with_credentials_then_missing_tag_then_unauthorized(
    kubelet: Kubelet, registry: dict[str, str]
) -> None:
    kubelet.registry_auth[registry["host"]] = {
        "username": registry["username"],
        "password": registry["password"],
    }
    image = f"{registry['repository']}:v1"
    good = pod("pulled", {"name": "app", "image": image, "command": ["sleep", "600"]})
    status = wait_for(kubelet, good, lambda s: "running" in container(s)["state"])
    assert container(status)["imageID"].startswith(f"docker-pullable://{registry['repository']}@sha256:")
    events = kubelet.drain_events("ns1", "pulled")
    assert events[0]["reason"] == "Pulling" and events[0]["message"] == f'Pulling image "{image}"'
    assert events[1]["reason"] == "Pulled" and events[1]["message"].startswith(
        f'Successfully pulled image "{image}"'
    )

    missing = pod("missing", {"name": "app", "image": f"{registry['repository']}:absent"})
    status = wait_for(kubelet, missing, lambda s: waiting_reason(s) == "ErrImagePull")
    assert "manifest unknown" in container(status)["state"]["waiting"]["message"]
    status = wait_for(kubelet, missing, lambda s: waiting_reason(s) == "ImagePullBackOff")
    assert (
        container(status)["state"]["waiting"]["message"]
        == f'Back-off pulling image "{registry["repository"]}:absent"'
    )
    messages = [(e["reason"], e["message"]) for e in kubelet.drain_events("ns1", "missing")]
    assert ("Failed", "Error: ErrImagePull") in messages and ("Failed", "Error: ImagePullBackOff") in messages

    kubelet.registry_auth[registry["host"]] = {"username": registry["username"], "password": "wrong"}
    denied = pod("denied", {"name": "app", "image": image, "imagePullPolicy": "Always"})
    status = wait_for(kubelet, denied, lambda s: waiting_reason(s) == "ErrImagePull")
    assert "unauthorized" in container(status)["state"]["waiting"]["message"].lower()


# --- volumes, names, lifecycle ------------------------------------------------------------------------


def test_volumes_config_files_empty_dir_and_claims_outlive_pods(
    kubelet: Kubelet, busybox: str, engine: docker.DockerClient
) -> None:
    volume = f"sandbox-test-claim-{uuid.uuid4().hex[:6]}"
    spec = {
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "config", "configMap": {"name": "app-config"}},
            {"name": "scratch", "emptyDir": {}},
        ]
    }
    mounts = [
        {"name": "data", "mountPath": "/data"},
        {"name": "config", "mountPath": "/etc/app"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    script = "cat /etc/app/greeting >> /data/log; touch /scratch/x; exec sleep 600"
    c = {"name": "app", "image": busybox, "command": ["sh", "-c", script], "volumeMounts": mounts}
    resolved = ResolvedPod(volumes={"data": volume}, volume_files={"config": {"greeting": b"hi\n"}})
    try:
        # Without the claim's volume and the ConfigMap's files the pod waits, as with an unbound claim.
        unmounted = pod("vol0", dict(c), **spec)
        events: list[dict[str, str]] = []
        deadline = time.monotonic() + 10
        while not any(e["reason"] == "FailedMount" for e in events) and time.monotonic() < deadline:
            status = kubelet.sync_pod(unmounted, ResolvedPod())
            events += kubelet.drain_events("ns1", "vol0")
            time.sleep(0.2)
        assert status["phase"] == "Pending" and waiting_reason(status) == "ContainerCreating"
        assert any(
            e["message"] == 'persistentvolumeclaim "data" is not bound to a volume yet' for e in events
        )
        kubelet.kill_pod("ns1", "vol0", 0)
        for n in ("vol1", "vol2"):
            p = pod(n, dict(c), **spec)
            status = wait_for(kubelet, p, lambda s: "running" in container(s)["state"], resolved)
            cid = container(status)["containerID"][9:]
            run = engine.containers.get(cid).exec_run
            assert run(["sh", "-c", "echo x > /etc/app/y"]).exit_code != 0  # config files are read-only
            kubelet.kill_pod("ns1", n, 0)
        log = engine.containers.run(
            busybox, ["cat", "/data/log"], volumes={volume: {"bind": "/data"}}, remove=True
        )
        assert log == b"hi\nhi\n"  # the claim's volume survived both pods
        # Made as a fresh ext4 persistent disk is, with lost+found at its root.
        listing = engine.containers.run(
            busybox, ["ls", "-a", "/data"], volumes={volume: {"bind": "/data"}}, remove=True
        )
        assert b"lost+found" in listing.split()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            engine.api.remove_volume(volume, force=True)


def test_service_aliases_resolve_and_change_without_a_new_ip(kubelet: Kubelet, busybox: str) -> None:
    web = pod(
        "web", {"name": "web", "image": busybox, "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]}
    )
    status = wait_for(kubelet, web, lambda s: "running" in container(s)["state"])
    ip = status["podIP"]
    aliases = ResolvedPod(service_aliases=("web-svc", "web-svc.ns1.svc.cluster.local"))
    status = wait_for(kubelet, web, lambda s: True, aliases)
    client = pod(
        "client",
        {
            "name": "c",
            "image": busybox,
            "command": [
                "sh",
                "-c",
                "while :; do wget -q -O - http://web-svc.ns1.svc.cluster.local:8080/; sleep 1; done",
            ],
        },
    )
    wait_for(kubelet, client, lambda s: "running" in container(s)["state"])
    deadline = time.monotonic() + 15
    while "hello from busybox" not in kubelet.pod_logs("ns1", "client", "c", 5):
        assert time.monotonic() < deadline, kubelet.pod_logs("ns1", "client", "c", 5)
        kubelet.sync_pod(web, aliases)
        time.sleep(0.5)
    assert kubelet.sync_pod(web, aliases)["podIP"] == ip


@pytest.mark.e2e
def test_kill_honours_the_grace_period_and_a_new_kubelet_adopts(
    kubelet: Kubelet, busybox: str, engine: docker.DockerClient
) -> None:
    polite = pod(
        "polite",
        {"name": "app", "image": busybox, "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]},
    )
    stubborn = pod(
        "stubborn", {"name": "app", "image": busybox, "command": ["sh", "-c", "trap '' TERM; sleep 600"]}
    )
    for p in (polite, stubborn):
        wait_for(kubelet, p, lambda s: "running" in container(s)["state"])
    began = time.monotonic()
    kubelet.kill_pod("ns1", "polite", 20)
    assert time.monotonic() - began < 10  # SIGTERM ended it long before the grace period
    began = time.monotonic()
    kubelet.kill_pod("ns1", "stubborn", 2)
    took = time.monotonic() - began
    assert 1.5 < took < 10  # waited for the grace period, then SIGKILL
    assert "Killing" in reasons(kubelet, stubborn)

    # A daemon restarted without `down` finds the pod's containers and keeps them.
    web = pod(
        "adopt", {"name": "web", "image": busybox, "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]}
    )
    before = wait_for(kubelet, web, lambda s: "running" in container(s)["state"])
    successor = Kubelet(kubelet.cluster, "node-1", "127.0.0.2", engine, {}, kubelet.home, backoff_base=1)
    after = wait_for(successor, web, lambda s: "running" in container(s)["state"])
    assert container(after)["containerID"] == container(before)["containerID"]
    assert after["podIP"] == before["podIP"]
    successor.cleanup()
    # After `down` removed everything, the same pod is recreated from scratch.
    fresh = Kubelet(kubelet.cluster, "node-1", "127.0.0.2", engine, {}, kubelet.home, backoff_base=1)
    status = wait_for(fresh, web, lambda s: "running" in container(s)["state"])
    assert container(status)["containerID"] != container(before)["containerID"]
    fresh.cleanup()


# --- the seed's promise -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres(engine: docker.DockerClient) -> Iterator[str]:
    name = f"sandbox-test/postgres:{uuid.uuid4().hex[:8]}"
    pgimage.ensure_image(engine, name)
    yield name
    engine.images.remove(name, force=True)


@pytest.mark.e2e
def test_database_pod_reached_by_service_name_keeps_its_rows_across_pods(
    kubelet: Kubelet, postgres: str, engine: docker.DockerClient
) -> None:
    volume = f"sandbox-test-db-{uuid.uuid4().hex[:6]}"
    env = {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "appdb"}
    db_container = {
        "name": "postgres",
        "image": postgres,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in env.items()]
        + [{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
        "ports": [{"name": "pg", "containerPort": 5432}],
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']},
            "periodSeconds": 1,
        },
    }
    volumes = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}]}
    resolved = ResolvedPod(
        volumes={"db-data": volume}, service_aliases=("db-core", "db-core.ns1.svc.cluster.local")
    )

    def client(name: str, sql: str) -> str:
        url = "postgresql://app:s3cret@db-core:5432/appdb"
        c = {
            "name": "psql",
            "image": postgres,
            "command": ["psql", url, "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
        }
        p = pod(name, c, restartPolicy="Never")
        status = wait_for(kubelet, p, lambda s: s["phase"] in ("Succeeded", "Failed"))
        logs = kubelet.pod_logs("ns1", name, "psql", 20)
        assert status["phase"] == "Succeeded", logs
        kubelet.kill_pod("ns1", name, 0)
        return logs

    try:
        wait_for(kubelet, pod("db", dict(db_container), **volumes), ready, resolved, timeout=40)
        client("writer", "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')")
        began = time.monotonic()
        kubelet.kill_pod("ns1", "db", 30)
        assert time.monotonic() - began < 10  # the image's SIGINT is a fast shutdown
        wait_for(kubelet, pod("db", dict(db_container), **volumes), ready, resolved, timeout=40)
        assert client("reader", "SELECT body FROM notes").strip() == "kept"
        kubelet.kill_pod("ns1", "db", 30)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            engine.api.remove_volume(volume, force=True)
