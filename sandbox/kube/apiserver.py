"""One cluster's Kubernetes API server: HTTPS, bearer tokens, and the REST subset kubectl and clients use.

Serves ``/version``, health, discovery (legacy and aggregated), ``/openapi/v3``, and for every resource of
``discovery.RESOURCES``: get, list (JSON or ``Table`` for ``kubectl get``), watch (chunked JSON lines,
resourceVersion resume with 410 Expired, bookmarks, timeouts, selectors), create, update, patch (JSON
merge, strategic merge, JSON patch, server-side apply via ``ssa.py``), delete (with propagation and
deletecollection), the ``status`` and ``scale`` subresources and Pod ``log``. Every write goes through the
same admission chain: field validation (``fieldValidation`` Strict/Warn/Ignore), defaulting and
validation (``openapi.py``), Service IP and nodePort allocation, the default StorageClass, and
``dryRun=All``. Errors are ``Status`` objects with Kubernetes' reasons and codes (``store.ApiError``).

Neighbours: ``store.py`` holds the objects; ``auth.py`` says which bearer tokens are live; the kubelet
(``kubelet.py``) provides container logs; ``service.py`` starts one server per cluster.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import discovery, openapi, ssa
from .discovery import GVR, ResourceInfo
from .store import (
    EVENTS,
    NAMESPACES,
    SERVICES,
    STORAGECLASSES,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Store,
    Unauthorized,
    UnsupportedMediaType,
    invalid,
    not_found,
    now_rfc3339,
    parse_field_selector,
    parse_label_selector,
)

log = logging.getLogger("sandbox.kube.apiserver")

# What /version reports. kubectl's dispatcher (google-cloud-cli) picks the matching kubectl.1.31.
GIT_VERSION = "v1.31.6-gke.sandbox"
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
NODE_PORTS = range(30000, 32768)
BOOKMARK_SECONDS = 30.0
PATCH_ATTEMPTS = 5
LOG_POLL_SECONDS = 1.0

PodLogs = Callable[[str, str, str, int, bool], str]  # (namespace, pod, container, tail, previous) -> text
Authenticate = Callable[[str], bool]

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
ANONYMOUS_PATHS = ("/version", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool = False

    @property
    def gvr(self) -> GVR:
        """Where objects of this resource are stored (events.k8s.io Events are core Events)."""
        return EVENTS if self.info.group == "events.k8s.io" else self.info.gvr


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _json_response(data: Any, status: int = 200, *, content_type: str = JSON, **headers: str) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": content_type, **headers},
    )


def _status_response(error: ApiError) -> web.Response:
    return _json_response(error.status(), error.code)


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip()] = v.strip()
        out.append((pieces[0], params))
    return out


def _wants_table(request: web.Request) -> str | None:
    """The Table version kubectl asked for ("v1"/"v1beta1"), if JSON Table output is acceptable."""
    for media, params in _media_ranges(request.headers.get("Accept", "")):
        if media == JSON and params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
        if media == JSON and "as" not in params:
            return None
    return None


def _check_acceptable(request: web.Request) -> None:
    ranges = _media_ranges(request.headers.get("Accept", ""))
    if not ranges:
        return
    for media, _ in ranges:
        if media in (JSON, "*/*", "application/*", "application/yaml", "text/plain"):
            return
    raise NotAcceptable(f"only the following media types are accepted: {JSON}")


def _age(timestamp: str | None) -> str:
    """kubectl's HumanDuration of the time since ``timestamp``."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<unknown>"
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


# ---- events.k8s.io/v1 <-> core/v1 Events ------------------------------------------------------------

_EVENT_FIELDS = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
]


def event_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_FIELDS:
        if new in out:
            out[old] = out.pop(new)
    out["apiVersion"], out["kind"] = "v1", "Event"
    return out


def event_from_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_FIELDS:
        if old in out:
            out[new] = out.pop(old)
    if not out.get("eventTime"):
        # events.k8s.io/v1 requires eventTime; events recorded the core/v1 way only have timestamps.
        stamp = out.get("deprecatedFirstTimestamp") or out.get("metadata", {}).get("creationTimestamp")
        if isinstance(stamp, str) and stamp.endswith("Z"):
            out["eventTime"] = stamp[:-1] + ".000000Z"
    out["apiVersion"], out["kind"] = "events.k8s.io/v1", "Event"
    return out


def _event_selector(text: str | None) -> str | None:
    if not text:
        return text
    for new, old in _EVENT_FIELDS:
        text = text.replace(new + ".", old + ".").replace(new + "=", old + "=")
    return text


# ---- Table output (what kube-apiserver's printers give `kubectl get`) ----------------------------------

Column = tuple[str, str, int, str]  # name, type, priority, format


def _col(name: str, priority: int = 0, type_: str = "string", fmt: str = "") -> Column:
    return (name, type_, priority, fmt)


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    has_running = False
    for c in reversed(statuses):
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            )
        elif c.get("ready") and state.get("running"):
            has_running = True
    if reason == "Completed" and has_running:
        reason = (
            "Running"
            if any(
                cond.get("type") == "Ready" and cond.get("status") == "True"
                for cond in status.get("conditions") or []
            )
            else "NotReady"
        )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    last = max(
        (((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or "" for c in statuses),
        default="",
    )
    restart_text = f"{restarts} ({_age(last)} ago)" if restarts and last else str(restarts)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restart_text,
        _age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _containers(spec: dict[str, Any]) -> tuple[str, str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector_text(selector: Any) -> str:
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        parts.append(
            {
                "In": f"{expr['key']} in ({values})",
                "NotIn": f"{expr['key']} notin ({values})",
                "Exists": expr["key"],
                "DoesNotExist": f"!{expr['key']}",
            }.get(op or "", expr["key"])
        )
    return ",".join(parts) or "<none>"


def _service_ports(spec: dict[str, Any]) -> str:
    out = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _table_spec(info: ResourceInfo) -> tuple[list[Column], Callable[[dict[str, Any]], list[Any]]]:
    kind = info.kind if info.builtin else ""
    age = _col("Age")

    def name(o: dict[str, Any]) -> str:
        return str(o["metadata"]["name"])

    def created(o: dict[str, Any]) -> str:
        return _age(o["metadata"].get("creationTimestamp"))

    if kind == "Pod":
        cols = [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", type_="string"),
            age,
            _col("IP", 1),
            _col("Node", 1),
            _col("Nominated Node", 1),
            _col("Readiness Gates", 1),
        ]
        return cols, _pod_row
    if kind == "Deployment":

        def dep(o: dict[str, Any]) -> list[Any]:
            s, st = o.get("spec") or {}, o.get("status") or {}
            names, images = _containers(s)
            return [
                name(o),
                f"{st.get('readyReplicas', 0)}/{s.get('replicas', 0)}",
                st.get("updatedReplicas", 0),
                st.get("availableReplicas", 0),
                created(o),
                names,
                images,
                _selector_text(s.get("selector")),
            ]

        return [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", type_="integer"),
            _col("Available", type_="integer"),
            age,
            _col("Containers", 1),
            _col("Images", 1),
            _col("Selector", 1),
        ], dep
    if kind in ("ReplicaSet", "StatefulSet"):

        def rs(o: dict[str, Any]) -> list[Any]:
            s, st = o.get("spec") or {}, o.get("status") or {}
            names, images = _containers(s)
            if kind == "StatefulSet":
                return [
                    name(o),
                    f"{st.get('readyReplicas', 0)}/{s.get('replicas', 0)}",
                    created(o),
                    names,
                    images,
                ]
            return [
                name(o),
                s.get("replicas", 0),
                st.get("replicas", 0),
                st.get("readyReplicas", 0),
                created(o),
                names,
                images,
                _selector_text(s.get("selector")),
            ]

        if kind == "StatefulSet":
            return [
                _col("Name", fmt="name"),
                _col("Ready"),
                age,
                _col("Containers", 1),
                _col("Images", 1),
            ], rs
        return [
            _col("Name", fmt="name"),
            _col("Desired", type_="integer"),
            _col("Current", type_="integer"),
            _col("Ready", type_="integer"),
            age,
            _col("Containers", 1),
            _col("Images", 1),
            _col("Selector", 1),
        ], rs
    if kind == "Service":

        def svc(o: dict[str, Any]) -> list[Any]:
            s = o.get("spec") or {}
            ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or (
                "<pending>" if s.get("type") == "LoadBalancer" else "<none>"
            )
            if s.get("type") == "ExternalName":
                external = s.get("externalName", "<none>")
            selector = ",".join(f"{k}={v}" for k, v in (s.get("selector") or {}).items()) or "<none>"
            return [
                name(o),
                s.get("type", "ClusterIP"),
                s.get("clusterIP") or "<none>",
                external,
                _service_ports(s),
                created(o),
                selector,
            ]

        return [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            age,
            _col("Selector", 1),
        ], svc
    if kind == "Namespace":
        return [_col("Name", fmt="name"), _col("Status"), age], lambda o: [
            name(o),
            (o.get("status") or {}).get("phase", "Active"),
            created(o),
        ]
    if kind == "Node":

        def node(o: dict[str, Any]) -> list[Any]:
            st = o.get("status") or {}
            ready: dict[str, Any] = next(
                (c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            state = "Ready" if ready.get("status") == "True" else "NotReady"
            addresses = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
            info_ = st.get("nodeInfo") or {}
            return [
                name(o),
                state,
                "<none>",
                created(o),
                info_.get("kubeletVersion", ""),
                addresses.get("InternalIP", "<none>"),
                addresses.get("ExternalIP", "<none>"),
                info_.get("osImage", ""),
                info_.get("kernelVersion", ""),
                info_.get("containerRuntimeVersion", ""),
            ]

        return [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            age,
            _col("Version"),
            _col("Internal-IP", 1),
            _col("External-IP", 1),
            _col("OS-Image", 1),
            _col("Kernel-Version", 1),
            _col("Container-Runtime", 1),
        ], node
    if kind == "Endpoints":

        def endpoints(o: dict[str, Any]) -> list[Any]:
            addresses = [
                f"{a.get('ip')}:{p.get('port')}"
                for subset in o.get("subsets") or []
                for a in subset.get("addresses") or []
                for p in subset.get("ports") or [{}]
            ]
            shown = ",".join(addresses[:3]) + (
                f" + {len(addresses) - 3} more..." if len(addresses) > 3 else ""
            )
            return [name(o), shown or "<none>", created(o)]

        return [_col("Name", fmt="name"), _col("Endpoints"), age], endpoints
    if kind == "ConfigMap":
        return [_col("Name", fmt="name"), _col("Data", type_="integer"), age], lambda o: [
            name(o),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            created(o),
        ]
    if kind == "Secret":
        return [_col("Name", fmt="name"), _col("Type"), _col("Data", type_="integer"), age], lambda o: [
            name(o),
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            created(o),
        ]
    if kind == "Event":

        def event(o: dict[str, Any]) -> list[Any]:
            ref = o.get("involvedObject") or o.get("regarding") or {}
            last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
            obj = f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"
            return [
                _age(last),
                o.get("type", ""),
                o.get("reason", ""),
                obj,
                o.get("message") or o.get("note", ""),
            ]

        return [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], event
    if kind == "PersistentVolumeClaim":

        def pvc(o: dict[str, Any]) -> list[Any]:
            s, st = o.get("spec") or {}, o.get("status") or {}
            return [
                name(o),
                st.get("phase", "Pending"),
                s.get("volumeName", ""),
                (st.get("capacity") or {}).get("storage", ""),
                ",".join(
                    {
                        "ReadWriteOnce": "RWO",
                        "ReadOnlyMany": "ROX",
                        "ReadWriteMany": "RWX",
                        "ReadWriteOncePod": "RWOP",
                    }.get(m, m)
                    for m in st.get("accessModes") or []
                ),
                s.get("storageClassName") or "<unset>",
                "<unset>",
                created(o),
                s.get("volumeMode", ""),
            ]

        return [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            age,
            _col("VolumeMode", 1),
        ], pvc
    if kind == "Ingress":

        def ing(o: dict[str, Any]) -> list[Any]:
            s = o.get("spec") or {}
            hosts = ",".join(r.get("host", "*") for r in s.get("rules") or []) or "*"
            ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            address = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
            ports = "80, 443" if s.get("tls") else "80"
            return [name(o), s.get("ingressClassName") or "<none>", hosts, address, ports, created(o)]

        return [
            _col("Name", fmt="name"),
            _col("Class"),
            _col("Hosts"),
            _col("Address"),
            _col("Ports"),
            age,
        ], ing
    if kind == "StorageClass":

        def sc(o: dict[str, Any]) -> list[Any]:
            default = (o["metadata"].get("annotations") or {}).get(
                "storageclass.kubernetes.io/is-default-class"
            )
            return [
                name(o) + (" (default)" if default == "true" else ""),
                o.get("provisioner", ""),
                o.get("reclaimPolicy", "Delete"),
                o.get("volumeBindingMode", "Immediate"),
                bool(o.get("allowVolumeExpansion", False)),
                created(o),
            ]

        return [
            _col("Name", fmt="name"),
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion", type_="boolean"),
            age,
        ], sc
    return [_col("Name", fmt="name"), age], lambda o: [name(o), created(o)]


def _partial(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def to_table(
    info: ResourceInfo, objs: list[dict[str, Any]], rv: str, version: str, include: str
) -> dict[str, Any]:
    columns, row = _table_spec(info)
    rows = []
    for obj in objs:
        entry: dict[str, Any] = {"cells": row(obj)}
        if include == "Object":
            entry["object"] = obj
        elif include != "None":
            entry["object"] = _partial(obj, version)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": "", "priority": p} for n, t, p, f in columns
        ],
        "rows": rows,
    }


# ---- the server -----------------------------------------------------------------------------------------


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
        git_version: str = GIT_VERSION,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.authenticate = authenticate
        self.pod_logs = pod_logs
        self.git_version = git_version
        self._runner: web.AppRunner | None = None
        self._watches: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        log.info("API server of %s on %s", self.cluster, self.url)

    async def stop(self) -> None:
        self._closing.set()
        for task in list(self._watches):
            task.cancel()
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
            return _status_response(e)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path_qs)
            return _status_response(ApiError(f"Internal error occurred: {e}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return _json_response(self._version())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            return self._discovery(request, legacy=True)
        if path == "/apis":
            return self._discovery(request, legacy=False)
        if path == "/openapi/v3":
            return _json_response(openapi.v3_root())
        if path.startswith("/openapi/v3/"):
            return self._openapi_doc(path[len("/openapi/v3/") :])
        if path == "/openapi/v2":
            raise NotFound("the server could not find the requested resource")
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.api_group(parts[1])
            if doc is None:
                raise NotFound("the server could not find the requested resource")
            return _json_response(doc)
        else:
            raise NotFound("the server could not find the requested resource")
        if not rest:
            if request.method != "GET":
                raise MethodNotAllowed("the server does not allow this method on the requested resource")
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise NotFound("the server could not find the requested resource")
            return _json_response(doc)
        target = self._target(group, version, rest)
        return await self._resource(request, target)

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

    def _discovery(self, request: web.Request, *, legacy: bool) -> web.Response:
        for media, params in _media_ranges(request.headers.get("Accept", "")):
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
                    return _json_response(
                        doc, content_type=media_type, ETag=discovery.etag(doc), Vary="Accept"
                    )
            if media == JSON and "as" not in params:
                break
        return _json_response(
            discovery.api_versions() if legacy else discovery.api_group_list(), Vary="Accept"
        )

    def _openapi_doc(self, rest: str) -> web.Response:
        parts = rest.split("/")
        if parts[0] == "api" and len(parts) == 2:
            doc = openapi.v3_document("", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = openapi.v3_document(parts[1], parts[2])
        else:
            doc = None
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        response = _json_response(doc)
        response.headers["Cache-Control"] = "public, immutable"
        return response

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
            if not rest:
                raise NotFound("the server could not find the requested resource")
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise NotFound("the server could not find the requested resource")
        info = discovery.lookup((group, version, plural))
        if info is None or (namespace is not None and not info.namespaced):
            raise NotFound("the server could not find the requested resource")
        if sub is not None and sub not in info.subresources:
            raise NotFound("the server could not find the requested resource")
        if info.namespaced and name is not None and namespace is None:
            raise NotFound("the server could not find the requested resource")
        return Target(info, namespace, name, sub, watch_path)

    # -- resources --

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if t.subresource == "log":
            if method != "GET":
                raise MethodNotAllowed("the server does not allow this method on the requested resource")
            return await self._log(request, t, q)
        if t.subresource == "scale":
            return await self._scale(request, t)
        if t.name is None:
            if method == "GET":
                if t.watch_path or _truthy(q.get("watch")):
                    return await self._watch(request, t)
                return self._list(request, t)
            if method == "POST":
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        if t.watch_path and method == "GET":
            return await self._watch(request, t)
        if method == "GET":
            obj = self._get(t)
            return self._object_response(request, t, obj)
        if method == "PUT":
            return await self._update(request, t)
        if method == "PATCH":
            return await self._patch(request, t)
        if method == "DELETE":
            return await self._delete(request, t)
        raise MethodNotAllowed("the server does not allow this method on the requested resource")

    def _view(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        if t.info.group == "events.k8s.io":
            return event_from_core(obj)
        return obj

    def _get(self, t: Target) -> dict[str, Any]:
        assert t.name is not None
        obj = self.store.get(t.gvr, t.namespace, t.name)
        if obj is None:
            raise not_found(t.info.gvr, t.name)
        return self._view(t, obj)

    def _object_response(
        self,
        request: web.Request,
        t: Target,
        obj: dict[str, Any],
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> web.Response:
        _check_acceptable(request)
        headers: dict[str, str] = {}
        table = _wants_table(request)
        if table:
            doc = to_table(
                t.info,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                table,
                request.query.get("includeObject", "PartialObjectMetadata"),
            )
            response = _json_response(doc, status, content_type=f"{JSON};as=Table;v={table};g=meta.k8s.io")
        else:
            response = _json_response(obj, status)
        for w in warnings or []:
            response.headers.add("Warning", f"299 - {json.dumps(w)}")
        for k, v in headers.items():
            response.headers[k] = v
        return response

    def _list(self, request: web.Request, t: Target) -> web.Response:
        _check_acceptable(request)
        q = request.query
        field_selector = q.get("fieldSelector")
        if t.info.group == "events.k8s.io":
            field_selector = _event_selector(field_selector)
        items, rv = self.store.list(
            t.gvr, t.namespace, label_selector=q.get("labelSelector"), field_selector=field_selector
        )
        items = [self._view(t, i) for i in items]
        table = _wants_table(request)
        if table:
            doc = to_table(t.info, items, rv, table, q.get("includeObject", "PartialObjectMetadata"))
            return _json_response(doc, content_type=f"{JSON};as=Table;v={table};g=meta.k8s.io")
        if t.info.builtin:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return _json_response(
            {
                "kind": f"{t.info.kind}List",
                "apiVersion": t.info.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        rv = q.get("resourceVersion")
        send_initial = _truthy(q.get("sendInitialEvents"))
        initial = send_initial or rv in (None, "", "0")
        field_selector = q.get("fieldSelector")
        if t.info.group == "events.k8s.io":
            field_selector = _event_selector(field_selector)
        if t.name is not None:
            extra = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{extra}" if field_selector else extra
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(field_selector)
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else random.uniform(1800, 3600)
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        table = _wants_table(request)
        include = q.get("includeObject", "PartialObjectMetadata")

        response = web.StreamResponse(status=200)
        response.content_type = JSON if not table else f"{JSON};as=Table;v={table};g=meta.k8s.io"
        response.enable_chunked_encoding()

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            if table and event_type not in ("ERROR", "BOOKMARK"):
                obj = to_table(t.info, [obj], obj["metadata"].get("resourceVersion", ""), table, include)
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
            await response.write(line.encode())

        try:
            sub = self.store.subscribe(t.gvr, since=None if initial else rv)
        except Gone as e:
            await response.prepare(request)
            await send("ERROR", e.status())
            await response.write_eof()
            return response
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        visible: set[tuple[str, str]] = set()
        try:
            await response.prepare(request)
            last_rv = int(self.store.resource_version)
            if initial:
                items, list_rv = self.store.list(t.gvr, t.namespace)
                last_rv = int(list_rv)
                for item in items:
                    if labels(item) and fields(item):
                        visible.add((item["metadata"].get("namespace", ""), item["metadata"]["name"]))
                        await send("ADDED", self._view(t, item))
                if send_initial:
                    await send("BOOKMARK", self._bookmark(t, str(last_rv), initial_end=True))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._closing.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event_type, _, obj = await asyncio.wait_for(
                        sub.queue.get(), timeout=min(remaining, BOOKMARK_SECONDS)
                    )
                except TimeoutError:
                    if bookmarks and loop.time() < deadline:
                        await send("BOOKMARK", self._bookmark(t, self.store.resource_version))
                    continue
                meta = obj["metadata"]
                obj_rv = int(meta.get("resourceVersion", 0))
                if obj_rv <= last_rv and initial:
                    continue
                if t.namespace and meta.get("namespace") != t.namespace:
                    continue
                key = (meta.get("namespace", ""), meta["name"])
                matches = labels(obj) and fields(obj)
                if event_type == "DELETED":
                    if matches or key in visible:
                        visible.discard(key)
                        await send("DELETED", self._view(t, obj))
                    continue
                if matches:
                    if key not in visible and event_type == "MODIFIED" and initial:
                        event_type = "ADDED"
                    visible.add(key)
                    await send(event_type, self._view(t, obj))
                elif key in visible:
                    visible.discard(key)
                    await send("DELETED", self._view(t, obj))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:  # aiohttp's ClientConnectionResetError and friends: the client went away
            if "closing" not in str(e).lower() and "reset" not in str(e).lower():
                log.exception("watch of %s failed", t.info.qualified)
        finally:
            sub.close()
            if task is not None:
                self._watches.discard(task)
        return response

    def _bookmark(self, t: Target, rv: str, *, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": rv}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": t.info.kind, "apiVersion": t.info.api_version, "metadata": meta}

    # -- writes --

    async def _body(self, request: web.Request) -> Any:
        ctype = request.content_type
        raw = await request.read()
        if "protobuf" in ctype or "cbor" in ctype:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: {JSON}, "
                "application/yaml"
            )
        if not raw.strip():
            raise BadRequest("the request body is empty")
        try:
            if ctype in ("application/yaml", APPLY, "text/yaml"):
                try:
                    return json.loads(raw)
                except ValueError:
                    return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise BadRequest(f"error decoding the request body: {e}") from e

    def _manager(self, request: web.Request, *, required: bool = False) -> str:
        manager = request.query.get("fieldManager", "")
        if not manager:
            if required:
                raise BadRequest(
                    "PATCH requests with apply content type (application/apply-patch+yaml) "
                    "require fieldManager to be set"
                )
            agent = request.headers.get("User-Agent", "")
            manager = agent.split("/", 1)[0][:128]
        if len(manager) > 128:
            raise BadRequest("fieldManager: Too long: may not be longer than 128")
        return manager

    def _dry_run(self, request: web.Request, options: dict[str, Any] | None = None) -> bool:
        values = request.query.getall("dryRun", [])
        if options and options.get("dryRun"):
            values = [*values, *options["dryRun"]]
        for v in values:
            if v != "All":
                raise BadRequest(f'Invalid value: "{v}": supported values: "All"')
        return bool(values)

    def _check_identity(self, t: Target, obj: Any, *, require_name: bool) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise BadRequest("the request body must be a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != t.info.api_version:
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({t.info.api_version})"
            )
        if kind and kind != t.info.kind:
            raise BadRequest(
                f"the kind in the data ({kind}) does not match the expected kind ({t.info.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BadRequest("metadata must be an object")
        if t.namespace is not None:
            if meta.get("namespace") and meta["namespace"] != t.namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = t.namespace
        if t.name is not None:
            if meta.get("name") and meta["name"] != t.name:
                raise BadRequest(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})"
                )
            meta["name"] = t.name
        elif require_name and not meta.get("name") and not meta.get("generateName"):
            raise invalid(
                t.info.gvr,
                "",
                [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
            )
        obj["apiVersion"], obj["kind"] = t.info.api_version, t.info.kind
        return obj

    def _field_validation(self, request: web.Request, t: Target, obj: dict[str, Any]) -> list[str]:
        mode = request.query.get("fieldValidation", "Warn")
        if mode not in ("Ignore", "Warn", "Strict"):
            raise BadRequest(
                f'fieldValidation: Invalid value: "{mode}": must be one of Ignore, Warn or Strict'
            )
        unknown = openapi.unknown_fields(t.info.gvr, obj)
        if not unknown:
            return []
        if mode == "Strict":
            fields = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise BadRequest(
                f'{t.info.kind} in version "{t.info.version}" cannot be handled as a {t.info.kind}: '
                f"strict decoding error: {fields}"
            )
        openapi.drop_unknown(t.info.gvr, obj, unknown)
        return [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []

    def _to_storage(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        return event_to_core(obj) if t.info.group == "events.k8s.io" else obj

    def _admit(self, t: Target, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Defaulting, allocation and validation of a write to the main resource (storage form)."""
        gvr = t.gvr
        info = discovery.info_for(gvr)
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        if info.namespaced and old is None:
            if self.store.get(NAMESPACES, None, str(namespace)) is None:
                raise not_found(NAMESPACES, str(namespace))
            if self.store.terminating(str(namespace)):
                raise Forbidden(
                    f'{info.qualified} "{meta.get("name") or meta.get("generateName") or ""}" is forbidden: '
                    f"unable to create new content in namespace {namespace} because it is being terminated",
                    details={
                        "name": meta.get("name", ""),
                        "kind": info.plural,
                        "causes": [
                            {
                                "reason": "NamespaceTerminating",
                                "field": "metadata.namespace",
                                "message": f"namespace {namespace} is being terminated",
                            }
                        ],
                    },
                )
        if old is None:
            openapi.initial_status(gvr, obj)
        openapi.apply_defaults(gvr, obj)
        if info.kind == "Secret" and info.builtin and obj.get("stringData"):
            data = dict(obj.get("data") or {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        if info.kind == "PersistentVolumeClaim" and info.builtin and old is None:
            spec = obj.setdefault("spec", {})
            if "storageClassName" not in spec:
                default = self._default_storage_class()
                if default:
                    spec["storageClassName"] = default
        causes = openapi.validate(gvr, obj, old)
        if info.kind == "Service" and info.builtin and not causes:
            causes = self._allocate_service(obj, old)
        if causes:
            raise invalid(gvr, str(meta.get("name") or meta.get("generateName") or ""), causes)
        return obj

    def _default_storage_class(self) -> str | None:
        classes, _ = self.store.list(STORAGECLASSES)
        for sc in classes:
            annotations = sc["metadata"].get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
                return str(sc["metadata"]["name"])
        return None

    def _allocate_service(
        self, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[tuple[str, str, str]]:
        spec = obj.setdefault("spec", {})
        services, _ = self.store.list(SERVICES)
        me = (obj["metadata"].get("namespace"), obj["metadata"].get("name"))
        others = [s for s in services if (s["metadata"].get("namespace"), s["metadata"]["name"]) != me]
        old_spec = (old or {}).get("spec") or {}
        causes: list[tuple[str, str, str]] = []
        stype = spec.get("type", "ClusterIP")
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            used = {s.get("spec", {}).get("clusterIP") for s in others}
            ip = spec.get("clusterIP") or old_spec.get("clusterIP")
            if not ip:
                hosts = list(SERVICE_CIDR.hosts())
                free = [str(h) for h in hosts[9:] if str(h) not in used]
                ip = random.choice(free)
            elif ip != "None":
                try:
                    address = ipaddress.ip_address(ip)
                except ValueError:
                    address = None
                if address is None or address not in SERVICE_CIDR:
                    causes.append(
                        (
                            "FieldValueInvalid",
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: the provided '
                            f"IP ({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}",
                        )
                    )
                elif ip in used and ip != old_spec.get("clusterIP"):
                    causes.append(
                        (
                            "FieldValueInvalid",
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP '
                            "is already allocated",
                        )
                    )
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        ports = spec.get("ports") or []
        if stype in ("NodePort", "LoadBalancer"):
            used_ports = {
                p.get("nodePort")
                for s in others
                for p in (s.get("spec") or {}).get("ports") or []
                if p.get("nodePort")
            }
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or []
            }
            mine: set[int] = set()
            for i, port in enumerate(ports):
                wanted = port.get("nodePort")
                if wanted:
                    if wanted in used_ports or wanted in mine:
                        causes.append(
                            (
                                "FieldValueInvalid",
                                f"spec.ports[{i}].nodePort",
                                f"Invalid value: {wanted}: provided port is already allocated",
                            )
                        )
                    mine.add(wanted)
                    continue
                previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if previous and previous not in used_ports and previous not in mine:
                    port["nodePort"] = previous
                else:
                    free_ports = [p for p in NODE_PORTS if p not in used_ports and p not in mine]
                    port["nodePort"] = random.choice(free_ports)
                mine.add(port["nodePort"])
        else:
            for port in ports:
                port.pop("nodePort", None)
        return causes

    async def _create(self, request: web.Request, t: Target) -> web.Response:
        body = self._check_identity(t, await self._body(request), require_name=True)
        dry_run = self._dry_run(request)
        warnings = self._field_validation(request, t, body)
        manager = self._manager(request)
        obj = self._admit(t, self._to_storage(t, body), None)
        created = self.store.create(t.gvr, obj, manager=manager, dry_run=dry_run)
        return self._object_response(request, t, self._view(t, created), 201, warnings)

    async def _update(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        body = self._check_identity(t, await self._body(request), require_name=False)
        dry_run = self._dry_run(request)
        warnings = self._field_validation(request, t, body)
        manager = self._manager(request)
        old = self.store.get(t.gvr, t.namespace, t.name)
        if old is None:
            raise not_found(t.info.gvr, t.name)
        obj = self._to_storage(t, body)
        if t.subresource != "status":
            obj = self._admit(t, obj, old)
        updated = self.store.update(t.gvr, obj, manager=manager, subresource=t.subresource, dry_run=dry_run)
        return self._object_response(request, t, self._view(t, updated), 200, warnings)

    async def _patch(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        ctype = request.content_type
        if ctype not in (APPLY, MERGE, STRATEGIC, JSONPATCH):
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{JSONPATCH}, {MERGE}, {APPLY}" + ("" if not t.info.builtin else f", {STRATEGIC}")
            )
        if ctype == STRATEGIC and not t.info.builtin:
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{JSONPATCH}, {MERGE}, {APPLY}"
            )
        patch = await self._body(request)
        dry_run = self._dry_run(request)
        force = _truthy(request.query.get("force"))
        if force and ctype != APPLY:
            raise BadRequest("force: Invalid value: true: may not be specified for non-apply patch")
        manager = self._manager(request, required=ctype == APPLY)
        warnings: list[str] = []
        for attempt in range(PATCH_ATTEMPTS):
            old = self.store.get(t.gvr, t.namespace, t.name)
            try:
                if ctype == APPLY:
                    result, warnings = self._apply(request, t, old, patch, manager, force, dry_run)
                else:
                    if old is None:
                        raise not_found(t.info.gvr, t.name)
                    result, warnings = self._patch_once(request, t, old, patch, ctype, manager, dry_run)
            except Conflict:
                if attempt == PATCH_ATTEMPTS - 1 or (isinstance(patch, dict) and _patch_rv(patch)):
                    raise
                continue
            status = 201 if old is None and not dry_run else 200
            return self._object_response(request, t, self._view(t, result), status, warnings)
        raise AssertionError("unreachable")

    def _patch_once(
        self,
        request: web.Request,
        t: Target,
        old: dict[str, Any],
        patch: Any,
        ctype: str,
        manager: str,
        dry_run: bool,
    ) -> tuple[dict[str, Any], list[str]]:
        current = self._view(t, old)
        try:
            if ctype == MERGE:
                patched = ssa.merge_patch(current, patch)
            elif ctype == STRATEGIC:
                patched = ssa.strategic_merge_patch(t.info.gvr, current, patch)
            else:
                patched = ssa.json_patch(current, patch)
        except ssa.PatchError as e:
            if e.invalid:
                raise invalid(t.info.gvr, t.name or "", [("FieldValueInvalid", "", str(e))]) from e
            raise BadRequest(str(e)) from e
        if not isinstance(patched, dict):
            raise BadRequest("the patched object is not a JSON object")
        patched = self._check_identity(t, patched, require_name=False)
        meta = patched["metadata"]
        meta.setdefault("resourceVersion", old["metadata"]["resourceVersion"])
        if not meta.get("resourceVersion"):
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        warnings = self._field_validation(request, t, patched)
        obj = self._to_storage(t, patched)
        if t.subresource != "status":
            obj = self._admit(t, obj, old)
        updated = self.store.update(t.gvr, obj, manager=manager, subresource=t.subresource, dry_run=dry_run)
        return updated, warnings

    def _apply(
        self,
        request: web.Request,
        t: Target,
        old: dict[str, Any] | None,
        patch: Any,
        manager: str,
        force: bool,
        dry_run: bool,
    ) -> tuple[dict[str, Any], list[str]]:
        if not isinstance(patch, dict):
            raise BadRequest("the applied configuration must be an object")
        if not patch.get("apiVersion") or not patch.get("kind"):
            raise BadRequest(
                f"invalid object type: {patch.get('apiVersion', '')}, Kind={patch.get('kind', '')}"
            )
        applied = self._check_identity(t, patch, require_name=False)
        warnings = self._field_validation(request, t, applied)
        applied = self._to_storage(t, applied)
        live = old
        try:
            merged = ssa.apply(
                t.gvr,
                live,
                applied,
                manager=manager,
                force=force,
                now=now_rfc3339(),
                subresource=t.subresource,
            )
        except ssa.ApplyConflict as e:
            details: dict[str, Any] = {"name": t.name, "kind": t.info.plural, "causes": e.causes()}
            if t.info.group:
                details["group"] = t.info.group
            raise Conflict(e.message(), details=details) from e
        except ssa.PatchError as e:
            raise BadRequest(
                f"failed to create typed patch object ({t.namespace + '/' if t.namespace else ''}{t.name}; "
                f"{t.info.api_version}, Kind={t.info.kind}): {e}"
            ) from e
        managed = merged["metadata"].get("managedFields") or []
        if old is None:
            if t.subresource:
                raise not_found(t.info.gvr, t.name or "")
            obj = self._admit(t, merged, None)
            return self.store.create(
                t.gvr, obj, manager=manager, dry_run=dry_run, managed_fields=managed
            ), warnings
        merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if t.subresource != "status":
            merged = self._admit(t, merged, old)
        updated = self.store.update(
            t.gvr, merged, manager=manager, subresource=t.subresource, dry_run=dry_run, managed_fields=managed
        )
        return updated, warnings

    async def _delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        if t.subresource:
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        options = await self._delete_options(request)
        dry_run = self._dry_run(request, options)
        propagation = self._propagation(request, options)
        pre = options.get("preconditions") or {}
        deleted = self.store.delete(
            t.gvr,
            t.namespace,
            t.name,
            propagation=propagation,
            dry_run=dry_run,
            uid=pre.get("uid"),
            resource_version=pre.get("resourceVersion"),
        )
        if deleted is None:
            raise not_found(t.info.gvr, t.name)
        still_there = self.store.get(t.gvr, t.namespace, t.name)
        if still_there is not None and not dry_run:
            return self._object_response(request, t, self._view(t, still_there))
        details: dict[str, Any] = {
            "name": t.name,
            "kind": t.info.plural,
            "uid": deleted["metadata"].get("uid"),
        }
        if t.info.group:
            details["group"] = t.info.group
        return _json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            options = json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"error decoding DeleteOptions: {e}") from e
        return options if isinstance(options, dict) else {}

    def _propagation(self, request: web.Request, options: dict[str, Any]) -> str:
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = policy or "Orphan"
        policy = policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise BadRequest(f'propagationPolicy: Unsupported value: "{policy}"')
        return str(policy)

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        options = await self._delete_options(request)
        dry_run = self._dry_run(request, options)
        propagation = self._propagation(request, options)
        items, rv = self.store.list(
            t.gvr,
            t.namespace,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        deleted = []
        for item in items:
            meta = item["metadata"]
            gone = self.store.delete(
                t.gvr, meta.get("namespace"), meta["name"], propagation=propagation, dry_run=dry_run
            )
            if gone is not None:
                deleted.append(self._view(t, gone))
        return _json_response(
            {
                "kind": f"{t.info.kind}List",
                "apiVersion": t.info.api_version,
                "metadata": {"resourceVersion": rv},
                "items": deleted,
            }
        )

    # -- subresources --

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        obj = self.store.get(t.gvr, t.namespace, t.name)
        if obj is None:
            raise not_found(t.info.gvr, t.name)
        if request.method == "GET":
            return _json_response(_to_scale(obj))
        if request.method not in ("PUT", "PATCH"):
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        body = await self._body(request)
        scale = _to_scale(obj)
        ctype = request.content_type
        try:
            if request.method == "PUT":
                new_scale = body
            elif ctype == JSONPATCH:
                new_scale = ssa.json_patch(scale, body)
            elif ctype in (MERGE, STRATEGIC, APPLY):
                new_scale = ssa.merge_patch(scale, body)
            else:
                raise UnsupportedMediaType(f"unsupported patch type {ctype}")
        except ssa.PatchError as e:
            raise BadRequest(str(e)) from e
        replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                t.info.gvr,
                t.name,
                [
                    (
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    )
                ],
            )
        rv = ((new_scale or {}).get("metadata") or {}).get("resourceVersion")
        obj["spec"]["replicas"] = replicas
        if not rv:
            obj["metadata"].pop("resourceVersion", None)
        else:
            obj["metadata"]["resourceVersion"] = rv
        updated = self.store.update(
            t.gvr, obj, manager=self._manager(request), dry_run=self._dry_run(request)
        )
        return _json_response(_to_scale(updated))

    async def _log(self, request: web.Request, t: Target, q: Any) -> web.StreamResponse:
        assert t.name is not None and t.namespace is not None
        pod = self.store.get(t.gvr, t.namespace, t.name)
        if pod is None:
            raise not_found(t.info.gvr, t.name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        container = q.get("container")
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            if default:
                container = default
            elif len(containers) == 1:
                container = containers[0]
            else:
                raise BadRequest(
                    f"a container name must be specified for pod {t.name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
        if container not in containers and container not in init:
            raise BadRequest(f"container {container} is not valid for pod {t.name}")
        if self.pod_logs is None:
            raise BadRequest(
                f'container "{container}" in pod "{t.name}" is waiting to start: ContainerCreating'
            )
        tail = int(q["tailLines"]) if q.get("tailLines") else -1
        previous = _truthy(q.get("previous"))
        loop = asyncio.get_running_loop()
        try:
            text = await loop.run_in_executor(
                None, self.pod_logs, t.namespace, t.name, str(container), tail, previous
            )
        except ApiError:
            raise
        except Exception as e:
            raise BadRequest(str(e) or f'container "{container}" in pod "{t.name}" is not available') from e
        if not _truthy(q.get("follow")):
            return web.Response(text=text, content_type="text/plain")
        return await self._follow(request, t, str(container), text)

    async def _follow(self, request: web.Request, t: Target, container: str, text: str) -> web.StreamResponse:
        """``kubectl logs -f``: what the container writes from now on, until the pod goes or the client."""
        assert t.name is not None and t.namespace is not None and self.pod_logs is not None
        response = web.StreamResponse(status=200)
        response.content_type = "text/plain"
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        try:
            await response.write(text.encode())
            seen = await loop.run_in_executor(None, self.pod_logs, t.namespace, t.name, container, -1, False)
            while not self._closing.is_set():
                await asyncio.sleep(LOG_POLL_SECONDS)
                if self.store.get(t.gvr, t.namespace, t.name) is None:
                    break
                try:
                    now = await loop.run_in_executor(
                        None, self.pod_logs, t.namespace, t.name, container, -1, False
                    )
                except Exception:
                    break  # the container went (restarted or removed): kubectl ends as with a real kubelet
                if now.startswith(seen) and len(now) > len(seen):
                    await response.write(now[len(seen) :].encode())
                seen = now
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:
            if "closing" not in str(e).lower() and "reset" not in str(e).lower():
                log.exception("following the log of %s/%s failed", t.namespace, t.name)
        finally:
            if task is not None:
                self._watches.discard(task)
        return response


def _patch_rv(patch: dict[str, Any]) -> str | None:
    meta = patch.get("metadata")
    return meta.get("resourceVersion") if isinstance(meta, dict) else None


def _to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": _selector_text(selector) if selector else "",
        },
    }


__all__ = ["GIT_VERSION", "ApiServer", "to_table"]
