"""The typed API over one cluster that the stages use: :class:`Kube` and :func:`connect`.

:func:`connect` turns an :data:`~pipeline.access.Access` into a :class:`Kube`, which offers what the
stages need and nothing else: kind lookup (:meth:`Kube.resource`), server-side apply, get, list, delete,
watch (a reconnecting :class:`~pipeline.kube.watch.WatchStream`), pod logs, exec (``kube.podexec``) and
the events of an object.
Objects are plain dicts in and out (:data:`~pipeline.base.Obj`); every failure is a one-line
:class:`~pipeline.errors.KubeError`, connection failures a :class:`~pipeline.errors.TemporaryError`.

Neighbours: ``apply`` (stage 4), ``rollout`` (stage 5) and ``release`` use it, through the package's
``__init__``. It builds on ``kube.session`` (requests and authentication), ``kube.discovery`` (kinds)
and ``kube.watch`` (streams), and redacts Secret values with ``kube.errors``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

from ..access import Access
from ..base import Obj
from ..errors import KubeInvalid, KubeNotFound
from . import podexec
from .discovery import Discovery, Resource
from .errors import secret_values
from .podexec import ExecResult
from .session import REQUEST_TIMEOUT_SECONDS, ApiSession
from .watch import WATCH_WINDOW_SECONDS, Selection, WatchStream


def ref(obj: Obj) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for messages."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


def _where(namespace: str | None, resource: Resource) -> str:
    return namespace + "/" if namespace and resource.namespaced else ""


class Kube:
    """One cluster's API, for the duration of a stage. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, access: Access, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.access = access
        self.description = access.description
        self._session = ApiSession(access, request_timeout)
        self._discovery = Discovery(self._session)
        self.server = self._session.server

    @property
    def request_timeout(self) -> float:
        return self._session.request_timeout

    @property
    def auth_hint(self) -> str:
        return self._session.auth_hint

    def close(self) -> None:
        self._session.close()
        self._discovery.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- kinds ---------------------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        """The kind as this cluster serves it; :class:`~pipeline.errors.UnknownKind` when it does not."""
        return self._discovery.resource(api_version, kind)

    def resource_in_group(self, group: str, kind: str) -> Resource:
        """The kind in its group's preferred version (for group-kinds recorded without a version)."""
        return self._discovery.resource_in_group(group, kind)

    def forget_discovery(self) -> None:
        """Forget discovered kinds (after applying CRDs, so that their kinds can be found)."""
        self._discovery.forget()

    # --- calls ---------------------------------------------------------------------------------------------

    def version(self) -> Obj:
        """The server's /version document (proves we are reachable and authenticated)."""
        data = self._session.request("GET", "/version", doing=f"connecting to {self.description}")
        return data if isinstance(data, dict) else {}

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
        query: list[tuple[str, str | int]] = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        redact = secret_values(obj)
        result = self._session.request(
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
            result = self._session.request(
                "GET",
                resource.path(namespace if resource.namespaced else None, name),
                doing=f"reading {kind} {_where(namespace, resource)}{name}",
                verb="get",
                resource=resource.plural,
            )
        except KubeNotFound:
            return None
        return result if isinstance(result, dict) else None

    def create(self, obj: Obj) -> Obj:
        """``POST`` a new object; :class:`~pipeline.errors.KubeConflict` (409) when the name is taken."""
        return self._write("POST", obj, "creating", "create")

    def replace(self, obj: Obj) -> Obj:
        """``PUT`` the whole object. With ``metadata.resourceVersion`` set the server refuses (409,
        :class:`~pipeline.errors.KubeConflict`) when the object changed since it was read: the optimistic
        concurrency a Lease relies on."""
        return self._write("PUT", obj, "updating", "update")

    def _write(self, method: str, obj: Obj, doing: str, verb: str) -> Obj:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if resource.namespaced else None
        name = meta["name"] if method == "PUT" else None
        result = self._session.request(
            method,
            resource.path(namespace, name),
            doing=f"{doing} {ref(obj)} in {self.description}",
            body=obj,
            verb=verb,
            resource=f"{resource.plural}{'.' + resource.group if resource.group else ''}",
        )
        return result if isinstance(result, dict) else {}

    def list_resource(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """Items (each with kind and apiVersion filled in) and the list's resourceVersion."""
        query: list[tuple[str, str | int]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        where = f" in {namespace}" if namespace and resource.namespaced else ""
        # A list is always a JSON object (a non-object fails at .get, as it always did).
        result = cast(
            Obj,
            self._session.request(
                "GET",
                resource.path(namespace if resource.namespaced else None),
                doing=f"listing {resource.plural}{where}",
                query=query,
                verb="list",
                resource=resource.plural,
            ),
        )
        items: list[Obj] = list(result.get("items") or [])
        for item in items:
            # Lists omit kind/apiVersion on their items; callers want whole objects.
            item.setdefault("kind", resource.kind)
            item.setdefault("apiVersion", resource.api_version)
        return items, str((result.get("metadata") or {}).get("resourceVersion", ""))

    def list_path(self, path: str, label_selector: str) -> list[Obj]:
        """The items at a list path (as :meth:`Resource.path` made it), with kind and apiVersion filled in."""
        result = cast(
            Obj,
            self._session.request(
                "GET", path, doing=f"listing {path}", query=[("labelSelector", label_selector)], verb="list"
            ),
        )
        kind = str(result.get("kind", "")).removesuffix("List")
        items: list[Obj] = list(result.get("items") or [])
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", result.get("apiVersion", ""))
        return items

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
        query: list[tuple[str, str | int]] = [("propagationPolicy", propagation)]
        if dry_run:
            query.append(("dryRun", "All"))
        try:
            self._session.request(
                "DELETE",
                resource.path(namespace if resource.namespaced else None, name),
                doing=f"{'dry-run ' if dry_run else ''}deleting {kind} {_where(namespace, resource)}{name}",
                query=query,
                verb="delete",
                resource=resource.plural,
            )
        except KubeNotFound:
            return False
        return True

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
        selection = Selection(namespace, label_selector, f"metadata.name={name}" if name else None)

        def relist() -> tuple[list[Obj], str]:
            return self.list_resource(
                resource,
                namespace=selection.namespace,
                label_selector=selection.label_selector,
                field_selector=selection.field_selector,
            )

        what = f"{kind} {namespace + '/' if namespace else ''}{name or label_selector or ''}".strip()
        return WatchStream(
            self._session,
            resource,
            selection,
            relist,
            deadline=time.monotonic() + timeout,
            resource_version=resource_version,
            doing=f"watching {what}",
            window=window,
        )

    def pod_logs(
        self, namespace: str, pod: str, container: str, *, tail: int = 20, previous: bool = False
    ) -> list[str]:
        """The last ``tail`` log lines of a container (of its previous instance with ``previous``)."""
        query: list[tuple[str, str | int]] = [("container", container), ("tailLines", tail)]
        if previous:
            query.append(("previous", "true"))
        text = self._session.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            doing=f"reading the logs of {namespace}/{pod} ({container})",
            query=query,
            verb="get",
            resource="pods/log",
            raw=True,
        )
        return [line for line in str(text).splitlines() if line.strip()][-tail:]

    def exec(self, namespace: str, pod: str, container: str, cmd: Sequence[str], **opts: Any) -> ExecResult:
        """Run a command in a pod's container (``kubectl exec -i``; options: podexec.run's)."""
        return podexec.run(self._session, namespace, pod, container, cmd, **opts)

    def events_for(self, obj: Obj, *, limit: int = 10) -> list[Obj]:
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


def _event_time(event: Obj) -> tuple[str, int]:
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
