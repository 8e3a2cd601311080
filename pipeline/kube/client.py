"""The pipeline's only border with the ``kubernetes`` client: a small typed API over one cluster.

:func:`connect` builds an API client either from a :class:`~pipeline.gke.ClusterAccess` (GKE: server, CA
and a token source that is asked for a token before every request, so a token that expires mid-rollout is
replaced without the caller noticing) or from a kubeconfig :class:`KubeContext` (teams on other clusters;
exec credential plugins such as ``gke-gcloud-auth-plugin`` work through the client's own loader). Objects
are plain dicts in and out. Kinds are found by dynamic discovery (``kubernetes.dynamic``), so custom
resources such as GKE's ManagedCertificate need no generated model.

What it offers the stages: discovery (:meth:`Kube.resource`), server-side apply, get, list, delete,
watch (with reconnects: a stream that ends, times out, answers 401 or 410 Gone is reopened from the last
resourceVersion, re-listing after 410), pod logs and the events of an object. Every client exception is
translated into a :class:`KubeError` subclass with one actionable line (``raise ... from e``); connection
failures are :class:`~pipeline.errors.TemporaryError`.

Neighbours: ``gke`` (how to reach a GKE cluster), ``apply`` (stage 4) and ``rollout`` (stage 5) use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import PipelineError, TemporaryError
from .gke import ADC_HINT, ClusterAccess

log = logging.getLogger(__name__)

T = TypeVar("T")
Obj = dict[str, Any]

# Ample for one API call; watches set their own (longer) read timeout.
REQUEST_TIMEOUT_SECONDS = 30.0
# A watch asks the server to end the stream after this long and reopens it: each reopen carries a fresh
# token and proves the connection is alive (a silently dead TCP connection would otherwise hang us).
WATCH_WINDOW_SECONDS = 60
# Consecutive failed watch (re)connects before the cluster counts as unreachable.
WATCH_RECONNECTS = 5


class KubeError(PipelineError):
    """Talking to the Kubernetes API server failed."""

    status: int | None = None


class KubeAuthError(KubeError, PermissionError):
    """401: the API server does not accept our credentials."""


class KubeForbidden(KubeError, PermissionError):
    """403: authenticated, but RBAC does not allow the request."""


class KubeNotFound(KubeError, LookupError):
    """404: the object (or its namespace) does not exist."""


class KubeConflict(KubeError):
    """409: a field manager conflict in server-side apply, or an object that changed under us."""

    def __init__(
        self, what: str, hint: str = "", managers: tuple[str, ...] = (), fields: tuple[str, ...] = ()
    ):
        self.managers = managers
        self.fields = fields
        super().__init__(what, hint)


class KubeInvalid(KubeError, ValueError):
    """400/422: the server rejected the object; the message is the server's."""


class KubeGone(KubeError):
    """410: a watch's resourceVersion is too old (handled inside :meth:`Kube.watch`)."""


class KubeUnreachable(KubeError, TemporaryError):
    """No answer, a broken connection, or a 5xx/429: trying again may help."""


class UnknownKind(KubeError, LookupError):
    """The cluster does not serve this apiVersion/kind (a CRD not installed?)."""


@dataclass(frozen=True)
class KubeContext:
    """A kubeconfig context to use instead of a GKE lookup."""

    context: str
    # None: $KUBECONFIG, else ~/.kube/config (the client's own rules).
    kubeconfig: str | None = None

    @property
    def description(self) -> str:
        return f"kubeconfig context {self.context}"


Access = ClusterAccess | KubeContext


@dataclass(frozen=True)
class Resource:
    """One kind as the cluster serves it (from discovery)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


@dataclass(frozen=True)
class WatchEvent:
    # ADDED, MODIFIED or DELETED. After a 410 the stream re-lists and reports each object as MODIFIED.
    type: str
    object: Obj


def ref(obj: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for messages."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_body(e: Any) -> dict[str, Any]:
    body = getattr(e, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


_CONFLICT_MANAGER = re.compile(r'conflict with "([^"]+)"')


def _verb_hint(verb: str, resource: str) -> str:
    return (
        f"Grant the pipeline's identity RBAC permission to {verb} {resource} "
        "(on GKE, e.g. roles/container.developer for its service account)"
    )


def translate(
    e: Exception,
    doing: str,
    *,
    auth_hint: str,
    verb: str = "",
    resource: str = "",
    redact: Sequence[str] = (),
) -> KubeError:
    """A one-line :class:`KubeError` for a client exception raised while ``doing`` something.

    ``redact`` lists strings (secret values) that must not appear in the message even if the server
    echoed them.
    """
    status = getattr(e, "status", None)
    body = _status_body(e)
    message = str(body.get("message") or getattr(e, "reason", "") or type(e).__name__)
    for value in redact:
        if value:
            message = message.replace(value, "<redacted>")
    message = _one_line(message)
    error: KubeError
    if status == 401:
        error = KubeAuthError(
            f"{doing}: the API server refused our credentials (401 Unauthorized)", auth_hint
        )
    elif status == 403:
        error = KubeForbidden(
            f"{doing}: forbidden ({message})", _verb_hint(verb or "access", resource or "it")
        )
    elif status == 404:
        error = KubeNotFound(f"{doing}: not found ({message})", "Check the name and namespace")
    elif status == 409:
        causes = (body.get("details") or {}).get("causes") or []
        fields = tuple(str(c.get("field", "")) for c in causes if c.get("field"))
        managers = tuple(dict.fromkeys(_CONFLICT_MANAGER.findall(message)))
        if managers:
            error = KubeConflict(
                f"{doing}: field manager conflict with {', '.join(managers)} "
                f"on {', '.join(fields) or 'fields'}",
                "Someone changed these fields outside the pipeline; put the change in git, or apply with "
                "force to take them over",
                managers=managers,
                fields=fields,
            )
        else:
            error = KubeConflict(f"{doing}: conflict ({message})", "Try again")
    elif status == 410:
        error = KubeGone(f"{doing}: resourceVersion too old ({message})", "Re-list and watch again")
    elif status in (400, 422):
        error = KubeInvalid(f"{doing}: rejected as invalid: {message}", "Fix the manifest and try again")
    elif status == 429 or (isinstance(status, int) and status >= 500):
        error = KubeUnreachable(f"{doing}: the API server answered {status} ({message})", "Try again shortly")
    elif status in (None, 0):
        error = KubeUnreachable(f"{doing}: no answer from the API server ({message})", "Check the network")
    else:
        error = KubeError(f"{doing}: the API server answered {status} ({message})")
    error.status = status if isinstance(status, int) else None
    return error


def _is_connection_error(e: BaseException) -> bool:
    import urllib3

    return isinstance(e, urllib3.exceptions.HTTPError | OSError)


def _connection_error(e: BaseException, doing: str, server: str) -> KubeError:
    import ssl

    import urllib3

    chain: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and cause not in chain:
        chain.append(cause)
        # urllib3 nests the underlying error in `.reason` (MaxRetryError) or in its args (SSLError).
        wrapped = [a for a in cause.args if isinstance(a, BaseException)]
        reason = getattr(cause, "reason", None)
        cause = (
            (reason if isinstance(reason, BaseException) else None)
            or cause.__cause__
            or (wrapped[0] if wrapped else None)
            or cause.__context__
        )
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain):
        return KubeError(
            f"{doing}: the TLS certificate of {server} could not be verified",
            "Check the cluster CA (GKE: masterAuth.clusterCaCertificate; kubeconfig: "
            "certificate-authority-data)",
        )
    if any(isinstance(c, urllib3.exceptions.SSLError | ssl.SSLError) for c in chain):
        return KubeError(
            f"{doing}: the TLS handshake with {server} failed", "Check that the address is the API server's"
        )
    return KubeUnreachable(
        f"{doing}: cannot reach the API server at {server} ({type(e).__name__})",
        "Check the network and the cluster endpoint, then try again",
    )


class WatchStream:
    """An iterator of :class:`WatchEvent` that reconnects as needed; :meth:`stop` ends it from any thread."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        params: dict[str, Any],
        deadline: float,
        resource_version: str | None,
        doing: str,
        window: int = WATCH_WINDOW_SECONDS,
    ) -> None:
        self._kube = kube
        self._resource = resource
        self._params = params
        self._deadline = deadline
        self._window = window
        self._rv = resource_version
        self._doing = doing
        self._stopped = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._events = self._run()

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> WatchEvent:
        return next(self._events)

    @property
    def resource_version(self) -> str | None:
        return self._rv

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            # Unblocks a read in progress in another thread (urllib3 >= 2.3); best effort, as the
            # stream is being abandoned anyway.
            with contextlib.suppress(Exception):
                response.shutdown()

    def _relist(self) -> list[WatchEvent]:
        items, rv = self._kube.list_resource(
            self._resource,
            namespace=self._params.get("namespace"),
            label_selector=self._params.get("label_selector"),
            field_selector=self._params.get("field_selector"),
        )
        self._rv = rv
        return [WatchEvent("MODIFIED", item) for item in items]

    def _run(self) -> Iterator[WatchEvent]:
        failures = 0  # consecutive failed opens or broken streams
        auth_failures = 0  # 401s since the last event: a fresh token did not help twice -> give up
        if self._rv is None:
            # No starting point: the current state first, as ADDED events, then changes from there.
            for event in self._relist():
                yield WatchEvent("ADDED", event.object)
        while not self._stopped.is_set():
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                return
            window = max(1, min(self._window, int(remaining + 0.999)))
            try:
                response = self._kube._open_watch(self._resource, self._params, self._rv, window)
            except KubeAuthError:
                auth_failures += 1
                if auth_failures > 2:
                    raise
                self._kube._reauthenticate()
                continue
            except KubeGone:
                yield from self._relist()
                continue
            except KubeUnreachable:
                failures += 1
                if failures > WATCH_RECONNECTS:
                    raise
                self._stopped.wait(min(0.5 * 2**failures, 5.0))
                continue
            failures = 0
            with self._lock:
                self._response = response
            if self._stopped.is_set():  # stopped while opening: stop() could not see this response
                response.release_conn()
                return
            try:
                for line in _lines(response):
                    if self._stopped.is_set():
                        return
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            yield from self._relist()
                            break
                        if code == 401:
                            auth_failures += 1
                            if auth_failures > 2:
                                raise KubeAuthError(
                                    f"{self._doing}: the API server refused our credentials (401)",
                                    self._kube.auth_hint,
                                )
                            self._kube._reauthenticate()
                            break
                        raise KubeError(
                            f"{self._doing}: the watch failed ({_one_line(obj.get('message', ''))})"
                        )
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self._rv = rv
                    auth_failures = 0
                    if kind == "BOOKMARK":
                        continue
                    yield WatchEvent(str(kind), obj)
            except Exception as e:
                if self._stopped.is_set():
                    return
                if not _is_connection_error(e):
                    raise
                # A stream cut short (read timeout, server restart): reopen from the last version.
                failures += 1
                if failures > WATCH_RECONNECTS:
                    raise _connection_error(e, self._doing, self._kube.server) from e
                log.debug("%s: stream broke (%s); reconnecting", self._doing, type(e).__name__)
            finally:
                with self._lock:
                    self._response = None
                response.release_conn()


def _lines(response: Any) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")


class Kube:
    """One cluster's API, for the duration of a stage. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, access: Access, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.access = access
        self.description = access.description
        self.request_timeout = request_timeout
        self._api = self._make_client()
        # Discovery's cache, per client: a shared one (the library's default, keyed by host) could be
        # stale for another cluster at the same address (two sandboxes, a recreated cluster).
        self._tmp = tempfile.mkdtemp(prefix="campus-pipeline-kube-")
        self.server: str = self._api.configuration.host
        self._dyn: Any = None
        self._resources: dict[tuple[str, str], Resource] = {}
        self._reauth_lock = threading.Lock()

    # --- set-up ------------------------------------------------------------------------------------------

    def _make_client(self) -> Any:
        from kubernetes import client

        access = self.access
        if isinstance(access, ClusterAccess):
            configuration = client.Configuration()
            configuration.host = access.server
            configuration.ca_cert_data = access.ca_pem
            configuration.api_key_prefix["BearerToken"] = "Bearer"
            tokens = access.tokens

            # Called by the client before every request (watch reconnects included): the token source
            # returns its cached token, or refreshes it first when it is about to expire.
            def refresh(config: Any) -> None:
                config.api_key["BearerToken"] = tokens.token()

            # The client types this hook as None; it is a documented extension point all the same.
            setattr(configuration, "refresh_api_key_hook", refresh)  # noqa: B010
            refresh(configuration)
            return client.ApiClient(configuration)
        return self._client_from_kubeconfig(access)

    def _client_from_kubeconfig(self, access: KubeContext) -> Any:
        from kubernetes import config as kube_config

        try:
            new_client: Any = kube_config.new_client_from_config
            return new_client(config_file=access.kubeconfig, context=access.context, persist_config=False)
        except kube_config.ConfigException as e:
            raise KubeError(
                f"loading {access.description}: {_one_line(str(e))}",
                "Check KUBECONFIG and the context name (kubectl config get-contexts)",
            ) from e
        except FileNotFoundError as e:
            raise KubeError(f"loading {access.description}: no kubeconfig file", "Set KUBECONFIG") from e

    @property
    def auth_hint(self) -> str:
        if isinstance(self.access, ClusterAccess):
            return ADC_HINT
        return (
            f"Check the credentials of {self.access.description} (an expired token or a failing exec plugin?)"
        )

    def _reauthenticate(self) -> None:
        """After a 401: get a new token before trying once more."""
        with self._reauth_lock:
            if isinstance(self.access, ClusterAccess):
                self.access.tokens.invalidate()
                return
            from kubernetes import config as kube_config

            # Re-running the loader re-runs exec plugins even when they stated no expiry.
            load: Any = kube_config.load_kube_config
            load(
                config_file=self.access.kubeconfig,
                context=self.access.context,
                client_configuration=self._api.configuration,
                persist_config=False,
            )

    def close(self) -> None:
        self._api.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls ---------------------------------------------------------------------------------------------

    def _call(
        self,
        doing: str,
        fn: Callable[[], T],
        *,
        verb: str = "",
        resource: str = "",
        redact: Sequence[str] = (),
    ) -> T:
        """Run one client call, retrying once after a 401 with a fresh token; translate failures."""
        from kubernetes.client.exceptions import ApiException

        for attempt in (1, 2):
            try:
                return fn()
            except PipelineError:
                raise  # e.g. the token source could not refresh: already one line
            except ApiException as e:
                if e.status == 401 and attempt == 1:
                    self._reauthenticate()
                    continue
                raise translate(
                    e, doing, auth_hint=self.auth_hint, verb=verb, resource=resource, redact=redact
                ) from e
            except Exception as e:
                if _is_connection_error(e):
                    raise _connection_error(e, doing, self.server) from e
                raise
        raise AssertionError("unreachable")

    @property
    def dynamic(self) -> Any:
        """The ``kubernetes.dynamic.DynamicClient`` (created on first use: it runs discovery)."""
        if self._dyn is None:
            from kubernetes import dynamic

            dynamic_client: Any = dynamic.DynamicClient
            cache = f"{self._tmp}/discovery.json"
            self._dyn = self._call(
                f"connecting to {self.description}",
                lambda: dynamic_client(self._api, cache_file=cache),
                verb="get",
                resource="the discovery API",
            )
        return self._dyn

    def version(self) -> dict[str, Any]:
        """The server's /version document (proves we are reachable and authenticated)."""
        data = self._request("GET", "/version", doing=f"connecting to {self.description}")
        return data if isinstance(data, dict) else {}

    def resource(self, api_version: str, kind: str) -> Resource:
        """The kind as this cluster serves it; :class:`UnknownKind` when it does not."""
        key = (api_version, kind)
        if key in self._resources:
            return self._resources[key]
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        dyn = self.dynamic
        try:
            found = self._call(
                f"discovering {kind} ({api_version})",
                lambda: dyn.resources.get(api_version=api_version, kind=kind),
                verb="get",
                resource="the discovery API",
            )
        except (ResourceNotFoundError, ResourceNotUniqueError) as e:
            raise UnknownKind(
                f"{self.description} does not serve {kind} ({api_version})",
                "Install its CustomResourceDefinition, or check apiVersion and kind",
            ) from e
        resource = Resource(found.group_version, found.kind, found.name, bool(found.namespaced))
        self._resources[key] = resource
        return resource

    def resource_in_group(self, group: str, kind: str) -> Resource:
        """The kind in its group's preferred version (for group-kinds recorded without a version)."""
        if not group:
            return self.resource("v1", kind)
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        dyn = self.dynamic
        try:
            found = self._call(
                f"discovering {kind}.{group}",
                lambda: dyn.resources.search(group=group, kind=kind),
                verb="get",
                resource="the discovery API",
            )
        except ResourceNotFoundError:
            found = []
        # Subresources share the kind (deployments/scale is a Scale, but pods/status is a Pod).
        found = [r for r in found if "/" not in str(r.name)]
        if not found:
            raise UnknownKind(
                f"{self.description} does not serve {kind}.{group}", "Install its CustomResourceDefinition"
            )
        best = next((r for r in found if r.preferred), found[0])
        return self.resource(str(best.group_version), kind)

    def forget_discovery(self) -> None:
        """Forget discovered kinds (after applying CRDs, so that their kinds can be found)."""
        self._resources.clear()
        if self._dyn is not None:
            self._dyn.resources.invalidate_cache()

    def _request(
        self,
        method: str,
        path: str,
        *,
        doing: str,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str | None = None,
        verb: str = "",
        resource: str = "",
        redact: Sequence[str] = (),
        raw: bool = False,
        timeout: Any = None,
    ) -> Any:
        """One HTTP request to the API server (auth, TLS and retries from the client); JSON or raw text."""
        api = self._api

        def call() -> Any:
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
            response.read()
            if not 200 <= response.status <= 299:
                api.response_deserialize(response, {})  # raises ApiException with the body
            text = response.data.decode("utf-8", "replace")
            if raw:
                return text
            return json.loads(text) if text.strip() else {}

        return self._call(doing, call, verb=verb, resource=resource, redact=redact)

    def server_side_apply(
        self, obj: Obj, *, field_manager: str, dry_run: bool = False, force: bool = False
    ) -> Obj:
        """Server-side apply ``obj`` (``PATCH application/apply-patch+yaml``); the object the server keeps.

        With ``dry_run`` the server runs everything (admission, defaulting, validation) and stores nothing.
        """
        resource = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise KubeInvalid(
                f"applying {ref(obj)}: a namespaced object without metadata.namespace",
                "Set the namespace in the kustomization",
            )
        query: list[tuple[str, Any]] = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        redact = _secret_values(obj)
        result = self._request(
            "PATCH",
            resource.path(namespace, meta["name"]),
            doing=f"{'dry-run ' if dry_run else ''}applying {ref(obj)} to {self.description}",
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
            verb="patch",
            resource=f"{resource.plural}{'.' + resource.group if resource.group else ''}",
            redact=redact,
        )
        return result if isinstance(result, dict) else {}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The live object, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            result = self._request(
                "GET",
                resource.path(namespace if resource.namespaced else None, name),
                doing=f"reading {kind} {namespace + '/' if namespace and resource.namespaced else ''}{name}",
                verb="get",
                resource=resource.plural,
            )
        except KubeNotFound:
            return None
        return result if isinstance(result, dict) else None

    def list_resource(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """Items (each with kind and apiVersion filled in) and the list's resourceVersion."""
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        where = f" in {namespace}" if namespace and resource.namespaced else ""
        result = self._request(
            "GET",
            resource.path(namespace if resource.namespaced else None),
            doing=f"listing {resource.plural}{where}",
            query=query,
            verb="list",
            resource=resource.plural,
        )
        items = list(result.get("items") or [])
        for item in items:
            # Lists omit kind/apiVersion on their items; callers want whole objects.
            item.setdefault("kind", resource.kind)
            item.setdefault("apiVersion", resource.api_version)
        return items, str((result.get("metadata") or {}).get("resourceVersion", ""))

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        return self.list_resource(
            self.resource(api_version, kind),
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        propagation: str = "Background",
    ) -> bool:
        """Delete one object; False when it was already gone."""
        resource = self.resource(api_version, kind)
        query: list[tuple[str, Any]] = [("propagationPolicy", propagation)]
        if dry_run:
            query.append(("dryRun", "All"))
        try:
            self._request(
                "DELETE",
                resource.path(namespace if resource.namespaced else None, name),
                doing=f"{'dry-run ' if dry_run else ''}deleting {kind} "
                f"{namespace + '/' if namespace and resource.namespaced else ''}{name}",
                query=query,
                verb="delete",
                resource=resource.plural,
            )
        except KubeNotFound:
            return False
        return True

    def _open_watch(self, resource: Resource, params: dict[str, Any], rv: str | None, window: int) -> Any:
        """Open one watch stream (the raw urllib3 response); failures as KubeError."""
        from kubernetes.client.exceptions import ApiException

        api = self._api
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", window),
        ]
        if rv:
            query.append(("resourceVersion", rv))
        if params.get("label_selector"):
            query.append(("labelSelector", params["label_selector"]))
        if params.get("field_selector"):
            query.append(("fieldSelector", params["field_selector"]))
        path = resource.path(params.get("namespace") if resource.namespaced else None)
        doing = f"watching {resource.plural}"
        try:
            request = api.param_serialize(
                "GET",
                path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            # Read timeout beyond the server's own window: only a dead connection hits it.
            response = api.call_api(*request, _request_timeout=(10, window + 15))
            if not 200 <= response.status <= 299:
                response.read()
                api.response_deserialize(response, {})
        except PipelineError:
            raise
        except ApiException as e:
            raise translate(e, doing, auth_hint=self.auth_hint, verb="watch", resource=resource.plural) from e
        except Exception as e:
            if _is_connection_error(e):
                raise _connection_error(e, doing, self.server) from e
            raise
        return response.response

    def watch(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout: float,
        window: int = WATCH_WINDOW_SECONDS,
    ) -> WatchStream:
        """Changes to matching objects for up to ``timeout`` seconds, reconnecting as needed.

        Without ``resource_version`` the stream starts with the current objects (as ADDED events).
        """
        resource = self.resource(api_version, kind)
        params: dict[str, Any] = {"namespace": namespace, "label_selector": label_selector}
        if name:
            params["field_selector"] = f"metadata.name={name}"
        what = f"{kind} {namespace + '/' if namespace else ''}{name or label_selector or ''}".strip()
        return WatchStream(
            self, resource, params, time.monotonic() + timeout, resource_version, f"watching {what}", window
        )

    def pod_logs(
        self, namespace: str, pod: str, container: str, *, tail: int = 20, previous: bool = False
    ) -> list[str]:
        """The last ``tail`` log lines of a container (of its previous instance with ``previous``)."""
        query: list[tuple[str, Any]] = [("container", container), ("tailLines", tail)]
        if previous:
            query.append(("previous", "true"))
        text = self._request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            doing=f"reading the logs of {namespace}/{pod} ({container})",
            query=query,
            verb="get",
            resource="pods/log",
            raw=True,
        )
        return [line for line in str(text).splitlines() if line.strip()][-tail:]

    def events_for(self, obj: Mapping[str, Any], *, limit: int = 10) -> list[Obj]:
        """The most recent Events about ``obj`` (core/v1), oldest first."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        name = meta.get("name")
        uid = meta.get("uid")
        selector = f"involvedObject.name={name},involvedObject.kind={obj.get('kind')}"
        try:
            items, _ = self.list_objects("v1", "Event", namespace, field_selector=selector)
        except KubeInvalid:  # a server that cannot select on these fields: filter here instead
            items, _ = self.list_objects("v1", "Event", namespace)
        mine = [
            e
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
            and (e.get("involvedObject") or {}).get("kind") == obj.get("kind")
            and (not uid or (e.get("involvedObject") or {}).get("uid") in (None, "", uid))
        ]
        mine.sort(key=_event_time)
        return mine[-limit:]


def _event_time(event: Mapping[str, Any]) -> tuple[str, int]:
    when = str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
    # Timestamps have one-second resolution; within a second, the (in practice numeric) resourceVersion
    # keeps the order in which they were written.
    rv = str((event.get("metadata") or {}).get("resourceVersion", ""))
    return when[:19], int(rv) if rv.isdigit() else 0


def _secret_values(obj: Mapping[str, Any]) -> list[str]:
    """The values of a Secret (as sent and decoded) so that no message can carry them."""
    if obj.get("kind") != "Secret":
        return []
    import base64

    values: list[str] = []
    for value in (obj.get("data") or {}).values():
        values.append(str(value))
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            values.append(base64.b64decode(str(value)).decode("utf-8"))
    values += [str(v) for v in (obj.get("stringData") or {}).values()]
    # Longest first, so that a value containing another is replaced whole.
    return sorted({v for v in values if len(v) >= 3}, key=len, reverse=True)


@contextlib.contextmanager
def opened(target: Access | Kube) -> Iterator[Kube]:
    """``target`` itself if it is a :class:`Kube` (its owner closes it), else a new one, closed after."""
    if isinstance(target, Kube):
        yield target
        return
    with connect(target) as kube:
        yield kube


def connect(access: Access, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> Kube:
    """A :class:`Kube` for ``access`` (nothing is requested until first use)."""
    return Kube(access, request_timeout=request_timeout)
