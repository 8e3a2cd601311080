"""One bounded back-off for transient failures at every border (Kubernetes API, registry, GKE, tokens).

A 503 from an API server during a control-plane upgrade, a registry that drops connections for a few
seconds, a token endpoint that answers 500: each passes within seconds on the real cloud, so the border
modules retry them on tenacity with exponential back-off and jitter, for at most :data:`BUDGET_SECONDS`
in all. What is not transient (401, 404, a validation error) is never retried here; what is still
failing when the budget is spent is raised as it is, so the caller's one-line diagnosis stays the
message. Each retry is logged at INFO (not shown by the tasks), never printed: the output stays one line.

Neighbours: ``kube.session``, ``build`` and ``gke`` call :func:`retrying`; the retryable exception types
are ``errors.TemporaryError``'s subclasses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import TemporaryError

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger(__name__)

# Long enough to ride out an API server restart or a GKE control-plane blip (seconds), short enough that
# a real outage is reported within half a minute rather than hanging a release.
BUDGET_SECONDS = 20.0
# Back-off: 0.25 s doubling to at most 4 s, with up to 0.25 s jitter so that parallel callers spread out.
INITIAL_WAIT = 0.25
MAX_WAIT = 4.0


def retrying(
    what: str,
    *,
    transient: Callable[[BaseException], bool] | None = None,
    budget: float = BUDGET_SECONDS,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for ``what``: transient failures (by default any ``TemporaryError``)
    retried with bounded exponential back-off, the last failure re-raised unchanged."""
    import tenacity

    def is_transient(e: BaseException) -> bool:
        return transient(e) if transient is not None else isinstance(e, TemporaryError)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("%s; retrying in %.1f s (attempt %d)", error or what, wait, state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_delay(budget),
        wait=tenacity.wait_exponential(multiplier=INITIAL_WAIT, max=MAX_WAIT)
        + tenacity.wait_random(0, INITIAL_WAIT),
        before_sleep=before_sleep,
        reraise=True,
    )
