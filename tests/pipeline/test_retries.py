"""The one bounded back-off (pipeline/retries.py) and which Kubernetes requests it may send again."""

from __future__ import annotations

import time

import pytest

from pipeline.errors import KubeInvalid, KubeUnreachable, RegistryAuthError, RegistryUnreachable
from pipeline.kube.session import _transient
from pipeline.retries import retrying


def test_transient_failures_are_retried_until_they_pass() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RegistryUnreachable("looking up x: registry kept failing (503)")
        return "ok"

    assert retrying("looking up x")(flaky) == "ok"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.25  # backed off, not a busy loop


def test_the_budget_bounds_the_retries_and_the_last_error_is_raised_unchanged() -> None:
    started = time.monotonic()
    error = RegistryUnreachable("looking up x: registry kept failing (503)", "Try again")

    def down() -> None:
        raise error

    with pytest.raises(RegistryUnreachable) as raised:
        retrying("looking up x", budget=1.0)(down)
    assert raised.value is error
    assert time.monotonic() - started < 1.0 + 4.5  # the budget, plus at most one last wait


def test_what_is_not_transient_fails_at_once() -> None:
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise RegistryAuthError("pushing x: 401 unauthorized")

    with pytest.raises(RegistryAuthError):
        retrying("pushing x")(refused)
    assert calls == 1


def _unreachable(cause: BaseException | None = None, status: int | None = None) -> KubeUnreachable:
    error = KubeUnreachable("creating Lease x: no answer")
    error.status = status
    error.__cause__ = cause
    return error


def test_a_create_is_sent_again_only_when_it_cannot_have_been_stored() -> None:
    assert _transient("GET", _unreachable(TimeoutError("read timed out")))
    assert _transient("PATCH", _unreachable(TimeoutError("read timed out")))
    assert _transient("POST", _unreachable(status=503))
    assert _transient("POST", _unreachable(ConnectionRefusedError(111, "Connection refused")))
    assert not _transient("POST", _unreachable(TimeoutError("read timed out")))
    assert not _transient("GET", KubeInvalid("applying x: rejected as invalid"))
