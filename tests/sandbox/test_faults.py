"""The sandbox's fault switches and fixed latency, seen from a client: answers, refusals, hangs, delays.

A registry-only daemon (real ``docker-registry`` behind the fault proxy, the git remote, the control
socket) is driven through ``faultclient``; the API servers and the GKE stand-in run in-process
(``RunningKube``) and their switches are thrown on the same :data:`sandbox.faults.state`.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import control, faults
from sandbox.errors import SandboxError
from sandbox.faultclient import FaultClient
from sandbox.home import Home, free_port

from .conftest import RunningKube  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]


def get(url: str, timeout: float = 5.0, **headers: str) -> tuple[int | str, float, dict[str, str]]:
    """(status or error name, seconds, headers) of one GET."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, time.monotonic() - started, dict(response.headers)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code, time.monotonic() - started, dict(e.headers)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return type(reason).__name__, time.monotonic() - started, {}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, dict[str, Any]]]:
    home = Home(tmp_path_factory.mktemp("faults-home"))
    home.ensure_settings({"SANDBOX_REGISTRY_PORT": str(free_port()), "SANDBOX_CLUSTERS": ""})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SANDBOX_LATENCY_MS", "60")
        ready = control.up(home, ROOT)
    try:
        yield home, ready
    finally:
        control.down(home)


def test_latency_from_the_environment_then_changed_at_run_time(daemon: tuple[Home, dict[str, Any]]) -> None:
    home, ready = daemon
    url = f"http://{ready['env']['PIPELINE_REGISTRY']}/v2/"
    client = FaultClient(home)
    assert client.state()["latency_ms"] == 60
    status, seconds, _ = get(url)
    assert status == 401 and seconds >= 0.06
    client.set_latency(0)
    status, seconds, _ = get(url)
    assert status == 401 and seconds < 0.05


def test_registry_answers_503_then_401_then_refuses_then_recovers(
    daemon: tuple[Home, dict[str, Any]],
) -> None:
    home, ready = daemon
    url = f"http://{ready['env']['PIPELINE_REGISTRY']}/v2/"
    client = FaultClient(home)
    client.set_latency(0)
    client.set_fault("registry", "status", status=503, seconds=0.5)
    assert get(url)[0] == 503
    time.sleep(0.6)
    assert get(url)[0] == 401  # lifted by itself
    with client.fault("registry", "status", status=401):
        status, _, headers = get(url, Authorization="Basic c2FuZGJveDp3cm9uZw==")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    with client.fault("registry", "refuse"):
        assert get(url)[0] == "ConnectionRefusedError"
    assert get(url)[0] == 401
    client.set_fault("registry", "hang", seconds=0.5)
    status, seconds, _ = get(url)
    assert status == 401 and seconds >= 0.45
    assert client.state()["faults"] == []


def test_git_remote_refuses_pushes_until_allowed(daemon: tuple[Home, dict[str, Any]], tmp_path: Path) -> None:
    home, _ = daemon
    client = FaultClient(home)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(home.git_remote), str(clone)], check=True)
    author = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", *author, "commit", "-q", "--allow-empty", "-m", "x"], cwd=clone, check=True)
    client.refuse_git_pushes()
    refused = subprocess.run(
        ["git", "push", "-q", "origin", "HEAD"], cwd=clone, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "sandbox fault: the remote refuses pushes" in refused.stderr
    assert client.state()["git_refuses_pushes"]
    client.allow_git_pushes()
    subprocess.run(["git", "push", "-q", "origin", "HEAD"], cwd=clone, check=True)


def test_bad_requests_are_one_line_errors(daemon: tuple[Home, dict[str, Any]]) -> None:
    client = FaultClient(daemon[0])
    with pytest.raises(SandboxError, match="unknown fault target 'dns'"):
        client.set_fault("dns", "status")
    with pytest.raises(SandboxError, match="unknown fault mode"):
        client.set_fault("registry", "explode")
    with pytest.raises(SandboxError, match="not an HTTP error status"):
        client.set_fault("registry", "status", status=200)
    with pytest.raises(SandboxError, match="no cluster 'staging'"):
        client.kill_container("staging", "campus", "web-0")


def test_control_socket_is_private(daemon: tuple[Home, dict[str, Any]]) -> None:
    socket_path = FaultClient(daemon[0]).socket_path
    assert socket_path.stat().st_mode & 0o777 == 0o600


def test_cli_prints_the_state(daemon: tuple[Home, dict[str, Any]]) -> None:
    home, _ = daemon
    run = subprocess.run(
        [
            "python",
            "-m",
            "sandbox",
            "faults",
            "--home",
            str(home.path),
            "set",
            "gke",
            "status",
            "--seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(run.stdout)["faults"][0]["target"] == "gke"


# --- the API servers and the GKE stand-in, in-process ------------------------------------------------------


@pytest.fixture
def state(kube: RunningKube) -> Iterator[faults.FaultState]:
    yield faults.state
    kube.call(faults.state.clear())
    faults.state.set_latency(0)


def test_api_server_faults_hit_one_cluster(kube: RunningKube, state: faults.FaultState) -> None:
    staging, prod = kube.server("staging") + "/version", kube.server("prod") + "/version"
    assert kube.service is not None and kube.service.ca is not None
    ca = str(kube.service.ca.cert_path)
    import ssl

    context = ssl.create_default_context(cafile=ca)

    def status(url: str) -> int | str:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            with e:
                body = json.loads(e.read())
            assert body["kind"] == "Status" and body["code"] == e.code
            return e.code
        except (urllib.error.URLError, OSError) as e:
            return type(getattr(e, "reason", e)).__name__

    kube.call(state.set(faults.make_fault("api:staging", "status", status=500)))
    assert (status(staging), status(prod)) == (500, 200)
    kube.call(state.clear())
    kube.call(state.set(faults.make_fault("api", "status", status=503)))
    assert (status(staging), status(prod)) == (503, 503)
    kube.call(state.clear())
    kube.call(state.set(faults.make_fault("api:prod", "refuse")))
    assert (status(staging), status(prod)) == (200, "ConnectionRefusedError")
    kube.call(state.clear("api:prod"))
    assert status(prod) == 200


def test_token_endpoint_and_container_api_fail_apart(kube: RunningKube, state: faults.FaultState) -> None:
    assert kube.service is not None
    base = kube.service.gke_endpoint
    kube.call(state.set(faults.make_fault("token", "status", status=500)))
    request = urllib.request.Request(f"{base}/token", data=b"grant_type=x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 500
    raised.value.close()
    # The Container API still answers (401: no token), untouched by the token endpoint's fault.
    assert get(f"{base}/v1/projects/sandbox/locations/local/clusters/staging")[0] == 401
    state.set_latency(80)
    status, seconds, _ = get(f"{base}/v1/projects/sandbox/locations/local/clusters/staging")
    assert status == 401 and seconds >= 0.08
