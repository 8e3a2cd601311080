"""One cluster's object store: what etcd and the generic registry of kube-apiserver do, in memory.

Objects are plain dicts keyed by ``(gvr, namespace, name)``. The store keeps the metadata Kubernetes
maintains (``uid``, ``creationTimestamp``, a cluster-wide increasing ``resourceVersion``, ``generation``
bumped on changes outside ``metadata`` and ``status``, ``managedFields`` for Update operations), splits
status writes from spec writes for kinds with a ``status`` subresource, honours finalizers and owner
references on delete (garbage collection with background, foreground or orphan propagation), filters by
label and field selectors, fans every change out to subscribers (watches and controllers) and keeps a
bounded history so that a watch from a recent resourceVersion replays what it missed (an older one gets
410 Gone). State is written to ``<home>/kube/<cluster>/objects.json`` atomically, debounced, so that it
survives a restart of the daemon.

Modules, one concern each:

- ``core.py``: :class:`Store`, reads, creates and updates (on top of ``deletion.py`` and ``base.py``);
- ``deletion.py``: finalizers, garbage collection of dependents, namespace termination;
- ``base.py``: the state, the resourceVersion counter and the commit of a change;
- ``metadata.py``: the server-maintained metadata, as pure functions;
- ``watch.py``: :class:`Subscription` and the replay of the history;
- ``persistence.py``: ``objects.json``, debounced and atomic;
- ``selectors.py``: label and field selectors;
- ``errors.py``: :class:`ApiError` and its subclasses, each a ``Status`` on the wire;
- ``kinds.py``: the GVRs the sandbox names, and the key types.

Neighbours: ``apiserver/`` (admission: defaulting, validation, server-side apply through ``ssa/``)
and the controllers (``controllers/``) both read and write through this interface; every method is
thread-safe, and subscriptions deliver into asyncio queues of the loop that subscribed.
"""

from __future__ import annotations

from ..discovery import GVR
from .base import HISTORY
from .core import Store
from .deletion import NAMESPACE_CLEANUP_SECONDS, Dependents
from .errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
    already_exists,
    conflict,
    invalid,
    not_found,
)
from .kinds import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    INGRESSES,
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    PVS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    STORAGECLASSES,
    Key,
    Objects,
)
from .metadata import generate_suffix, now_rfc3339
from .persistence import SAVE_DELAY_SECONDS
from .selectors import Matcher, field_value, parse_field_selector, parse_label_selector
from .watch import Event, Subscription

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "EVENTS",
    "GVR",
    "HISTORY",
    "INGRESSES",
    "NAMESPACES",
    "NAMESPACE_CLEANUP_SECONDS",
    "NODES",
    "PODS",
    "PVCS",
    "PVS",
    "REPLICASETS",
    "SAVE_DELAY_SECONDS",
    "SECRETS",
    "SERVICES",
    "STORAGECLASSES",
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Dependents",
    "Event",
    "Forbidden",
    "Gone",
    "Invalid",
    "Key",
    "Matcher",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "Objects",
    "Store",
    "Subscription",
    "Unauthorized",
    "UnsupportedMediaType",
    "already_exists",
    "conflict",
    "field_value",
    "generate_suffix",
    "invalid",
    "not_found",
    "now_rfc3339",
    "parse_field_selector",
    "parse_label_selector",
]
