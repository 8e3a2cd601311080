"""Which kinds a cluster serves, and where: kubectl's RESTMapper, from the API server's discovery documents.

:class:`Discovery` answers "apiVersion and kind -> :class:`Resource`" (plural, namespaced, the URL path)
through ``kubernetes.dynamic``, so custom resources such as GKE's ManagedCertificate need no generated
model; a kind the cluster does not serve is :class:`~pipeline.errors.UnknownKind`. Answers are cached
per client, and forgotten on request (after CRDs are applied).

Neighbours: ``kube.client`` asks it before every typed call; it sends its requests through
``kube.session``. The client library is imported lazily.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownKind
from .session import ApiSession


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


class Discovery:
    """The kinds of one cluster, discovered on first use; :meth:`close` removes the on-disk cache."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session
        # Discovery's cache, per client: a shared one (the library's default, keyed by host) could be
        # stale for another cluster at the same address (two sandboxes, a recreated cluster).
        self._tmp = tempfile.mkdtemp(prefix="campus-pipeline-kube-")
        # The kubernetes.dynamic.DynamicClient: unannotated in the client library.
        self._dyn: Any = None
        self._resources: dict[tuple[str, str], Resource] = {}

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _dynamic(self) -> Any:
        """The ``DynamicClient`` (created on first use: it runs discovery)."""
        if self._dyn is None:
            from kubernetes import dynamic

            dynamic_client: Any = dynamic.DynamicClient
            cache = f"{self._tmp}/discovery.json"
            api = self._session.api
            self._dyn = self._session.call(
                f"connecting to {self._session.description}",
                lambda: dynamic_client(api, cache_file=cache),
                verb="get",
                resource="the discovery API",
            )
        return self._dyn

    def resource(self, api_version: str, kind: str) -> Resource:
        """The kind as this cluster serves it; :class:`UnknownKind` when it does not."""
        key = (api_version, kind)
        if key in self._resources:
            return self._resources[key]
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        dyn = self._dynamic()
        try:
            found = self._session.call(
                f"discovering {kind} ({api_version})",
                lambda: dyn.resources.get(api_version=api_version, kind=kind),
                verb="get",
                resource="the discovery API",
            )
        except (ResourceNotFoundError, ResourceNotUniqueError) as e:
            raise UnknownKind(
                f"{self._session.description} does not serve {kind} ({api_version})",
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

        dyn = self._dynamic()
        try:
            found = self._session.call(
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
                f"{self._session.description} does not serve {kind}.{group}",
                "Install its CustomResourceDefinition",
            )
        best = next((r for r in found if r.preferred), found[0])
        return self.resource(str(best.group_version), kind)

    def forget(self) -> None:
        """Forget discovered kinds (after applying CRDs, so that their kinds can be found)."""
        self._resources.clear()
        if self._dyn is not None:
            self._dyn.resources.invalidate_cache()
