"""Smoke-test stage: after a rollout, ask the running service over the network whether it is the release.

Issue 4, stage 6. Its inputs are plain addresses that other stages read from the Kubernetes API (a node's
external IP and a Service's nodePort, an Ingress's status IP and its rule's host), so this module imports no
Kubernetes client; only the standard library's ``http.client``, ``socket`` and ``ssl``. ``release.py``
calls :func:`run` once the rollout stage reports success, and hands a failed :class:`SmokeResult` to the
rollback. ``config.py`` builds the per-environment :class:`Check` list with :func:`checks_from_config`.

How a request is made, and why not with ``requests``: for the Ingress we must connect to one IP address
while presenting another name (the rule's host) as TLS SNI and as the ``Host`` header, and verify the
certificate chain against a chosen CA bundle *and* that host name, before any DNS record points there.
``requests`` ties the connect address to the URL's host, so that needs a custom adapter reaching into
urllib3's pool internals. With the standard library it is four plain steps: ``socket.create_connection``
to the IP, ``SSLContext.wrap_socket(server_hostname=host)`` (chain and host name checked by OpenSSL during
the handshake), an ``http.client.HTTPConnection`` riding that socket, and an explicit ``Host`` header.

Outcomes, not exceptions: a check that fails is data in the result (``SmokeResult.passed`` is False and
each failure says why in one line). Only a misconfiguration, such as an unreadable CA bundle, raises
:class:`SmokeError`.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError, SmokeError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# A certificate that expires sooner than this gets a warning (not a failure): the release is fine today,
# but someone should look at renewal before users see an error.
EXPIRY_WARNING_DAYS = 14
# The built-in check that compares GET /version's commit with the release; user checks may not take it.
VERSION_CHECK = "version"
# Responses are read up to this size: enough for a page or a JSON document, bounded against a huge body.
_MAX_BODY = 256 * 1024
# Short shas are 7 hex digits (the image tag's sha-1a2b3c4); fewer would match too many commits.
_MIN_COMMIT = 7


@dataclass(frozen=True)
class Check:
    """One HTTP request and what its answer must be, configured per environment in ``pipeline.toml``.

    ``expect_body`` is a *substring* of the body, not the whole body: it states "this is our service
    answering" (the greeting) without breaking on a trailing newline or surrounding markup; the commit's
    identity is the version check's job. ``expect_json`` is a *subset*: the body must be a JSON object and
    every key given here must have exactly the given value; other keys are ignored.
    """

    name: str
    path: str = "/"
    expect_status: int = 200
    expect_body: str | None = None
    expect_json: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Target:
    """Where to send the checks: a base URL and, for the Ingress, how to reach it before DNS does.

    ``url``: ``http://NODE_IP:NODE_PORT`` for a NodePort, ``https://HOST`` for an Ingress (a path after
    the host is kept as a prefix). ``server_name``: the name sent as TLS SNI and ``Host`` and checked
    against the certificate; default: the URL's host. ``connect_ip``: the address the TCP connection goes
    to; default: the URL's host (resolved as usual). ``ca_bundle``: a PEM file of CA certificates that the
    chain must lead to; default: the system's trust store. TLS is used exactly when the URL is ``https``.
    """

    kind: Literal["nodeport", "ingress"]
    url: str
    server_name: str | None = None
    connect_ip: str | None = None
    ca_bundle: Path | None = None

    @classmethod
    def nodeport(cls, node_ip: str, node_port: int) -> Target:
        """The Service's nodePort on a node's external address, over plain HTTP."""
        host = f"[{node_ip}]" if ":" in node_ip else node_ip
        return cls("nodeport", f"http://{host}:{node_port}")

    @classmethod
    def ingress(cls, ip: str, host: str, *, ca_bundle: Path | None = None, port: int = 443) -> Target:
        """The Ingress rule's ``host`` over HTTPS, connecting to the Ingress status ``ip``."""
        netloc = host if port == 443 else f"{host}:{port}"
        return cls("ingress", f"https://{netloc}", server_name=host, connect_ip=ip, ca_bundle=ca_bundle)

    @property
    def label(self) -> str:
        via = f" via {self.connect_ip}" if self.connect_ip else ""
        return f"{self.kind} {self.url.rstrip('/')}{via}"


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


def checks_from_config(raw: Sequence[Mapping[str, Any]], where: str = "smoke") -> tuple[Check, ...]:
    """Checks from ``[[environments.NAME.smoke]]`` tables; any mistake is one :class:`ConfigError` line.

    ``where`` names the array in messages (e.g. ``environments.staging.smoke``). A check without a
    ``name`` is called ``GET <path>``; names must be distinct, and ``version`` is the built-in check's.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ConfigError(f"pipeline.toml: {where} must be an array of tables", "Write [[{where}]] entries")
    keys = {"name", "path", "expect_status", "expect_body", "expect_json"}
    checks: list[Check] = []
    for i, entry in enumerate(raw, 1):
        at = f"pipeline.toml: {where} #{i}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{at} must be a table", "Write it as [[{where}]] with keys under it")
        unknown = sorted(set(entry) - keys)
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r}", f"Use only: {', '.join(sorted(keys))}")
        path = entry.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
            raise ConfigError(f"{at}: path {path!r} must start with / and hold no spaces", "e.g. path = '/'")
        status = entry.get("expect_status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError(f"{at}: expect_status {status!r} is not an HTTP status", "e.g. 200")
        body = entry.get("expect_body")
        if body is not None and (not isinstance(body, str) or not body):
            raise ConfigError(f"{at}: expect_body must be a non-empty string", "It is matched as a substring")
        expect_json = entry.get("expect_json")
        if expect_json is not None and not isinstance(expect_json, Mapping):
            raise ConfigError(f"{at}: expect_json must be a table", 'e.g. expect_json = { status = "ok" }')
        name = entry.get("name", f"GET {path}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{at}: name must be a non-empty string", "Name the check")
        if name == VERSION_CHECK:
            raise ConfigError(f"{at}: the name {name!r} is the built-in version check's", "Choose another")
        if any(c.name == name for c in checks):
            raise ConfigError(f"{at}: a second check named {name!r}", "Give each check a distinct name")
        checks.append(
            Check(
                name=name,
                path=path,
                expect_status=status,
                expect_body=body,
                expect_json=dict(expect_json) if expect_json is not None else None,
            )
        )
    return tuple(checks)


def commit_matches(served: str, expected: str) -> bool:
    """Whether a served commit is the expected one, either side possibly a short sha (7+ hex digits)."""
    served, expected = served.strip().lower(), expected.strip().lower()
    if min(len(served), len(expected)) < _MIN_COMMIT:
        return False
    return served.startswith(expected) or expected.startswith(served)


# --- one request ------------------------------------------------------------------------------------------


class _Failed(Exception):
    """One attempt's failure; its message is the outcome's one-line error."""


@dataclass(frozen=True)
class _Endpoint:
    """A :class:`Target` resolved once: where to connect, what name to present, how to verify."""

    target: Target
    tls: ssl.SSLContext | None
    connect_host: str
    port: int
    server_name: str
    host_header: str
    prefix: str


@dataclass(frozen=True)
class _Response:
    status: int
    body: str
    not_after: float | None  # the verified certificate's expiry (epoch seconds), HTTPS only


def _endpoint(target: Target) -> _Endpoint:
    parts = urlsplit(target.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmokeError(
            f"smoke target {target.url!r} is not an http(s) URL", "Use http://IP:PORT or https://HOST"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SmokeError(f"smoke target {target.url!r} has a bad port", "Use http://IP:PORT") from None
    name = target.server_name or parts.hostname
    default_port = port == (443 if parts.scheme == "https" else 80)
    bracketed = f"[{name}]" if ":" in name else name
    tls = _tls_context(target) if parts.scheme == "https" else None
    return _Endpoint(
        target=target,
        tls=tls,
        connect_host=target.connect_ip or parts.hostname,
        port=port,
        server_name=name,
        host_header=bracketed if default_port else f"{bracketed}:{port}",
        prefix=parts.path.rstrip("/"),
    )


def _tls_context(target: Target) -> ssl.SSLContext:
    """Chain verification against the target's CA bundle (or the system's), plus host-name checking."""
    bundle = target.ca_bundle
    try:
        if bundle is not None and bundle.is_dir():  # a hashed directory, like /etc/ssl/certs
            context = ssl.create_default_context(capath=str(bundle))
        else:
            context = ssl.create_default_context(cafile=None if bundle is None else str(bundle))
    except ssl.SSLError as e:
        raise SmokeError(
            f"reading the CA bundle {bundle} for {target.label}: no usable CA certificate in it ({e.reason})",
            "Point it at a PEM file of CA certificates",
        ) from None
    except OSError as e:
        raise SmokeError(
            f"reading the CA bundle {bundle} for {target.label}: {e.strerror or e}",
            "Point it at a readable PEM file of CA certificates",
        ) from None
    # CERT_REQUIRED and check_hostname are a default context's defaults; stated here for the reader.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


def _one_line(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {(e.verify_message or e.reason or '').rstrip('.')}"
    if isinstance(e, ssl.SSLError):
        return f"TLS handshake failed: {e.reason or e}"
    if isinstance(e, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return " ".join(str(e).split()) or type(e).__name__


def _get(endpoint: _Endpoint, path: str, timeout: float) -> _Response:
    """GET ``path`` on a fresh connection (so each attempt may reach another pod behind the Service)."""
    sock: socket.socket | None = None
    conn: http.client.HTTPConnection | None = None
    try:
        sock = socket.create_connection((endpoint.connect_host, endpoint.port), timeout=timeout)
        not_after = None
        if endpoint.tls is not None:
            # The handshake checks the chain against the CA bundle and the certificate against server_name.
            tls = endpoint.tls.wrap_socket(sock, server_hostname=endpoint.server_name)
            sock = tls
            expires = (tls.getpeercert() or {}).get("notAfter")
            if isinstance(expires, str):
                not_after = ssl.cert_time_to_seconds(expires)
        conn = http.client.HTTPConnection(endpoint.connect_host, endpoint.port, timeout=timeout)
        conn.sock = sock
        conn.request(
            "GET",
            endpoint.prefix + path,
            headers={"Host": endpoint.host_header, "Connection": "close", "User-Agent": "campus-smoke"},
        )
        response = conn.getresponse()
        body = response.read(_MAX_BODY).decode("utf-8", errors="replace")
        return _Response(response.status, body, not_after)
    except ssl.SSLCertVerificationError as e:
        trusted = endpoint.target.ca_bundle or "the system's CAs"
        raise _Failed(f"{_one_line(e)} (verifying {endpoint.server_name} against {trusted})") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Failed(_one_line(e)) from None
    finally:
        if conn is not None:
            conn.close()
        if sock is not None:
            sock.close()


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _judge(check: Check, response: _Response) -> None:
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


def _served_commit(response: _Response) -> str:
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

    def request(self, endpoint: _Endpoint, path: str) -> _Response:
        timeout = max(0.2, min(self.request_timeout, self.remaining()))
        response = _get(endpoint, path, timeout)
        if response.not_after is not None:
            with self.lock:
                self.expiries.setdefault(endpoint.target.label, (endpoint.server_name, response.not_after))
        return response

    def until_passes(self, endpoint: _Endpoint, name: str, attempt: Callable[[], None]) -> Outcome:
        """Run ``attempt`` until it raises nothing or the deadline passes (always at least once)."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                attempt()
            except _Failed as e:
                error = str(e)
                log.debug("%s: %s: attempt %d: %s", endpoint.target.label, name, attempts, error)
                if self.remaining() <= 0:
                    break
                time.sleep(max(0.0, min(self.interval, self.remaining())))
                if self.remaining() <= 0:
                    break
                continue
            outcome = Outcome(endpoint.target.label, name, True, attempts, time.monotonic() - started)
            self.progress(f"ok {outcome.target}: {name} ({attempts} attempt(s), {outcome.elapsed:.1f} s)")
            return outcome
        outcome = Outcome(endpoint.target.label, name, False, attempts, time.monotonic() - started, error)
        self.progress(f"FAILED {outcome.target}: {name}: {error}")
        return outcome

    def check(self, endpoint: _Endpoint, check: Check) -> Outcome:
        return self.until_passes(
            endpoint, check.name, lambda: _judge(check, self.request(endpoint, check.path))
        )

    def version(self, endpoint: _Endpoint, expected: str) -> Outcome:
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
    progress: Progress = lambda _: None,
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
    endpoints = [_endpoint(t) for t in targets]  # before any request: a bad CA path fails at once
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
    if not jobs:
        return SmokeResult(())
    with ThreadPoolExecutor(max_workers=min(32, len(jobs)), thread_name_prefix="smoke") as pool:
        outcomes = tuple(pool.map(lambda job: job(), jobs))
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
