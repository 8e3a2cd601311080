"""Webhook notifications against a real HTTP server on loopback: bodies, retries, and a URL kept secret."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline import notify
from pipeline.driftreport import DriftReport, FieldDrift, ObjectDrift
from pipeline.images import Image
from pipeline.report import ReleaseReport, StageResult

SECRET_PATH = "/services/T000/B000/s3cr3t-token-xyz"


@dataclass
class Receiver:
    url: str
    # Status codes to answer with, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.paths.append(self.path)
            got.bodies.append(json.loads(data))
            status = got.statuses.pop(0) if got.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


def released() -> ReleaseReport:
    image = Image("registry.example/campus/backend", "sha-1a2b3c4", "sha256:" + "ab" * 32)
    stages = (
        StageResult("build", "skipped", 0.0, "in the registry"),
        StageResult("apply", "ok", 1.234),
        StageResult("rollout", "ok", 7.5),
    )
    return ReleaseReport("staging", "release", "released", image, "1a2b3c4" * 5, stages)


def drifted() -> DriftReport:
    replicas = FieldDrift("spec.replicas", "replicas", 3, 1, ("kubectl (/scale)",))
    objects = (
        ObjectDrift("Deployment", "campus", "backend", "changed", (replicas,)),
        ObjectDrift("ConfigMap", "campus", "backend-config", "missing"),
        ObjectDrift("Service", "campus", "backend", "equal"),
    )
    stages = (StageResult("declared", "ok", 0.4), StageResult("compare", "ok", 0.3))
    return DriftReport(
        "staging", "c0ffee" * 6, "campus/backend:sha-1a2b3c4", "sha256:" + "cd" * 32, objects, stages
    )


def test_a_release_is_posted_as_generic_json(receiver: Receiver) -> None:
    warning = notify.notify(notify.from_release(released()), {"PIPELINE_WEBHOOK_URL": receiver.url})
    assert warning is None
    (body,) = receiver.bodies
    assert receiver.paths == [SECRET_PATH]
    assert body["event"] == "release" and body["env"] == "staging" and body["result"] == "released"
    assert body["digest"] == "sha256:" + "ab" * 32 and body["ok"] is True
    assert body["stages"] == {"apply": 1.23, "rollout": 7.5}  # skipped stages took no time


def test_a_drift_finding_names_each_object(receiver: Receiver) -> None:
    notify.notify(notify.from_drift(drifted()), {"PIPELINE_WEBHOOK_URL": receiver.url})
    (body,) = receiver.bodies
    assert body["event"] == "drift" and body["result"] == "drift" and body["ok"] is False
    assert body["stages"] == {"declared": 0.4, "compare": 0.3}
    assert body["details"] == [
        "Deployment campus/backend: replicas scaled by hand: "
        "spec.replicas: live 3, declared 1 (by kubectl (/scale))",
        "ConfigMap campus/backend-config: missing (deleted by hand)",
    ]
    assert "2 of 3 objects differ" in body["text"]


def test_slack_format_by_variable_or_host(receiver: Receiver) -> None:
    environ = {"PIPELINE_WEBHOOK_URL": receiver.url, "PIPELINE_WEBHOOK_FORMAT": "slack"}
    assert notify.notify(notify.from_drift(drifted()), environ) is None
    (body,) = receiver.bodies
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("drift staging: 2 of 3 objects differ")
    section, context = body["blocks"]
    assert "replicas scaled by hand" in section["text"]["text"]
    assert "declared 0.4s" in context["elements"][0]["text"]
    slack = notify.Webhook.from_env({"PIPELINE_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"})
    assert slack is not None and slack.format == "slack"
    assert "hooks.slack.com" not in repr(slack)  # the URL is a secret
    assert notify.Webhook.from_env({}) is None


def test_server_errors_are_retried_within_the_budget(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    webhook = notify.Webhook(receiver.url)
    assert notify.send(webhook, notify.from_release(released())) == 3
    assert len(receiver.bodies) == 3


def test_a_client_error_is_not_retried_and_only_warns(receiver: Receiver) -> None:
    receiver.statuses = [404]
    warning = notify.notify(notify.from_release(released()), {"PIPELINE_WEBHOOK_URL": receiver.url})
    assert warning is not None and "HTTP 404" in warning
    assert len(receiver.bodies) == 1
    assert SECRET_PATH not in warning and "s3cr3t" not in warning


def test_an_unreachable_webhook_warns_without_showing_its_url(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    warning = notify.notify(notify.from_release(released()), {"PIPELINE_WEBHOOK_URL": url})
    assert time.monotonic() - started < 10
    assert warning is not None and "ConnectError" in warning
    assert "s3cr3t" not in warning
    assert "s3cr3t" not in caplog.text


def test_httpx_request_log_does_not_carry_the_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notify.notify(notify.from_release(released()), {"PIPELINE_WEBHOOK_URL": receiver.url})
    assert receiver.bodies
    assert "HTTP Request" in caplog.text  # httpx did log the request...
    assert "s3cr3t" not in caplog.text  # ...without the URL


def test_a_bad_format_or_url_is_a_warning() -> None:
    bad_format = {"PIPELINE_WEBHOOK_URL": "http://127.0.0.1:1/x", "PIPELINE_WEBHOOK_FORMAT": "xml"}
    warning = notify.notify(notify.from_release(released()), bad_format)
    assert warning is not None and "PIPELINE_WEBHOOK_FORMAT" in warning
    warning = notify.notify(notify.from_release(released()), {"PIPELINE_WEBHOOK_URL": "http://[::1/s3cr3t"})
    assert warning is not None and "s3cr3t" not in warning
