"""The load generator (sandbox/load.py): Debian's wrk at a fixed rate against a real HTTP server."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.errors import SandboxError
from sandbox.load import Load, Target

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs Debian's wrk")


@pytest.fixture
def server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status = 500 if self.path.startswith("/fail") else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            if self.headers.get("Connection", "").lower() == "close":
                self.send_header("Connection", "close")  # as Go's server (the backend) answers it
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_paced_load_counts_requests_and_failures(server: int) -> None:
    targets = [
        # A host name that resolves nowhere: wrk connects to connect_ip and keeps the name for Host.
        Target("ok", f"http://campus.invalid:{server}/", "127.0.0.1", close_connections=True),
        Target("failing", f"http://127.0.0.1:{server}/fail", "127.0.0.1"),
    ]
    started = time.monotonic()
    with Load(targets, rate=20) as load:
        time.sleep(2)
    seconds = time.monotonic() - started
    ok, failing = load.results["ok"], load.results["failing"]
    assert 20 * seconds * 0.5 <= ok.requests <= 20 * seconds * 1.3, ok
    assert ok.failures == 0 and ok.p99_ms > 0
    assert failing.failures == failing.requests > 0 and failing.errors["status"] == failing.requests


def test_only_loopback_is_loaded() -> None:
    with pytest.raises(SandboxError, match="not a loopback address"):
        Load([Target("out", "http://example.org/", "93.184.216.34")])
