"""Smoke-test stage: after a rollout, ask the running service over the network whether it is the release.

Its inputs are plain addresses that ``smoke.targets`` reads from the Kubernetes API (a node's external IP
and a Service's nodePort, an Ingress's status IP and its rule's host); each request goes through
``smoke.request`` (httpx, with the Ingress's host as SNI while connecting to its IP). ``release.py`` calls
:func:`run` once the rollout stage reports success, and hands a failed :class:`SmokeResult` to the
rollback. ``config.py`` builds the per-environment :class:`Check` list.

Outcomes, not exceptions: a check that fails is data in the result (``SmokeResult.passed`` is False and
each failure says why in one line). Only a misconfiguration, such as an unreadable CA bundle, raises
:class:`SmokeError`. Retries run on tenacity, bounded by one deadline shared by every check.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import tenacity

from .. import interrupt
from ..base import Progress, quiet
from ..config import VERSION_CHECK, Check
from ..errors import SmokeError
from .request import Endpoint, Response, Target
from .request import Failed as _Failed

__all__ = ["EXPIRY_WARNING_DAYS", "Check", "Outcome", "SmokeError", "SmokeResult", "Target", "run"]

log = logging.getLogger(__name__)

# A certificate that expires sooner than this gets a warning (not a failure): the release is fine today,
# but someone should look at renewal before users see an error.
EXPIRY_WARNING_DAYS = 14
# Short shas are 7 hex digits (the image tag's sha-1a2b3c4); fewer would match too many commits.
_MIN_COMMIT = 7


@dataclass(frozen=True)
class Outcome:
    """How one check went on one target. ``error`` is the last failure, in one line (None if it passed)."""

    target: str
    check: str
    passed: bool
    attempts: int
    elapsed: float
    error: str | None = None


@dataclass(frozen=True)
class SmokeResult:
    """Every (target, check) outcome, plus warnings that do not fail the release (certificate expiry)."""

    outcomes: tuple[Outcome, ...]
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    def reason(self) -> str:
        """One line naming the first failure, for a rollback commit or an error message."""
        if self.passed:
            return "smoke tests passed"
        if not self.outcomes:
            return "no smoke test ran (no target or no check)"
        first, *rest = self.failures
        more = f" (and {len(rest)} more)" if rest else ""
        return f"smoke test failed: {first.target}: {first.check}: {first.error}{more}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "outcomes": [{**o.__dict__, "elapsed": round(o.elapsed, 3)} for o in self.outcomes],
            "warnings": list(self.warnings),
        }


def commit_matches(served: str, expected: str) -> bool:
    """Whether a served commit is the expected one, either side possibly a short sha (7+ hex digits)."""
    served, expected = served.strip().lower(), expected.strip().lower()
    if min(len(served), len(expected)) < _MIN_COMMIT:
        return False
    return served.startswith(expected) or expected.startswith(served)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _judge(check: Check, response: Response) -> None:
    """Raise :class:`_Failed` with the first way the response differs from what ``check`` expects."""
    where = f"GET {check.path}"
    if response.status != check.expect_status:
        raise _Failed(f"{where}: status {response.status}, expected {check.expect_status}")
    if check.expect_body is not None and check.expect_body not in response.body:
        raise _Failed(f"{where}: body {_short(response.body)} does not contain {check.expect_body!r}")
    if check.expect_json is not None:
        try:
            document = json.loads(response.body)
        except ValueError:
            raise _Failed(f"{where}: body {_short(response.body)} is not JSON") from None
        if not isinstance(document, dict):
            raise _Failed(f"{where}: body is JSON but not an object")
        for key, want in check.expect_json.items():
            if key not in document:
                raise _Failed(f"{where}: JSON has no {key!r} (expected {want!r})")
            if document[key] != want:
                raise _Failed(f"{where}: JSON {key!r} is {document[key]!r}, expected {want!r}")


def _served_commit(response: Response) -> str:
    if response.status != 200:
        raise _Failed(f"GET /version: status {response.status}, expected 200")
    try:
        document = json.loads(response.body)
    except ValueError:
        raise _Failed(f"GET /version: body {_short(response.body)} is not JSON") from None
    commit = document.get("commit") if isinstance(document, dict) else None
    if not isinstance(commit, str):
        raise _Failed('GET /version: no "commit" in the JSON')
    return commit


# --- the stage --------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the worker threads share: the deadline, the knobs, and the certificates seen per target."""

    deadline: float
    interval: float
    request_timeout: float
    version_samples: int
    progress: Progress
    lock: threading.Lock = field(default_factory=threading.Lock)
    expiries: dict[str, tuple[str, float]] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def request(self, endpoint: Endpoint, path: str) -> Response:
        timeout = max(0.2, min(self.request_timeout, self.remaining()))
        response = endpoint.get(path, timeout)
        if response.not_after is not None:
            with self.lock:
                self.expiries.setdefault(endpoint.target.label, (endpoint.server_name, response.not_after))
        return response

    def until_passes(self, endpoint: Endpoint, name: str, attempt: Callable[[], None]) -> Outcome:
        """Run ``attempt`` until it raises nothing or the deadline passes (always at least once)."""
        started = time.monotonic()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Failed),
            wait=lambda _: max(0.0, min(self.interval, self.remaining())),
            # Stop when the next wait would reach the deadline: one more attempt could not finish in time.
            # A SIGTERM or Ctrl-C ends the retries too; the chain raises Interrupted after the run.
            stop=lambda state: (
                self.remaining() - (state.upcoming_sleep or 0.0) <= 0 or interrupt.requested() is not None
            ),
            before_sleep=lambda state: log.debug(
                "%s: %s: attempt %d: %s",
                endpoint.target.label,
                name,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        )
        try:
            retrying(attempt)
        except _Failed as e:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            outcome = Outcome(
                endpoint.target.label, name, False, attempts, time.monotonic() - started, str(e)
            )
            self.progress(f"FAILED {outcome.target}: {name}: {outcome.error}")
            return outcome
        attempts = int(retrying.statistics.get("attempt_number", 1))
        outcome = Outcome(endpoint.target.label, name, True, attempts, time.monotonic() - started)
        self.progress(f"ok {outcome.target}: {name} ({attempts} attempt(s), {outcome.elapsed:.1f} s)")
        return outcome

    def check(self, endpoint: Endpoint, check: Check) -> Outcome:
        return self.until_passes(
            endpoint, check.name, lambda: _judge(check, self.request(endpoint, check.path))
        )

    def version(self, endpoint: Endpoint, expected: str) -> Outcome:
        # Several fresh connections in a row must all serve the release: while an old pod still answers
        # behind the Service, some of them reach it, and one lucky answer from a new pod is not enough.
        def attempt() -> None:
            for _ in range(self.version_samples):
                served = _served_commit(self.request(endpoint, "/version"))
                if not commit_matches(served, expected):
                    raise _Failed(
                        f"GET /version: serves commit {served[:12]!r}, expected {expected[:12]!r} "
                        "(an old pod still answering?)"
                    )

        return self.until_passes(endpoint, VERSION_CHECK, attempt)


def run(
    targets: Iterable[Target],
    checks: Iterable[Check],
    *,
    expected_commit: str | None,
    deadline_seconds: float,
    interval: float = 1.0,
    request_timeout: float = 5.0,
    version_samples: int = 3,
    progress: Progress = quiet,
) -> SmokeResult:
    """Run every check on every target in parallel, each retried until it passes or the deadline passes.

    With ``expected_commit`` (a full or short sha), each target must also serve that commit at
    ``/version`` on ``version_samples`` fresh connections in a row. Certificates that expire within
    :data:`EXPIRY_WARNING_DAYS` days become warnings. Raises :class:`SmokeError` only when a target is
    misconfigured (unreadable CA bundle, not an http(s) URL); failing checks are in the result.
    """
    targets, checks = tuple(targets), tuple(checks)
    if expected_commit is not None and len(expected_commit.strip()) < _MIN_COMMIT:
        raise SmokeError(
            f"expected commit {expected_commit!r} is too short to compare",
            f"Pass at least {_MIN_COMMIT} hex digits",
        )
    endpoints = [Endpoint(t) for t in targets]  # before any request: a bad CA path fails at once
    state = _Run(
        deadline=time.monotonic() + deadline_seconds,
        interval=interval,
        request_timeout=request_timeout,
        version_samples=max(1, version_samples),
        progress=progress,
    )
    jobs: list[Callable[[], Outcome]] = []
    for endpoint in endpoints:
        jobs += [functools.partial(state.check, endpoint, check) for check in checks]
        if expected_commit is not None:
            jobs.append(functools.partial(state.version, endpoint, expected_commit))
    try:
        if not jobs:
            return SmokeResult(())
        with ThreadPoolExecutor(max_workers=min(32, len(jobs)), thread_name_prefix="smoke") as pool:
            outcomes = tuple(pool.map(lambda job: job(), jobs))
    finally:
        for endpoint in endpoints:
            endpoint.close()
    return SmokeResult(outcomes, _expiry_warnings(state.expiries))


def _expiry_warnings(expiries: Mapping[str, tuple[str, float]], now: float | None = None) -> tuple[str, ...]:
    now = time.time() if now is None else now
    warnings = []
    for label, (name, not_after) in sorted(expiries.items()):
        left = not_after - now
        if left < EXPIRY_WARNING_DAYS * 86400:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
            days = max(0, int(left // 86400))
            warnings.append(
                f"{label}: the certificate for {name} expires in {days} day(s) ({when}); renew it "
                f"(warned at {EXPIRY_WARNING_DAYS} days)"
            )
    return tuple(warnings)
