"""The service answers throughout: 20 requests/s through the NodePort and 20 through the HTTPS Ingress
(``sandbox.load``, Debian's wrk) for the whole length of a good release, a crashing release with its
automatic rollback, and a promotion to prod. Zero failed requests (non-2xx/3xx, socket errors, timeouts)
is the assertion; the request counts and p99 latencies go to docs/reliability.md.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline import kube
from sandbox.load import Load, Target

from .conftest import NAMESPACE, NODE_PORT, Project, last_line  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

RATE = 20


def targets(project: Project, env: str) -> list[Target]:
    ip = project.node_ip(env)
    with kube.connect(project.access(env)) as k:
        ingress = k.get("networking.k8s.io/v1", "Ingress", "backend-core-ingress", NAMESPACE)
    assert ingress is not None
    host = ingress["spec"]["rules"][0]["host"]
    port = project.environ["PIPELINE_INGRESS_PORT"]
    return [
        Target("nodeport", f"http://{ip}:{NODE_PORT}/", ip, close_connections=True),
        Target("ingress", f"https://{host}:{port}/", ip),
    ]


def under_load(
    project: Project, rows: list[dict[str, Any]], operation: str, env: str, *args: str, expect_rc: int = 0
) -> None:
    started = time.monotonic()
    with Load(targets(project, env), rate=RATE) as load:
        done = project.invoke(*args)
    seconds = time.monotonic() - started
    assert done.returncode == expect_rc, done.stderr[-2000:]
    assert set(load.results) == {"nodeport", "ingress"}, "a load generator reported nothing"
    for name, result in load.results.items():
        rows.append(
            {
                "operation": operation,
                "path": name,
                "requests": result.requests,
                "failures": result.failures,
                "errors": result.errors,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "max_ms": result.max_ms,
                "seconds": round(seconds, 1),
                "outcome": "released" if done.returncode == 0 else last_line(done),
            }
        )
    failed = {n: r.errors for n, r in load.results.items() if r.failures}
    assert not failed, f"{operation}: failed requests {failed}"
    # Paced at RATE a second for the whole operation (a loaded machine answers a little slower).
    for result in load.results.values():
        assert result.requests >= RATE * seconds * 0.5, result


def test_setup_staging_and_prod_serve(project: Project, rows: list[dict[str, Any]]) -> None:
    """Both environments serve before the load starts (the load measures changes, not first installs)."""
    done = project.invoke("release", "--env", "staging", "--image", next(project.variants))
    assert done.returncode == 0, done.stderr[-2000:]
    done = project.invoke("promote", "--env", "prod", "--approved-by", "fault-e2e")
    assert done.returncode == 0, done.stderr[-2000:]


def test_good_release_under_load(project: Project, rows: list[dict[str, Any]]) -> None:
    image = next(project.variants)
    under_load(
        project, rows, "release (good image)", "staging", "release", "--env", "staging", "--image", image
    )


def test_crashing_release_and_its_rollback_under_load(project: Project, rows: list[dict[str, Any]]) -> None:
    under_load(
        project,
        rows,
        "release of a crashing image + automatic rollback",
        "staging",
        "release",
        "--env",
        "staging",
        "--image",
        project.images.crash,
        # It already failed here in the fault suite; --force sends it again on purpose.
        "--force",
        expect_rc=1,
    )


def test_promote_under_load(project: Project, rows: list[dict[str, Any]]) -> None:
    # Staging's last good release (the good image above) goes to prod, two replicas rolling.
    under_load(
        project,
        rows,
        "promote staging -> prod",
        "prod",
        "promote",
        "--env",
        "prod",
        "--approved-by",
        "fault-e2e",
    )
