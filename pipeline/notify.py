"""Notifications: each release, promote, rollback, repair and drift finding, posted to a webhook.

The webhook's URL comes from ``PIPELINE_WEBHOOK_URL`` only, and is treated as the secret it is (a Slack
incoming-webhook URL lets anyone post): it never enters a message, an exception or a log line, httpx's own
request log included. The body is Slack-compatible (``{"text", "blocks"}``) for ``hooks.slack.com`` or
when ``PIPELINE_WEBHOOK_FORMAT=slack``, else a generic JSON object (``event``, ``env``, ``digest``,
``result``, ``stages``, ...). Posting retries transport failures, 429 and 5xx within a small budget
(tenacity); what still fails is a warning for the command layer to print, never a failed release.

``tasks.py`` calls :func:`notify` after the chain returns, with a :class:`Message` made by
:func:`from_release` (``report.ReleaseReport``) or :func:`from_drift` (``driftreport.DriftReport``).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .base import first_line
from .errors import PipelineError, TemporaryError

if TYPE_CHECKING:
    import httpx

    from .driftreport import DriftReport
    from .report import ReleaseReport

URL_ENV = "PIPELINE_WEBHOOK_URL"
FORMAT_ENV = "PIPELINE_WEBHOOK_FORMAT"
Format = Literal["slack", "json"]


class NotifyError(PipelineError):
    """The webhook did not take the message (its URL never appears here)."""


class _Retryable(NotifyError, TemporaryError):
    """No answer, or a 429/5xx: worth another try within the budget."""


@dataclass(frozen=True)
class Webhook:
    url: str = field(repr=False)
    format: Format = "json"
    attempts: int = 3
    # Per request, and for all attempts together: a notification must not hold up a release for long.
    timeout: float = 5.0
    budget: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Webhook | None:
        """The webhook ``PIPELINE_WEBHOOK_URL`` names, or None when it is not set."""
        env = os.environ if environ is None else environ
        url = env.get(URL_ENV, "").strip()
        if not url:
            return None
        wanted = env.get(FORMAT_ENV, "").strip().lower()
        if wanted not in ("", "slack", "json"):
            raise NotifyError(f"{FORMAT_ENV}={wanted!r} is not a webhook format", "Use slack or json")
        host = url.split("://", 1)[-1].split("/", 1)[0].lower()
        slack = wanted == "slack" or (not wanted and host == "hooks.slack.com")
        return cls(url, "slack" if slack else "json")


@dataclass(frozen=True)
class Message:
    event: str  # release, promote, rollback, repair, drift
    env: str
    result: str
    ok: bool
    text: str  # one line a person reads
    image: str = ""
    digest: str | None = None
    reason: str = ""
    stages: Mapping[str, float] = field(default_factory=dict)
    # One line per drift finding (or the URLs a release answers at).
    details: tuple[str, ...] = ()
    at: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def from_release(report: ReleaseReport) -> Message:
    from .report import headline

    stages = {s.name: round(s.seconds, 2) for s in report.stages if s.status != "skipped"}
    image = report.image
    return Message(
        report.kind, report.env, report.result, report.ok, headline(report),
        image.ref if image else "", image.digest if image else None, report.reason, stages, report.urls,
    )  # fmt: skip


def from_drift(report: DriftReport) -> Message:
    from . import driftreport

    stages = {s.name: round(s.seconds, 2) for s in report.stages if s.status != "skipped"}
    details = tuple(f"{o.ref}: {finding}" for o in report.drifted for finding in o.findings())
    reason = report.repair_error or (report.repair.reason if report.repair is not None else "")
    return Message(
        "drift", report.env, report.result, not report.found, driftreport.headline(report), report.image,
        report.digest, reason, stages, details,
    )  # fmt: skip


def body(message: Message, fmt: Format) -> dict[str, Any]:
    """The JSON body: Slack's ``text`` and ``blocks``, or the generic object."""
    if fmt == "json":
        return {
            "event": message.event,
            "env": message.env,
            "result": message.result,
            "ok": message.ok,
            "image": message.image,
            "digest": message.digest,
            "reason": message.reason,
            "stages": dict(message.stages),
            "details": list(message.details),
            "text": message.text,
            "at": message.at,
        }
    mark = ":white_check_mark:" if message.ok else ":rotating_light:"
    lines = [f"{mark} *{message.text}*"]
    if message.reason:
        lines.append(f"> {message.reason}")
    lines += [f"• {d}" for d in message.details[:20]]
    times = " · ".join(f"{name} {seconds:.1f}s" for name, seconds in message.stages.items())
    context = f"{message.env} · {message.digest or 'no digest'}" + (f" · {times}" if times else "")
    return {
        "text": message.text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context[:2900]}]},
        ],
    }


class _Redact(logging.Filter):
    """Takes the webhook's URL out of what httpx and httpcore log while we post."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.url in text:
            record.msg, record.args = text.replace(self.url, "<webhook>"), ()
        return True


@contextmanager
def _redacted(url: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    redact = _Redact(url)
    for logger in loggers:
        logger.addFilter(redact)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redact)


def _post_once(client: httpx.Client, webhook: Webhook, payload: dict[str, Any]) -> None:
    import httpx

    try:
        response = client.post(webhook.url, json=payload)
    except httpx.TransportError as e:
        # The exception's text may carry the URL; its type and the OS's reason do not.
        raise _Retryable(f"posting to the webhook ({URL_ENV}): {type(e).__name__}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retryable(f"posting to the webhook ({URL_ENV}): HTTP {response.status_code}")
    if response.status_code >= 300:
        raise NotifyError(
            f"posting to the webhook ({URL_ENV}): HTTP {response.status_code}",
            "Check the URL and, for Slack, that the app's webhook is still installed",
        )


def send(webhook: Webhook, message: Message) -> int:
    """Post ``message``; the number of attempts it took. :class:`NotifyError` when the budget ran out."""
    import httpx
    import tenacity

    payload = body(message, webhook.format)
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(webhook.attempts) | tenacity.stop_after_delay(webhook.budget),
        wait=tenacity.wait_exponential(multiplier=0.5, max=4),
        retry=tenacity.retry_if_exception_type(_Retryable),
        reraise=True,
    )
    try:
        with _redacted(webhook.url), httpx.Client(timeout=webhook.timeout, follow_redirects=False) as client:
            for attempt in retrying:
                with attempt:
                    _post_once(client, webhook, payload)
                    return attempt.retry_state.attempt_number
    except httpx.InvalidURL:
        raise NotifyError(f"{URL_ENV} is not a valid URL", "Set it to the webhook's https:// URL") from None
    raise NotifyError(f"posting to the webhook ({URL_ENV}): no attempt was made")  # unreachable


def notify(message: Message, environ: Mapping[str, str] | None = None) -> str | None:
    """Post ``message`` if a webhook is configured; a warning to print when that failed, else None."""
    try:
        webhook = Webhook.from_env(environ)
        if webhook is None:
            return None
        send(webhook, message)
    except NotifyError as e:
        return f"notification not sent: {first_line(e)}"
    return None
