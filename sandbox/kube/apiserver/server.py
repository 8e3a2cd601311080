"""One cluster's API server: the aiohttp app, bearer-token auth, routing and the read handlers.

Serves ``/version``, health, discovery (legacy and aggregated), ``/openapi/v3``, and for every resource
of ``discovery.RESOURCES``: get and list (JSON, or ``Table`` for ``kubectl get``), and routes the rest by
method and subresource: watch (``watch.py``), writes (``writes.py``), ``scale`` and ``log``
(``subresources.py``), ``exec`` (``podexec.py``), ``portforward`` (``portforward.py``). Errors are
``Status`` objects with Kubernetes' reasons and codes (``store.ApiError``); anything unexpected is
logged and answered as a 500 Status.

Neighbours: ``service.py`` starts one :class:`ApiServer` per cluster; ``store/`` holds the objects;
``auth.py`` says which bearer tokens are live; the kubelet (``kubelet/``) provides container logs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ... import faults
from .. import discovery, openapi
from ..store import ApiError, MethodNotAllowed, NotFound, Store, Unauthorized, not_found
from . import podexec, portforward, subresources, writes
from .events import event_selector
from .negotiation import (
    JSON,
    check_acceptable,
    json_response,
    media_ranges,
    object_response,
    status_response,
    table_content_type,
    truthy,
    wants_table,
)
from .subresources import PodLogs
from .tables import to_table
from .target import Target, parse_target
from .watch import Streams, watch

log = logging.getLogger("sandbox.kube.apiserver")

# What /version reports. kubectl's dispatcher (google-cloud-cli) picks the matching kubectl.1.31.
GIT_VERSION = "v1.31.6-gke.sandbox"
ANONYMOUS_PATHS = ("/version", "/healthz", "/livez", "/readyz")

Authenticate = Callable[[str], bool]


def _not_found() -> NotFound:
    return NotFound("the server could not find the requested resource")


def _not_allowed() -> MethodNotAllowed:
    return MethodNotAllowed("the server does not allow this method on the requested resource")


def _discovery(request: web.Request, *, legacy: bool) -> web.Response:
    for media, params in media_ranges(request.headers.get("Accept", "")):
        if (
            media == JSON
            and params.get("as") == "APIGroupDiscoveryList"
            and params.get("g") == ("apidiscovery.k8s.io")
        ):
            version = params.get("v")
            if version in ("v2", "v2beta1"):
                doc = discovery.aggregated(legacy, f"apidiscovery.k8s.io/{version}")
                media_type = (
                    discovery.AGGREGATED_MEDIA if version == "v2" else discovery.AGGREGATED_MEDIA_BETA
                )
                return json_response(doc, content_type=media_type, ETag=discovery.etag(doc), Vary="Accept")
        if media == JSON and "as" not in params:
            break
    return json_response(discovery.api_versions() if legacy else discovery.api_group_list(), Vary="Accept")


def _openapi_doc(rest: str) -> web.Response:
    parts = rest.split("/")
    if parts[0] == "api" and len(parts) == 2:
        doc = openapi.v3_document("", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        doc = openapi.v3_document(parts[1], parts[2])
    else:
        doc = None
    if doc is None:
        raise _not_found()
    response = json_response(doc)
    response.headers["Cache-Control"] = "public, immutable"
    return response


class ApiServer:
    """The API server of one cluster, listening on ``host:port`` (HTTPS when ``ssl_context`` is given)."""

    def __init__(
        self,
        *,
        cluster: str,
        store: Store,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        authenticate: Authenticate,
        pod_logs: PodLogs | None = None,
        pod_container: podexec.PodContainer | None = None,
        git_version: str = GIT_VERSION,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.authenticate = authenticate
        self.pod_logs = pod_logs
        self.pod_container = pod_container
        self.git_version = git_version
        self._runner: web.AppRunner | None = None
        self._streams = Streams()
        self._listener: faults.Listener | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        # Faults and the fixed latency first (faults.py): what a client meets before the server proper.
        target = f"api:{self.cluster}"
        middlewares = [faults.state.middleware(target, faults.kube_error), self._middleware]
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=middlewares)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        runner = self._runner

        def site() -> web.TCPSite:
            return web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)

        await site().start()
        self._listener = faults.Listener(runner, site)
        faults.state.register(target, self._listener)
        log.info("API server of %s on %s", self.cluster, self.url)

    async def stop(self) -> None:
        if self._listener is not None:
            faults.state.unregister(f"api:{self.cluster}", self._listener)
        self._streams.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing --

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            if request.path not in ANONYMOUS_PATHS:
                header = request.headers.get("Authorization", "")
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token or not self.authenticate(token.strip()):
                    raise Unauthorized("Unauthorized")
            return await handler(request)
        except ApiError as e:
            return status_response(e)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path_qs)
            return status_response(ApiError(f"Internal error occurred: {e}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return json_response(self._version())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            return _discovery(request, legacy=True)
        if path == "/apis":
            return _discovery(request, legacy=False)
        if path == "/openapi/v3":
            return json_response(openapi.v3_root())
        if path.startswith("/openapi/v3/"):
            return _openapi_doc(path[len("/openapi/v3/") :])
        if path == "/openapi/v2":
            raise _not_found()
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(parts[1])
            if doc is None:
                raise _not_found()
            return json_response(doc)
        else:
            raise _not_found()
        if not rest:
            if request.method != "GET":
                raise _not_allowed()
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise _not_found()
            return json_response(doc)
        return await self._resource(request, parse_target(group, version, rest))

    def _version(self) -> dict[str, Any]:
        major, minor = self.git_version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.git_version,
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.22.10",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # -- resources --

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        if t.subresource == "log":
            if method != "GET":
                raise _not_allowed()
            return await subresources.pod_log(request, t, self.store, self.pod_logs, self._streams)
        if t.subresource == "exec":
            if method not in ("GET", "POST"):
                raise _not_allowed()
            return await podexec.pod_exec(request, t, self.store, self.pod_container, self._streams)
        if t.subresource == "portforward":
            if method not in ("GET", "POST"):
                raise _not_allowed()
            return await portforward.pod_portforward(request, t, self.store, self._streams)
        if t.subresource == "scale":
            return await subresources.scale(request, t, self.store)
        if t.name is None:
            if method == "GET":
                if t.watch_path or truthy(request.query.get("watch")):
                    return await watch(request, t, self.store, self._streams)
                return self._list(request, t)
            if method == "POST":
                return await writes.create(request, t, self.store)
            if method == "DELETE":
                return await writes.delete_collection(request, t, self.store)
            raise _not_allowed()
        if t.watch_path and method == "GET":
            return await watch(request, t, self.store, self._streams)
        if method == "GET":
            return object_response(request, t, self._get(t))
        if method == "PUT":
            return await writes.update(request, t, self.store)
        if method == "PATCH":
            return await writes.patch(request, t, self.store)
        if method == "DELETE":
            return await writes.delete(request, t, self.store)
        raise _not_allowed()

    def _get(self, t: Target) -> dict[str, Any]:
        assert t.name is not None
        obj = self.store.get(t.gvr, t.namespace, t.name)
        if obj is None:
            raise not_found(t.info.gvr, t.name)
        return t.view(obj)

    def _list(self, request: web.Request, t: Target) -> web.Response:
        check_acceptable(request)
        q = request.query
        field_selector = q.get("fieldSelector")
        if t.info.group == "events.k8s.io":
            field_selector = event_selector(field_selector)
        items, rv = self.store.list(
            t.gvr, t.namespace, label_selector=q.get("labelSelector"), field_selector=field_selector
        )
        items = [t.view(i) for i in items]
        table = wants_table(request)
        if table:
            doc = to_table(t.info, items, rv, table, q.get("includeObject", "PartialObjectMetadata"))
            return json_response(doc, content_type=table_content_type(table))
        if t.info.builtin:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return json_response(
            {
                "kind": f"{t.info.kind}List",
                "apiVersion": t.info.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )
