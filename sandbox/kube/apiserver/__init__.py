"""One cluster's Kubernetes API server: HTTPS, bearer tokens, and the REST subset kubectl and clients use.

For every resource of ``discovery.RESOURCES``: get, list, watch, create, update, patch (JSON merge,
strategic merge, JSON patch, server-side apply via ``ssa/``), delete (with propagation and
deletecollection), the ``status`` and ``scale`` subresources and Pod ``log``; plus ``/version``, health,
discovery and ``/openapi/v3``. The package, by concern:

- ``server.py``: :class:`ApiServer`, the aiohttp app, auth, routing, get and list;
- ``negotiation.py``: ``Accept`` and ``Content-Type``, JSON and Status answers;
- ``target.py``: what a URL names; ``events.py``: the events.k8s.io/v1 view of core Events;
- ``watch.py``: watch streams (resume, 410 Expired, bookmarks, timeouts, selectors);
- ``writes.py``: create, update, patch, apply, delete; ``subresources.py``: ``scale`` and ``log``;
- ``admission.py``: field validation, defaulting, validation, Service clusterIP and nodePort allocation;
- ``tables.py``: ``kubectl get``'s Table output, one printer per kind.

Neighbours: ``service.py`` starts one :class:`ApiServer` per cluster; ``store/`` holds the objects.
"""

from __future__ import annotations

from .server import GIT_VERSION, ApiServer
from .tables import to_table

__all__ = ["GIT_VERSION", "ApiServer", "to_table"]
