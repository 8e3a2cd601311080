"""One smoke request: GET a path on a target over HTTP(S) with httpx, and say in one line how it failed.

Used by the smoke stage (``pipeline/smoke/__init__.py``), which retries and judges; nothing here retries.
For the Ingress we connect to one address (the Ingress status IP) while presenting another name (the
rule's host) as TLS SNI and as the ``Host`` header, and verify the chain against a chosen CA bundle and
that host name, before any DNS record points there. httpx does this without reaching into a connection
pool's internals: the URL carries the address, the ``sni_hostname`` extension the name, and an
``ssl.SSLContext`` the trust. Keep-alive is off so that each attempt may reach another pod behind the
Service, as a new user's connection would.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from ..errors import SmokeError

# Responses are read up to this size: enough for a page or a JSON document, bounded against a huge body.
_MAX_BODY = 256 * 1024


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


class Failed(Exception):
    """One attempt's failure; its message is the outcome's one-line error."""


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    not_after: float | None  # the verified certificate's expiry (epoch seconds), HTTPS only


class Endpoint:
    """A :class:`Target` resolved once: the URL to connect to, the name to present, the client to use."""

    def __init__(self, target: Target) -> None:
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
        connect = target.connect_ip or parts.hostname
        connect = f"[{connect}]" if ":" in connect else connect
        self.target = target
        self.server_name = name
        self.host_header = bracketed if default_port else f"{bracketed}:{port}"
        self.base = f"{parts.scheme}://{connect}:{port}{parts.path.rstrip('/')}"
        self.tls = parts.scheme == "https"
        # trust_env=False: proxy variables must not send a smoke test anywhere but the target itself.
        self.client = httpx.Client(
            verify=tls_context(target) if self.tls else False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, timeout: float) -> Response:
        """GET ``path`` on a fresh connection; raises :class:`Failed` with one line on any failure."""
        headers = {"Host": self.host_header, "Connection": "close", "User-Agent": "campus-smoke"}
        extensions = {"sni_hostname": self.server_name} if self.tls else {}
        try:
            with self.client.stream(
                "GET", self.base + path, headers=headers, timeout=timeout, extensions=extensions
            ) as response:
                not_after = _not_after(response) if self.tls else None
                body = _read_bounded(response)
                return Response(response.status_code, body.decode("utf-8", errors="replace"), not_after)
        except httpx.HTTPError as e:
            cause = root_cause(e)
            if isinstance(cause, ssl.SSLCertVerificationError):
                trusted = self.target.ca_bundle or "the system's CAs"
                raise Failed(f"{one_line(cause)} (verifying {self.server_name} against {trusted})") from None
            raise Failed(one_line(cause)) from None


def _read_bounded(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _MAX_BODY:
            return body[:_MAX_BODY]
    return body


def _not_after(response: httpx.Response) -> float | None:
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    # httpcore hands over the socket's internal SSL object (not an ssl.SSLObject): ask it by duck type.
    getpeercert = getattr(tls, "getpeercert", None)
    expires = (getpeercert() or {}).get("notAfter") if callable(getpeercert) else None
    return ssl.cert_time_to_seconds(expires) if isinstance(expires, str) else None


def tls_context(target: Target) -> ssl.SSLContext:
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


def root_cause(e: BaseException) -> BaseException:
    """The socket or TLS error under httpx's and httpcore's wrappers (they chain it as the cause)."""
    seen: set[int] = set()
    while id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):  # ssl.SSLError and socket errors are OSErrors
            return e
        nxt = e.__cause__ or e.__context__
        if nxt is None:
            break
        e = nxt
    return e


def one_line(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {(e.verify_message or e.reason or '').rstrip('.')}"
    if isinstance(e, ssl.SSLError):
        return f"TLS handshake failed: {e.reason or e}"
    if isinstance(e, TimeoutError | socket.timeout | httpx.TimeoutException):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return " ".join(str(e).split()) or type(e).__name__
