"""Authenticate to GKE (stage 3): cluster endpoint and CA from the Container API, tokens from google-auth.

This is the pipeline's only border with ``google.cloud`` and ``google.auth``. :func:`cluster_access` asks the
Container API (``google-cloud-container``, REST transport) for one cluster's endpoint and CA, authenticated
with Application Default Credentials (``google.auth.default``): ``gcloud auth application-default login``
on a laptop, the credentials file that ``google-github-actions/auth`` writes for Workload Identity
Federation in GitHub Actions, the sandbox's ``authorized_user`` file in tests. No gcloud, no kubectl, no
long-lived key. The same credentials then authenticate to the cluster's API server as bearer tokens, which
:class:`GoogleToken` refreshes before they expire, so a rollout that outlives one token still completes.

Neighbours: it returns an ``access.ClusterAccess`` (re-exported here with ``StaticToken`` and
``TokenSource``), which ``kube`` turns into a Kubernetes API client (calling the token source before every
request) without importing this module; ``apply`` and ``rollout`` use that client; ``release`` chooses
between a GKE cluster and a kubeconfig context from the environment's settings. Its exceptions live in
``errors`` (re-exported here). Google's libraries are imported lazily, so importing this module costs
nothing.

Tokens and credentials never enter a message or a log line: errors name the project, location and
cluster, and what to check.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import os
import threading
from typing import TYPE_CHECKING, cast

from .access import ADC_HINT, Access, ClusterAccess, KubeContext, StaticToken, TokenSource
from .base import first_line
from .config import Environment, Settings
from .errors import ClusterNotFound, GkeError, GkeUnreachable, GoogleAuthError
from .retries import retrying

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import Request
    from google.cloud.container_v1 import Cluster, ClusterManagerClient

__all__ = [
    "ADC_HINT",
    "LOOKUP_TIMEOUT_SECONDS",
    "REFRESH_MARGIN",
    "SCOPES",
    "ClusterAccess",
    "ClusterNotFound",
    "GkeError",
    "GkeUnreachable",
    "GoogleAuthError",
    "GoogleToken",
    "StaticToken",
    "TokenSource",
    "cluster_access",
    "token_source",
]

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# Refresh a token this long before it expires (at most a quarter of its lifetime, so that the sandbox's
# few-second tokens are not refreshed on every request). Five minutes outlasts any single request or
# watch reconnect we make with an hour-long Google token.
REFRESH_MARGIN = datetime.timedelta(minutes=5)
# How long the Container API lookup may take, retries included, before it counts as unreachable.
LOOKUP_TIMEOUT_SECONDS = 30.0


def _utcnow() -> datetime.datetime:
    # google-auth keeps `expiry` as a naive UTC datetime.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class GoogleToken:
    """Google access tokens from ``credentials``, refreshed shortly before they expire; thread-safe.

    The Kubernetes client calls :meth:`token` before every request, from whichever thread makes it (the
    rollout watches run in threads), so refreshing happens under a lock and only once per expiry.
    """

    def __init__(
        self, credentials: Credentials, describe: str, margin: datetime.timedelta = REFRESH_MARGIN
    ) -> None:
        self._credentials = credentials
        self._describe = describe
        self._margin = margin
        self._lifetime: datetime.timedelta | None = None
        self._forced = False
        self._lock = threading.Lock()
        self._request: Request | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"GoogleToken({self._describe})"

    def _stale(self) -> bool:
        creds = self._credentials
        if self._forced or not creds.token:
            return True
        expiry: datetime.datetime | None = creds.expiry
        if expiry is None:  # a token without a stated lifetime (rare): trust it until a 401 says otherwise
            return False
        now = _utcnow()
        if self._lifetime is None:
            # A token someone else fetched (the Container API lookup): judge it by what is left of it.
            self._lifetime = expiry - now
        return now >= expiry - min(self._margin, self._lifetime / 4)

    def _refresh(self) -> None:
        from google.auth import exceptions as auth_exceptions
        from google.auth.transport.requests import Request

        if self._request is None:
            self._request = Request()
        request = self._request
        doing = f"refreshing the Google access token for {self._describe}"

        def refresh() -> None:
            try:
                # google-auth leaves `refresh` unannotated.
                self._credentials.refresh(request)  # type: ignore[no-untyped-call]
            except auth_exceptions.TransportError as e:
                raise GkeUnreachable(
                    f"{doing}: the token endpoint did not answer", "Check the network and try again"
                ) from e
            except auth_exceptions.GoogleAuthError as e:  # refused, revoked, malformed, an OAuth error
                if _token_endpoint_trouble(e):
                    raise GkeUnreachable(
                        f"{doing}: Google's token endpoint kept failing ({_oauth_detail(e)})",
                        "Try again in a minute",
                    ) from e
                raise GoogleAuthError(
                    f"{doing}: the credentials from {_adc_file()} were refused ({_reason(e)})", ADC_HINT
                ) from e

        retrying(doing)(refresh)
        self._forced = False
        self.refreshes += 1
        expiry: datetime.datetime | None = self._credentials.expiry
        self._lifetime = expiry - _utcnow() if expiry is not None else None
        log.debug("refreshed the Google access token for %s (expires %s)", self._describe, expiry)

    def token(self) -> str:
        with self._lock:
            if self._stale():
                self._refresh()
            # Set by the refresh above, or by whoever refreshed these credentials before us.
            return cast(str, self._credentials.token)

    def invalidate(self) -> None:
        with self._lock:
            self._forced = True

    def expires(self) -> float | None:
        """When the current token expires (seconds since the epoch), None when it states no lifetime."""
        self.token()
        expiry: datetime.datetime | None = self._credentials.expiry
        return expiry.replace(tzinfo=datetime.UTC).timestamp() if expiry is not None else None


def token_source(describe: str) -> GoogleToken:
    """Tokens from Application Default Credentials for ``describe`` (when its endpoint is already known)."""
    return GoogleToken(_default_credentials(describe), describe)


def _decode_ca(encoded: str, describe: str) -> str:
    try:
        pem = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pem = ""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise GkeError(
            f"reading {describe}: masterAuth.clusterCaCertificate is not a base64 PEM certificate",
            "Check the Container API endpoint (PIPELINE_GKE_ENDPOINT) answers for GKE",
        )
    return pem


# Cluster states in which the API server is not there to talk to.
_NOT_SERVING = {"PROVISIONING", "STOPPING"}


def environment_access(settings: Settings, env: Environment) -> Access:
    """How ``env``'s cluster is reached: its kubeconfig context when it names one, else GKE's lookup."""
    if env.kube_context:
        return KubeContext(env.kube_context, os.environ.get("KUBECONFIG"))
    return cluster_access(
        env.gke_project, env.gke_location, env.gke_cluster, api_endpoint=settings.release.gke_endpoint or None
    )


def cluster_access(
    project: str,
    location: str,
    cluster: str,
    *,
    api_endpoint: str | None = None,
    credentials: Credentials | None = None,
    margin: datetime.timedelta = REFRESH_MARGIN,
) -> ClusterAccess:
    """Look ``cluster`` up in the Container API and return how to reach its API server.

    ``api_endpoint`` overrides Google's (``container.googleapis.com``), e.g. the sandbox's
    ``PIPELINE_GKE_ENDPOINT`` (``http://host:port`` or ``https://host:port``). ``credentials`` defaults to
    Application Default Credentials; passing some is for callers that already hold them.
    """
    describe = f"GKE cluster {project}/{location}/{cluster}"
    if not (project and location and cluster):
        raise GkeError(
            f"looking up {describe}: project, location and cluster must all be set",
            "Set gke_project, gke_location and gke_cluster for the environment in pipeline.toml",
        )
    if credentials is None:
        credentials = _default_credentials(describe)
    tokens = GoogleToken(credentials, describe, margin)
    name = f"projects/{project}/locations/{location}/clusters/{cluster}"
    # The Container API's own retry covers its 5xx; this one also covers the token endpoint's trouble.
    found = retrying(f"looking up {describe}")(_get_cluster, credentials, name, describe, api_endpoint)
    return _access_to(found, describe, tokens)


def _oauth_body(e: Exception) -> object:
    """The JSON body google-auth kept of a token endpoint's error answer (None when there is none)."""
    import json

    for arg in e.args[1:]:
        if isinstance(arg, str | bytes):
            try:
                return json.loads(arg)
            except ValueError:
                continue
    return None


def _token_endpoint_trouble(e: Exception) -> bool:
    """Whether a token endpoint's refusal is its own trouble (5xx, 429), not a refusal of our credentials.

    Google's STS answers errors in the Google API format (``{"error": {"code": 503, ...}}``), OAuth's
    refresh grant in OAuth's (``{"error": "temporarily_unavailable"}``); google-auth keeps the body only.
    """
    if getattr(e, "retryable", False):
        return True
    body = _oauth_body(e)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return isinstance(code, int) and (code >= 500 or code == 429)
    return error in ("temporarily_unavailable", "server_error", "internal_failure")


def _oauth_detail(e: Exception) -> str:
    body = _oauth_body(e)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')} {error.get('status', '')}".strip()
    return str(error or type(e).__name__)


def _adc_file() -> str:
    """Where Application Default Credentials come from, for messages (google-auth's own search order)."""
    explicit = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return f"{explicit} (GOOGLE_APPLICATION_CREDENTIALS)"
    return "~/.config/gcloud/application_default_credentials.json"


def _reason(e: BaseException) -> str:
    """google-auth's own first line (an OAuth error code, a missing field): never a token."""
    text = str(e.args[0]) if e.args else type(e).__name__
    return first_line(text, 160).rstrip(".")


def _default_credentials(describe: str) -> Credentials:
    import google.auth
    from google.auth import exceptions as auth_exceptions

    try:
        credentials, _project = google.auth.default(scopes=list(SCOPES))
    except auth_exceptions.DefaultCredentialsError as e:
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            raise GoogleAuthError(
                f"authenticating to {describe}: the credentials file {_adc_file()} cannot be used "
                f"({_reason(e)})",
                "Point GOOGLE_APPLICATION_CREDENTIALS at a valid credentials file, or unset it",
            ) from e
        raise GoogleAuthError(
            f"authenticating to {describe}: no Application Default Credentials found "
            f"(GOOGLE_APPLICATION_CREDENTIALS is unset, and no {_adc_file()})",
            ADC_HINT,
        ) from e
    return credentials


def _container_client(
    credentials: Credentials, describe: str, api_endpoint: str | None
) -> ClusterManagerClient:
    from google.api_core import exceptions as api_exceptions
    from google.cloud import container_v1

    options: dict[str, str] = {"api_endpoint": api_endpoint} if api_endpoint else {}
    try:
        return container_v1.ClusterManagerClient(
            credentials=credentials, transport="rest", client_options=options
        )
    except (ValueError, api_exceptions.GoogleAPIError) as e:
        raise GkeError(
            f"setting up the Container API client for {describe}: {e}", "Check the endpoint"
        ) from e


def _get_cluster(credentials: Credentials, name: str, describe: str, api_endpoint: str | None) -> Cluster:
    """The Container API's record of the cluster ``name``; failures as :class:`GkeError`."""
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.auth import exceptions as auth_exceptions

    client = _container_client(credentials, describe, api_endpoint)
    # Only transient answers are retried; a 404 or 401 is final at once.
    retry = api_retry.Retry(
        predicate=api_retry.if_exception_type(
            api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded,
            api_exceptions.InternalServerError,
        ),
        initial=0.5,
        maximum=4.0,
        timeout=LOOKUP_TIMEOUT_SECONDS,
    )
    where = api_endpoint or "container.googleapis.com"
    try:
        return client.get_cluster(name=name, retry=retry, timeout=LOOKUP_TIMEOUT_SECONDS)
    except (
        api_exceptions.GoogleAPIError,
        auth_exceptions.GoogleAuthError,  # refused or malformed credentials, OAuth errors, timeouts
        OSError,  # requests' ConnectionError and friends: nothing listens there
    ) as e:
        raise _lookup_error(e, describe, where) from e
    finally:
        _close(client)


def _lookup_error(e: Exception, describe: str, where: str) -> GkeError:
    """The one line for a failed cluster lookup (checked from the most specific failure down)."""
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    if isinstance(e, api_exceptions.NotFound):
        return ClusterNotFound(
            f"looking up {describe}: no such cluster at {where}",
            "Check gke_project, gke_location (zone or region) and gke_cluster in pipeline.toml, "
            "and that the credentials' project can see it",
        )
    refused_or_troubled = auth_exceptions.GoogleAuthError
    if (
        isinstance(e, refused_or_troubled)
        and not isinstance(e, auth_exceptions.TransportError)
        and _token_endpoint_trouble(e)
    ):
        return GkeUnreachable(
            f"looking up {describe}: Google's token endpoint kept failing ({_oauth_detail(e)})",
            "Try again in a minute",
        )
    if isinstance(
        e, api_exceptions.Unauthenticated | auth_exceptions.RefreshError | auth_exceptions.OAuthError
    ):
        return GoogleAuthError(
            f"looking up {describe}: the credentials from {_adc_file()} were refused ({_reason(e)})", ADC_HINT
        )
    if isinstance(e, api_exceptions.PermissionDenied):
        return GoogleAuthError(
            f"looking up {describe}: permission denied (container.clusters.get)",
            "Grant the identity roles/container.developer on the project, "
            "or check Workload Identity Federation's service account",
        )
    if isinstance(e, auth_exceptions.TransportError):
        return GkeUnreachable(
            f"looking up {describe}: Google's token endpoint did not answer (credentials from {_adc_file()})",
            "Check the network and try again",
        )
    transient = api_exceptions.RetryError | api_exceptions.ServerError | api_exceptions.DeadlineExceeded
    if isinstance(e, transient):
        return GkeUnreachable(
            f"looking up {describe}: the Container API at {where} did not answer in time",
            "Try again; check PIPELINE_GKE_ENDPOINT if it is set",
        )
    if isinstance(e, api_exceptions.GoogleAPICallError):
        return GkeError(f"looking up {describe}: {e.message}", "Check the cluster settings")
    if isinstance(e, auth_exceptions.GoogleAuthError | api_exceptions.GoogleAPIError):
        return GoogleAuthError(
            f"looking up {describe}: the credentials from {_adc_file()} cannot be used ({_reason(e)})",
            ADC_HINT,
        )
    return GkeUnreachable(
        f"looking up {describe}: cannot connect to the Container API at {where} ({type(e).__name__})",
        "Check the network, or PIPELINE_GKE_ENDPOINT if it is set",
    )


def _access_to(found: Cluster, describe: str, tokens: GoogleToken) -> ClusterAccess:
    """How to reach the API server of a cluster the Container API described, if it is serving."""
    from google.cloud import container_v1

    status = container_v1.Cluster.Status(found.status).name if found.status else "STATUS_UNSPECIFIED"
    if status in _NOT_SERVING:
        raise GkeUnreachable(f"{describe} is {status.lower()}", "Wait until it is RUNNING and try again")
    if not found.endpoint:
        raise GkeError(f"{describe} has no endpoint (status {status})", "Check the cluster in the console")
    ca_pem = _decode_ca(found.master_auth.cluster_ca_certificate, describe)
    log.info("%s: API server at %s (status %s)", describe, found.endpoint, status)
    return ClusterAccess(
        description=describe, server=f"https://{found.endpoint}", ca_pem=ca_pem, tokens=tokens
    )


def _close(client: ClusterManagerClient) -> None:
    close = getattr(client.transport, "close", None)
    if close is not None:
        close()
