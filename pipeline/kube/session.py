"""One authenticated connection to one API server: the ``kubernetes`` client's ``ApiClient`` and its requests.

:class:`ApiSession` builds the client from an :data:`~pipeline.access.Access`: for a
:class:`~pipeline.access.ClusterAccess` (GKE) with the cluster's CA and a hook that asks the token source
for a token before every request, so a token that expires mid-rollout is replaced without the caller
noticing; for a :class:`~pipeline.access.KubeContext` through the client's own kubeconfig loader (exec
credential plugins such as ``gke-gcloud-auth-plugin`` included). It sends requests (JSON or raw text
back), retries once with fresh credentials after a 401, opens streaming GETs for watches, and turns every
client failure into a :class:`~pipeline.errors.KubeError` (through ``kube.errors``).

Neighbours: ``kube.client`` (the typed calls), ``kube.discovery`` and ``kube.watch`` build on it; it uses
``access`` and ``kube.errors``. The client library is imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..access import Access, ClusterAccess, KubeContext
from ..base import Obj
from ..errors import KubeError, PipelineError, TemporaryError
from ..retries import retrying
from .errors import connection_error, is_connection_error, one_line, translate

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from urllib3 import BaseHTTPResponse

T = TypeVar("T")
# Query parameters, in order (the same key may repeat).
Query = Sequence[tuple[str, str | int]]
# Seconds for the whole request, or (connect, read).
Timeout = float | tuple[float, float]

# Ample for one API call; watches set their own (longer) read timeout.
REQUEST_TIMEOUT_SECONDS = 30.0


def preload() -> None:
    """Import the client library now: most of a second of CPU that a caller can spend on a thread while
    its main thread waits on git and kustomize."""
    import kubernetes.client  # noqa: F401


def _client_for_cluster(access: ClusterAccess) -> ApiClient:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = access.server
    configuration.ca_cert_data = access.ca_pem
    configuration.api_key_prefix["BearerToken"] = "Bearer"
    tokens = access.tokens

    # Called by the client before every request (watch reconnects included): the token source
    # returns its cached token, or refreshes it first when it is about to expire.
    def refresh(config: client.Configuration) -> None:
        config.api_key["BearerToken"] = tokens.token()

    # The client types this hook as None; it is a documented extension point all the same.
    setattr(configuration, "refresh_api_key_hook", refresh)  # noqa: B010
    refresh(configuration)
    return client.ApiClient(configuration)


@contextlib.contextmanager
def _plugin_errors(where: str, access: KubeContext) -> Iterator[None]:
    """The client's loader logs a failing exec credential plugin on the root logger and carries on
    without credentials; keep that line off stderr and make it this load's one-line error instead."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    if lines:
        raise KubeError(f"{where}: the credential plugin failed ({one_line(lines[0])})", access.auth_hint)


def _kubeconfig_file(access: KubeContext) -> str:
    return access.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"


def _client_from_kubeconfig(access: KubeContext) -> ApiClient:
    import yaml
    from kubernetes import config as kube_config

    where = f"loading {access.description} from {_kubeconfig_file(access)}"
    hint = "Check KUBECONFIG and the context name (kubectl config get-contexts)"
    try:
        with _plugin_errors(where, access):
            new_client: Any = kube_config.new_client_from_config  # unannotated in the client
            made: ApiClient = new_client(
                config_file=access.kubeconfig, context=access.context, persist_config=False
            )
    except kube_config.ConfigException as e:
        raise KubeError(f"{where}: {one_line(str(e))}", hint) from e
    except FileNotFoundError as e:
        raise KubeError(f"{where}: no kubeconfig file", "Set KUBECONFIG") from e
    except OSError as e:  # a directory, no permission
        raise KubeError(f"{where}: cannot read it ({e.strerror or type(e).__name__})", hint) from e
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError) as e:
        # The client's loader trusts the file's shape: YAML errors are ValueErrors, a string where a
        # mapping belongs a TypeError. Either way the file is not a kubeconfig.
        raise KubeError(f"{where}: not a valid kubeconfig ({type(e).__name__})", hint) from e
    host = str(made.configuration.host or "")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", host):
        made.close()  # type: ignore[no-untyped-call]  # unannotated in the client
        raise KubeError(f"{where}: the cluster's server {host!r} is not an https:// URL", hint)
    return made


class ApiSession:
    """The client of one cluster's API server; :meth:`close` it when done."""

    def __init__(self, access: Access, request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.access = access
        self.description = access.description
        self.request_timeout = request_timeout
        if isinstance(access, ClusterAccess):
            self.api = _client_for_cluster(access)
        else:
            self.api = _client_from_kubeconfig(access)
        self.server: str = self.api.configuration.host
        self._reauth_lock = threading.Lock()

    @property
    def auth_hint(self) -> str:
        """What to try when the API server refuses our credentials."""
        return self.access.auth_hint

    def reauthenticate(self) -> None:
        """After a 401: get a new token before trying once more."""
        with self._reauth_lock:
            if isinstance(self.access, ClusterAccess):
                self.access.tokens.invalidate()
                return
            from kubernetes import config as kube_config

            # Re-running the loader re-runs exec plugins even when they stated no expiry.
            load: Any = kube_config.load_kube_config  # unannotated in the client
            with _plugin_errors(f"reloading {self.access.description}", self.access):
                load(
                    config_file=self.access.kubeconfig,
                    context=self.access.context,
                    client_configuration=self.api.configuration,
                    persist_config=False,
                )

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]  # unannotated in the client

    def call(
        self,
        doing: str,
        fn: Callable[[], T],
        *,
        verb: str = "",
        resource: str = "",
        redact: Sequence[str] = (),
        method: str = "GET",
    ) -> T:
        """Run one client call, retrying once after a 401 with a fresh token; translate failures.

        Transient failures (no answer, 5xx, 429, a token endpoint that did not answer) are retried with
        bounded back-off (``retries.py``); a POST only when it cannot have been applied.
        """
        for attempt in retrying(doing, transient=lambda e: _transient(method, e)):
            with attempt:
                return self._call_once(doing, fn, verb=verb, resource=resource, redact=redact)
        raise AssertionError("unreachable")

    def _call_once(
        self, doing: str, fn: Callable[[], T], *, verb: str, resource: str, redact: Sequence[str]
    ) -> T:
        from kubernetes.client.exceptions import ApiException

        for attempt in (1, 2):
            try:
                return fn()
            except PipelineError:
                raise  # e.g. the token source could not refresh: already one line
            except ApiException as e:
                if e.status == 401 and attempt == 1:
                    self.reauthenticate()
                    continue
                raise translate(
                    e, doing, auth_hint=self.auth_hint, verb=verb, resource=resource, redact=redact
                ) from e
            except Exception as e:
                if is_connection_error(e):
                    raise connection_error(e, doing, self.server) from e
                raise
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        doing: str,
        body: Obj | None = None,
        query: Query = (),
        content_type: str | None = None,
        verb: str = "",
        resource: str = "",
        redact: Sequence[str] = (),
        raw: bool = False,
        timeout: Timeout | None = None,
    ) -> object:
        """One HTTP request (auth, TLS and retries from the client): parsed JSON, or the text if ``raw``."""
        api = self.api

        def call() -> object:
            headers = {"Accept": "application/json"}
            if content_type:
                headers["Content-Type"] = content_type
            elif body is not None:
                headers["Content-Type"] = "application/json"
            request = api.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(*request, _request_timeout=timeout or self.request_timeout)
            data: bytes = response.read()  # type: ignore[no-untyped-call]  # unannotated in the client
            if not 200 <= response.status <= 299:
                api.response_deserialize(response, {})  # raises ApiException with the body
            text = data.decode("utf-8", "replace")
            if raw:
                return text
            parsed: object = json.loads(text) if text.strip() else {}
            return parsed

        return self.call(doing, call, verb=verb, resource=resource, redact=redact, method=method)

    def stream(
        self, path: str, query: Query, *, doing: str, verb: str, resource: str, timeout: Timeout
    ) -> BaseHTTPResponse:
        """Open a streaming GET (a watch) and return the raw response; failures as :class:`KubeError`.

        No retry here: the watch decides what a 401 or a lost connection means for its stream.
        """
        from kubernetes.client.exceptions import ApiException

        api = self.api
        try:
            request = api.param_serialize(
                "GET",
                path,
                query_params=list(query),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = api.call_api(*request, _request_timeout=timeout)
            if not 200 <= response.status <= 299:
                response.read()  # type: ignore[no-untyped-call]  # unannotated in the client
                api.response_deserialize(response, {})
        except PipelineError:
            raise
        except ApiException as e:
            raise translate(e, doing, auth_hint=self.auth_hint, verb=verb, resource=resource) from e
        except Exception as e:
            if is_connection_error(e):
                raise connection_error(e, doing, self.server) from e
            raise
        raw: BaseHTTPResponse = response.response
        return raw


def _transient(method: str, e: BaseException) -> bool:
    """Whether to try ``e``'s request again: transient, and (for a POST) certainly not applied."""
    if not isinstance(e, TemporaryError):
        return False
    if method.upper() != "POST":
        return True  # GET, PATCH (apply), PUT and DELETE are idempotent
    # A create is retried only when the server answered (an error status: nothing stored) or when the
    # connection was never made; after a broken connection it may have been stored, and the caller
    # decides (e.g. a Lease's create then finds it exists).
    if getattr(e, "status", None):
        return True
    cause: BaseException | None = e.__cause__
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or type(cause).__name__ == "NewConnectionError":
            return True
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else cause.__cause__ or cause.__context__
    return False
