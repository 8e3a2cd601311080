"""A bounded load generator on loopback: Debian's ``wrk`` at a fixed rate, for the length of an operation.

``with Load([...targets]) as load: <release>`` starts one ``wrk`` per target (one thread, two
connections, each pausing between requests so that together they send ``rate`` requests a second; wrk's
own Lua ``delay()`` hook), and stops them with SIGINT when the block ends; ``load.results`` then holds,
per target, the requests sent, the failures (non-2xx/3xx answers, connect/read/write errors, timeouts)
and the latency percentiles wrk measured. Targets must be loopback addresses: this never loads anything
but the sandbox. ``wrk`` is capped by ``-d`` as well, so a forgotten one ends by itself.

An HTTPS target keeps its host name for SNI and ``Host`` while connecting to a node address (the script
replaces ``wrk.resolve``), as a browser would reach the Ingress through DNS. The NodePort target sends
``Connection: close``: a NodePort is a TCP relay, so a kept-alive connection is pinned to one pod and ends
with it, which wrk would count as an error although any HTTP client simply reconnects.

Neighbours: the fault and load tests (``tests/faults/``) and ``scripts/reliability-report`` read the
results.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import SandboxError

MARK = "LOAD-RESULT "

SCRIPT = """\
local rate = tonumber(os.getenv("LOAD_RATE"))
local connections = tonumber(os.getenv("LOAD_CONNECTIONS"))
local connect_ip = os.getenv("LOAD_CONNECT_IP")
local close = os.getenv("LOAD_CLOSE") == "1"

-- Connect to the node address whatever the URL's host (kept for SNI and Host).
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(connect_ip, service)
end

if close then wrk.headers["Connection"] = "close" end

-- Each connection waits this long after an answer: together they send about `rate` requests a second.
function delay()
  return math.floor(1000 * connections / rate)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    "LOAD-RESULT ", summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Target:
    name: str  # "nodeport", "ingress"
    url: str
    connect_ip: str
    close_connections: bool = False


@dataclass(frozen=True)
class LoadResult:
    target: str
    requests: int
    failures: int
    errors: dict[str, int]
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_loopback(target: Target) -> None:
    if not ipaddress.ip_address(target.connect_ip).is_loopback:
        raise SandboxError(f"load target {target.name}: {target.connect_ip} is not a loopback address")


def parse(name: str, output: str) -> LoadResult:
    line = next((x for x in output.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise SandboxError(f"wrk ({name}) printed no result: {output.strip()[-300:]}")
    data = json.loads(line[len(MARK) :])
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return LoadResult(
        target=name,
        requests=int(data["requests"]),
        failures=sum(errors.values()),
        errors=errors,
        seconds=round(data["duration_us"] / 1e6, 2),
        p50_ms=round(data["p50_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        max_ms=round(data["max_us"] / 1000, 2),
    )


class Load:
    """Fixed-rate load on ``targets`` while the ``with`` block runs (at most ``max_seconds``)."""

    def __init__(
        self, targets: list[Target], *, rate: int = 20, connections: int = 2, max_seconds: int = 300
    ) -> None:
        if shutil.which("wrk") is None:
            raise SandboxError("wrk is missing: install Debian's wrk (scripts/test does)")
        for target in targets:
            _check_loopback(target)
        self.targets = targets
        self.rate = rate
        self.connections = connections
        self.max_seconds = max_seconds
        self.results: dict[str, LoadResult] = {}
        self._procs: list[tuple[Target, subprocess.Popen[str]]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="sandbox-load-"))

    def __enter__(self) -> Load:
        script = self._dir / "paced.lua"
        script.write_text(SCRIPT)
        for target in self.targets:
            env = {
                "LOAD_RATE": str(self.rate),
                "LOAD_CONNECTIONS": str(self.connections),
                "LOAD_CONNECT_IP": target.connect_ip,
                "LOAD_CLOSE": "1" if target.close_connections else "0",
                "PATH": "/usr/bin:/bin",
            }
            command = [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{self.max_seconds}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                target.url,
            ]
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            self._procs.append((target, proc))
        # wrk connects within milliseconds; the operation should not start before the load does.
        time.sleep(0.3)
        for target, proc in self._procs:
            if proc.poll() is not None:
                output = proc.communicate()[0]
                self._stop()
                raise SandboxError(f"wrk ({target.name}) exited at start: {output.strip()[-300:]}")
        return self

    def _stop(self) -> None:
        for _, proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # wrk stops and reports what it measured so far
        for target, proc in self._procs:
            try:
                output, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            if target.name not in self.results and output:
                # No result is itself a finding: the caller asserts every target reported.
                with contextlib.suppress(SandboxError):
                    self.results[target.name] = parse(target.name, output)
        self._procs = []
        shutil.rmtree(self._dir, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.results.values())
