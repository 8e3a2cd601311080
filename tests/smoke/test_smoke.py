"""The smoke-test stage against real servers: HTTPS with a trustme CA, and plain HTTP for the NodePort.

Each server is ``http.server`` on 127.0.0.1 in a thread; the HTTPS one holds a certificate for
``campus.example`` only, so reaching it by IP with that name as SNI and Host is exactly the Ingress case
before DNS points at it. Failures are checked for their one-line reason, not just for ``passed is False``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from pipeline import config, smoke
from pipeline.errors import ConfigError, PipelineError
from pipeline.smoke import Check, SmokeError, Target

HOST = "campus.example"
GREETING = "Hello from the other side!"
COMMIT = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
OLD_COMMIT = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
GREET = Check("greeting", "/", expect_body=GREETING)


class Handler(BaseHTTPRequestHandler):
    server: App

    def do_GET(self) -> None:
        app = self.server
        with app.lock:
            app.requests += 1
            n = app.requests
        if self.path == "/":
            self.reply(200, GREETING)
        elif self.path == "/version":
            # Every other request reaches an "old pod" when the app is rolling.
            commit = OLD_COMMIT if app.rolling and n % 2 == 0 else app.commit
            self.reply(200, json.dumps({"commit": commit, "version": "0.1.0"}), "application/json")
        elif self.path == "/slow":
            ready = time.monotonic() - app.started >= 1.5
            self.reply(200 if ready else 503, "ready" if ready else "starting")
        elif self.path == "/host":
            self.reply(200, self.headers.get("Host", ""))
        else:
            self.reply(404, "not found")

    def reply(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class App(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.commit = COMMIT
        self.rolling = False
        self.started = time.monotonic()
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that rejects our certificate aborts its handshake; that is the test, not an error


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start servers on demand; all of them stop at the end of the test."""
    started: list[tuple[App, threading.Thread]] = []

    def start(tls: ssl.SSLContext | None = None) -> App:
        app = App(tls)
        thread = threading.Thread(target=app.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((app, thread))
        return app

    yield start
    for app, thread in started:
        app.shutdown()
        app.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def tls_for(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


@pytest.fixture
def https(ca: trustme.CA, serve: Any) -> App:
    app: App = serve(tls_for(ca.issue_cert(HOST)))
    return app


def ingress(app: App, ca_file: Path | None, host: str = HOST) -> Target:
    return Target.ingress("127.0.0.1", host, ca_bundle=ca_file, port=app.port)


def one_failure(result: smoke.SmokeResult) -> str:
    assert not result.passed
    (failure,) = result.failures
    assert failure.error is not None and "\n" not in failure.error
    assert result.reason().startswith("smoke test failed: ")
    return failure.error


QUICK: dict[str, Any] = {"deadline_seconds": 0.3, "interval": 0.1}


def test_ingress_by_ip_with_sni_host_and_ca_passes(https: App, ca_file: Path) -> None:
    target = ingress(https, ca_file)
    result = smoke.run([target], [GREET], expected_commit=COMMIT[:7], deadline_seconds=5)
    assert result.passed, result.reason()
    assert {(o.check, o.attempts) for o in result.outcomes} == {("greeting", 1), ("version", 1)}
    assert all(o.target == f"ingress https://{HOST}:{https.port} via 127.0.0.1" for o in result.outcomes)
    assert result.warnings == ()
    assert result.as_dict()["passed"] is True


def test_the_host_header_is_the_rules_host(https: App, ca_file: Path) -> None:
    check = Check("host", "/host", expect_body=f"{HOST}:{https.port}")
    assert smoke.run([ingress(https, ca_file)], [check], expected_commit=None, deadline_seconds=5).passed


def test_an_untrusted_ca_fails_with_the_reason(https: App, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    result = smoke.run([ingress(https, other)], [GREET], expected_commit=None, **QUICK)
    error = one_failure(result)
    assert error.startswith("TLS certificate rejected: "), error
    assert "issuer" in error, error
    assert result.failures[0].attempts >= 2  # retried until the deadline


def test_the_system_trust_store_does_not_know_the_sandbox_ca(https: App) -> None:
    error = one_failure(smoke.run([ingress(https, None)], [GREET], expected_commit=None, **QUICK))
    assert error.startswith("TLS certificate rejected: "), error


def test_a_certificate_for_another_host_fails(https: App, ca_file: Path) -> None:
    result = smoke.run(
        [ingress(https, ca_file, host="other.example")], [GREET], expected_commit=None, **QUICK
    )
    error = one_failure(result)
    assert "Hostname mismatch" in error and "other.example" in error, error


def test_a_wrong_body_fails(https: App, ca_file: Path) -> None:
    check = Check("greeting", "/", expect_body="Goodbye")
    error = one_failure(smoke.run([ingress(https, ca_file)], [check], expected_commit=None, **QUICK))
    assert error == f"GET /: body {GREETING!r} does not contain 'Goodbye'"


def test_a_wrong_status_fails(https: App, ca_file: Path) -> None:
    check = Check("missing", "/nope")
    error = one_failure(smoke.run([ingress(https, ca_file)], [check], expected_commit=None, **QUICK))
    assert error == "GET /nope: status 404, expected 200"


def test_a_wrong_commit_fails(https: App, ca_file: Path) -> None:
    result = smoke.run([ingress(https, ca_file)], [GREET], expected_commit="deadbee", **QUICK)
    error = one_failure(result)
    assert result.failures[0].check == "version"
    assert error.startswith(f"GET /version: serves commit {COMMIT[:12]!r}, expected 'deadbee'"), error


def test_an_old_pod_still_answering_is_caught(https: App, ca_file: Path) -> None:
    https.rolling = True  # half the answers come from the old commit, as behind a Service mid-rollout
    error = one_failure(smoke.run([ingress(https, ca_file)], [], expected_commit=COMMIT[:7], **QUICK))
    assert f"serves commit {OLD_COMMIT[:12]!r}" in error and "old pod" in error, error


def test_expect_json_is_a_subset_match(https: App, ca_file: Path) -> None:
    ok = Check("version json", "/version", expect_json={"commit": COMMIT})
    assert smoke.run([ingress(https, ca_file)], [ok], expected_commit=None, deadline_seconds=5).passed
    bad = Check("version json", "/version", expect_json={"commit": "x"})
    error = one_failure(smoke.run([ingress(https, ca_file)], [bad], expected_commit=None, **QUICK))
    assert error == f"GET /version: JSON 'commit' is {COMMIT!r}, expected 'x'"


def test_checks_retry_until_healthy_in_parallel(https: App, ca_file: Path, serve: Any) -> None:
    plain = serve()
    https.started = plain.started = time.monotonic()  # both turn healthy 1.5 s from now
    targets = [ingress(https, ca_file), Target.nodeport("127.0.0.1", plain.port)]
    slow = Check("slow", "/slow", expect_body="ready")
    t0 = time.monotonic()
    result = smoke.run(targets, [slow], expected_commit=None, deadline_seconds=5, interval=0.2)
    elapsed = time.monotonic() - t0
    assert result.passed, result.reason()
    assert all(o.attempts > 1 and o.elapsed >= 1.4 for o in result.outcomes), result.outcomes
    assert elapsed < 2.9  # side by side, not one after the other


def test_a_certificate_expiring_soon_warns_but_passes(ca: trustme.CA, ca_file: Path, serve: Any) -> None:
    leaf = ca.issue_cert(HOST, not_after=datetime.now(UTC) + timedelta(days=5, hours=1))
    app: App = serve(tls_for(leaf))
    result = smoke.run([ingress(app, ca_file)], [GREET], expected_commit=COMMIT, deadline_seconds=5)
    assert result.passed, result.reason()
    (warning,) = result.warnings
    assert f"the certificate for {HOST} expires in 5 day(s)" in warning, warning


def test_nodeport_over_plain_http(serve: Any) -> None:
    app: App = serve()
    target = Target.nodeport("127.0.0.1", app.port)
    assert target.url == f"http://127.0.0.1:{app.port}"
    result = smoke.run([target], [GREET], expected_commit=COMMIT[:7], deadline_seconds=5)
    assert result.passed, result.reason()
    assert result.warnings == ()


def test_nothing_listening_is_connection_refused(serve: Any) -> None:
    app: App = serve()
    port = app.port
    app.shutdown()
    app.server_close()
    error = one_failure(
        smoke.run([Target.nodeport("127.0.0.1", port)], [GREET], expected_commit=None, **QUICK)
    )
    assert error == "connection refused"


def test_an_unreadable_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    target = Target.ingress("127.0.0.1", HOST, ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(SmokeError) as info:
        smoke.run([target], [GREET], expected_commit=None, deadline_seconds=1)
    assert isinstance(info.value, PipelineError)
    message = str(info.value)
    assert "\n" not in message and "missing.pem" in message and "No such file" in message, message

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(SmokeError, match=r"garbage\.pem"):
        smoke.run(
            [Target.ingress("127.0.0.1", HOST, ca_bundle=garbage)],
            [],
            expected_commit=None,
            deadline_seconds=1,
        )


def test_commit_matching() -> None:
    assert smoke.commit_matches(COMMIT, COMMIT[:7])
    assert smoke.commit_matches(COMMIT[:7], COMMIT)
    assert smoke.commit_matches(COMMIT.upper(), COMMIT[:10])
    assert not smoke.commit_matches(COMMIT, "1a2b3c")  # too short to mean anything
    assert not smoke.commit_matches("unknown", COMMIT)
    assert not smoke.commit_matches(OLD_COMMIT, COMMIT[:7])
    with pytest.raises(SmokeError, match="too short"):
        smoke.run([], [], expected_commit="1a2b", deadline_seconds=1)


def test_checks_from_config() -> None:
    raw = [
        {"path": "/", "expect_body": GREETING},
        {"name": "health", "path": "/healthz", "expect_json": {"status": "ok"}},
        {"path": "/missing", "expect_status": 404},
    ]
    assert config.checks_from_config(raw) == (
        Check("GET /", "/", expect_body=GREETING),
        Check("health", "/healthz", expect_json={"status": "ok"}),
        Check("GET /missing", "/missing", expect_status=404),
    )
    assert config.checks_from_config([]) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"path": "/", "expect_bdy": "x"}], "smoke #1: expect_bdy. Did you mean expect_body?"),
        ([{"path": "healthz"}], "smoke #1: path must be a URL path starting with /"),
        ([{"expect_status": "200"}], "expect_status must be an HTTP status from 100 to 599, got '200'"),
        ([{"expect_status": 42}], "expect_status must be an HTTP status from 100 to 599, got 42"),
        ([{"expect_body": 3}], "expect_body must be a non-empty line of text, got 3"),
        ([{"expect_json": "ok"}], "expect_json must be a table, got 'ok'"),
        ([{"path": "/"}, {"path": "/"}], "#2: a second check named 'GET /'"),
        ([{"name": "version"}], "the built-in version check's"),
        (["/"], "smoke #1 must be a table, got '/'"),
        ({"path": "/"}, "smoke must be an array, got a table"),
    ],
)
def test_checks_from_config_refuses_mistakes_in_one_line(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.checks_from_config(raw, where="environments.staging.smoke")
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert text.startswith("pipeline.toml: ") and "environments.staging.smoke" in text, text
