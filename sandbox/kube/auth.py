"""Google-style OAuth for the sandbox: a token endpoint, live-token checks, ADC and kubectl's credential.

- ``POST /token`` answers the two grants Google's clients send: the STS token exchange of Workload
  Identity Federation (``urn:ietf:params:oauth:grant-type:token-exchange``: a subject token for an access
  token, what ``google-github-actions/auth`` credentials do in CI) and the OAuth refresh-token grant (with
  client id and secret, form fields or HTTP Basic). Access tokens are opaque and expire after the
  configured lifetime (3600 s as Google's, shorter in tests to exercise refreshing).
- Access tokens are signed (HMAC) rather than remembered, so they stay valid across a daemon restart
  until they expire, like Google's; :meth:`TokenIssuer.check` is what the API servers and the GKE
  stand-in use (401 for anything else).
- ``<home>/kube/application_default_credentials.json`` is what ``GOOGLE_APPLICATION_CREDENTIALS`` points
  at: an ``external_account`` (Workload Identity Federation) file whose ``token_url`` is this endpoint and
  whose subject token is a file beside it. An ``authorized_user`` file cannot be used: ``google-auth``
  always sends those to Google's own token endpoint, whatever their ``token_uri`` says.
- :func:`exec_credential` is kubectl's exec plugin (``python -m sandbox token --home DIR``), which, like
  ``gke-gcloud-auth-plugin``, trades those credentials for an access token and prints a
  ``client.authentication.k8s.io/v1`` ExecCredential with its ``expirationTimestamp``.

Neighbours: ``service.py`` serves :meth:`TokenIssuer.handle_token` beside the GKE stand-in (``gke.py``);
``apiserver/`` calls :meth:`TokenIssuer.check`; ``kubeconfig.py`` names the plugin.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiohttp is imported by the server only: the exec plugin starts faster without it.
    from aiohttp import web

ADC_FILE = "application_default_credentials.json"
SUBJECT_TOKEN_FILE = "federated-subject-token"
STATE_FILE = "oauth.json"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# Without a project number, google-auth does not ask Cloud Resource Manager for the project.
AUDIENCE = "//iam.googleapis.com/locations/global/workloadIdentityPools/sandbox/providers/sandbox"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_PREFIX = "ya29.sandbox."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


class TokenIssuer:
    """Client credentials kept in ``<kube_dir>/oauth.json``; tokens live ``lifetime_seconds``."""

    def __init__(self, kube_dir: Path, lifetime_seconds: int = 3600) -> None:
        self.kube_dir = kube_dir
        self.lifetime_seconds = lifetime_seconds
        state_file = kube_dir / STATE_FILE
        if state_file.exists():
            state = json.loads(state_file.read_text())
        else:
            state = {
                "client_id": f"{secrets.randbelow(10**12):012d}-sandbox.apps.googleusercontent.com",
                "client_secret": "GOCSPX-" + secrets.token_urlsafe(21),
                "refresh_token": "1//sandbox-" + secrets.token_urlsafe(32),
                "subject_token": "sandbox-oidc." + secrets.token_urlsafe(48),
                "signing_key": secrets.token_hex(32),
            }
            _write_private(state_file, json.dumps(state, indent=2))
        self.client_id: str = state["client_id"]
        self.client_secret: str = state["client_secret"]
        self.refresh_token: str = state["refresh_token"]
        self.subject_token: str = state["subject_token"]
        self._key = bytes.fromhex(state["signing_key"])

    @property
    def adc_path(self) -> Path:
        return self.kube_dir / ADC_FILE

    def issue(self, now: float | None = None) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        expiry = math.ceil((now if now is not None else time.time()) + self.lifetime_seconds)
        payload = _b64(f"{expiry}.{secrets.token_hex(8)}".encode())
        mac = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        return f"{TOKEN_PREFIX}{payload}.{mac}", self.lifetime_seconds

    def check(self, token: str, now: float | None = None) -> bool:
        """True for a token this issuer made that has not expired."""
        if not token.startswith(TOKEN_PREFIX):
            return False
        payload, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
        expected = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            return False
        try:
            padded = payload + "=" * (-len(payload) % 4)
            expiry = int(base64.urlsafe_b64decode(padded).decode().split(".", 1)[0])
        except ValueError:
            return False
        return expiry > (now if now is not None else time.time())

    def write_adc(self, token_url: str) -> Path:
        """The Workload Identity Federation credentials file whose STS endpoint is the sandbox's."""
        subject = self.kube_dir / SUBJECT_TOKEN_FILE
        _write_private(subject, self.subject_token)
        adc = {
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": JWT_TOKEN_TYPE,
            "token_url": token_url,
            "credential_source": {"file": str(subject)},
            "universe_domain": "googleapis.com",
        }
        _write_private(self.adc_path, json.dumps(adc, indent=2))
        return self.adc_path

    async def handle_token(self, request: web.Request) -> web.Response:
        """``POST /token``: Google's OAuth 2.0 / STS token endpoint (see the module docstring)."""
        from aiohttp import web

        if request.content_type == "application/json":
            form: dict[str, str] = {str(k): str(v) for k, v in (await request.json()).items()}
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
        grant = form.get("grant_type")
        if grant == TOKEN_EXCHANGE:
            if form.get("subject_token_type") != JWT_TOKEN_TYPE or not hmac.compare_digest(
                form.get("subject_token", ""), self.subject_token
            ):
                return _oauth_error(400, "invalid_grant", "The provided subject token is invalid.")
            token, lifetime = self.issue()
            return web.json_response(
                {
                    "access_token": token,
                    "issued_token_type": ACCESS_TOKEN_TYPE,
                    "token_type": "Bearer",
                    "expires_in": lifetime,
                }
            )
        if grant != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, basic = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and basic:
            client_id, _, client_secret = base64.b64decode(basic).decode().partition(":")
        if not (
            hmac.compare_digest(client_id, self.client_id)
            and hmac.compare_digest(client_secret, self.client_secret)
        ):
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if not hmac.compare_digest(form.get("refresh_token", ""), self.refresh_token):
            return _oauth_error(400, "invalid_grant", "Bad Request")
        token, lifetime = self.issue()
        return web.json_response(
            {
                "access_token": token,
                "expires_in": lifetime,
                "scope": SCOPE,
                "token_type": "Bearer",
            }
        )


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    from aiohttp import web

    return web.json_response({"error": error, "error_description": description}, status=status)


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _kube_dir(home: Any) -> Path:
    kube_dir = getattr(home, "kube_dir", None)
    return Path(kube_dir) if kube_dir is not None else Path(home) / "kube"


def exec_credential(home: Any) -> dict[str, Any]:
    """kubectl's ExecCredential: an access token from the sandbox's token endpoint and its expiry.

    ``home`` is the sandbox home (``sandbox.home.Home`` or its path). Raises ``RuntimeError`` with a
    one-line message when the sandbox is not running or the credentials are missing.
    """
    adc_path = _kube_dir(home) / ADC_FILE
    try:
        adc = json.loads(adc_path.read_text())
        subject_token = Path(adc["credential_source"]["file"]).read_text().strip()
    except (FileNotFoundError, KeyError) as e:
        raise RuntimeError(
            f"no sandbox credentials at {adc_path} ({e}): run `invoke sandbox.up` first"
        ) from None
    body = urllib.parse.urlencode(
        {
            "grant_type": TOKEN_EXCHANGE,
            "audience": adc["audience"],
            "scope": SCOPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "subject_token": subject_token,
            "subject_token_type": adc["subject_token_type"],
        }
    ).encode()
    issued = dt.datetime.now(dt.UTC)
    request = urllib.request.Request(
        adc["token_url"], data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError) as e:
        raise RuntimeError(
            f"getting a sandbox access token from {adc['token_url']}: {e}. "
            "Is the sandbox up (`invoke sandbox.up`)?"
        ) from e
    expiry = issued + dt.timedelta(seconds=int(answer["expires_in"]))
    return {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": False},
        "status": {
            "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "token": answer["access_token"],
        },
    }
