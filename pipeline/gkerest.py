"""GKE access for a quick read, without Google's client libraries: two or three plain HTTPS requests.

Importing ``google-auth`` and ``google-cloud-container`` costs most of a second per process, more than
the no-op check itself. For the credential types a pipeline meets (Workload Identity Federation's
``external_account`` files that ``google-github-actions/auth`` writes, with a file- or URL-sourced
subject token and optional service account impersonation, and ``gcloud auth application-default
login``'s ``authorized_user``), getting a token is one or two form posts, and the cluster's endpoint and
CA one GET of the Container API's REST resource. :func:`access` does that and returns a
:class:`~pipeline.access.ClusterAccess` whose :class:`RestToken` fetches a new token before the old one
expires, or None for anything else (a service account key, a kubeconfig context, an error of any kind):
:func:`environment_access` then asks ``gke``, whose retries and messages say what is wrong. The no-op
check, the pre-flight, ``plan`` and ``drift`` reach their cluster through it.

Tokens never enter a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .access import ADC_HINT, Access, ClusterAccess
from .config import Environment, Settings
from .errors import GoogleAuthError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
TIMEOUT_SECONDS = 10.0
_CONTAINER_API = "https://container.googleapis.com"


class _Unsupported(Exception):
    """Not a case this module handles: the caller takes the google-auth path."""


# Whatever goes wrong, the answer is "cannot say here".
_FAILURES = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    binascii.Error,
    http.client.HTTPException,
    _Unsupported,
)


def _call(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None) -> Any:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT_SECONDS)
    else:
        raise _Unsupported(parts.scheme)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise _Unsupported(f"HTTP {response.status}")
    return json.loads(data) if data.strip() else {}


def _form(url: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    body = urllib.parse.urlencode(fields).encode()
    return _call(
        "POST", url, body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )  # fmt: skip


def _subject_token(source: dict[str, Any]) -> str:
    fmt = source.get("format") or {}
    if "file" in source:
        text = Path(source["file"]).read_text()
    elif "url" in source:
        text = json.dumps(_call("GET", source["url"], headers=source.get("headers") or {}))
        if fmt.get("type") != "json":
            raise _Unsupported("a URL subject token that is not JSON")
    else:
        raise _Unsupported("credential source")
    if fmt.get("type") == "json":
        return str(json.loads(text)[fmt.get("subject_token_field_name", "")])
    return text.strip()


def _external_account(info: dict[str, Any]) -> tuple[str, float]:
    headers = {}
    if info.get("client_id") and info.get("client_secret"):
        pair = f"{info['client_id']}:{info['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    answer = _form(
        info["token_url"],
        {
            "grant_type": TOKEN_EXCHANGE,
            "audience": info["audience"],
            "scope": SCOPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "subject_token_type": info["subject_token_type"],
            "subject_token": _subject_token(info.get("credential_source") or {}),
        },
        headers,
    )
    token, lifetime = str(answer["access_token"]), float(answer.get("expires_in") or 3600)
    impersonate = info.get("service_account_impersonation_url")
    if impersonate:
        body = json.dumps({"scope": [SCOPE], "lifetime": "3600s"}).encode()
        answer = _call(
            "POST", impersonate, body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        # An RFC 3339 expireTime; an hour as asked, less the margin below, is near enough.
        token, lifetime = str(answer["accessToken"]), 3600.0
    return token, lifetime


def _authorized_user(info: dict[str, Any]) -> tuple[str, float]:
    answer = _form(
        info.get("token_uri") or "https://oauth2.googleapis.com/token",
        {
            "grant_type": "refresh_token",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "refresh_token": info["refresh_token"],
        },
    )
    return str(answer["access_token"]), float(answer.get("expires_in") or 3600)


def _credentials_file() -> Path:
    named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        return Path(named)
    config = Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    return config / "application_default_credentials.json"


def _token() -> tuple[str, float]:
    """An access token and its lifetime in seconds."""
    info = json.loads(_credentials_file().read_text())
    kind = info.get("type")
    if kind == "external_account":
        return _external_account(info)
    if kind == "authorized_user":
        return _authorized_user(info)
    raise _Unsupported(str(kind))


class RestToken:
    """Access tokens from the credentials file, fetched again shortly before they expire; thread-safe.

    A :class:`~pipeline.access.TokenSource`, as ``gke.GoogleToken`` is, so a long rollout outlives one
    token. A refresh that fails raises :class:`~pipeline.errors.GoogleAuthError`.
    """

    def __init__(self, token: str, lifetime: float, describe: str) -> None:
        self._describe = describe
        self._lock = threading.Lock()
        self._set(token, lifetime)

    def __repr__(self) -> str:
        return f"RestToken({self._describe})"

    def _set(self, token: str, lifetime: float) -> None:
        self._token = token
        # Refresh at three quarters of the lifetime, at most five minutes early (gke.REFRESH_MARGIN).
        self._refresh_at = time.monotonic() + lifetime - min(300.0, lifetime / 4)

    def token(self) -> str:
        with self._lock:
            if time.monotonic() >= self._refresh_at:
                try:
                    self._set(*_token())
                except _FAILURES as e:
                    raise GoogleAuthError(
                        f"refreshing the Google access token for {self._describe}: {type(e).__name__}",
                        ADC_HINT,
                    ) from None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._refresh_at = 0.0


def environment_access(settings: Settings, env: Environment) -> Access:
    """``gke.environment_access``, looked up over plain HTTPS when :func:`access` can."""
    from . import gke

    return access(settings, env) or gke.environment_access(settings, env)


def access(settings: Settings, env: Environment) -> ClusterAccess | None:
    """How to reach ``env``'s cluster, looked up with plain HTTPS; None when this cannot say."""
    if env.kube_context or not (env.gke_project and env.gke_location and env.gke_cluster):
        return None
    describe = f"GKE cluster {env.gke_project}/{env.gke_location}/{env.gke_cluster}"
    try:
        token, lifetime = _token()
        base = (settings.release.gke_endpoint or _CONTAINER_API).rstrip("/")
        name = f"projects/{env.gke_project}/locations/{env.gke_location}/clusters/{env.gke_cluster}"
        cluster = _call("GET", f"{base}/v1/{name}", headers={"Authorization": f"Bearer {token}"})
        endpoint = cluster.get("endpoint")
        if not endpoint or cluster.get("status") in ("PROVISIONING", "STOPPING"):
            return None
        pem = base64.b64decode(cluster["masterAuth"]["clusterCaCertificate"], validate=True).decode("ascii")
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        binascii.Error,
        http.client.HTTPException,
        _Unsupported,
    ):
        return None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return None
    return ClusterAccess(describe, f"https://{endpoint}", pem, RestToken(token, lifetime, describe))
