"""The pipeline's only border with the ``kubernetes`` client: a small typed API over one cluster.

:func:`connect` builds a :class:`Kube` either from a :class:`~pipeline.access.ClusterAccess` (GKE: server,
CA and a token source asked for a token before every request) or from a kubeconfig :class:`KubeContext`.
Objects are plain dicts in and out; kinds are found by dynamic discovery, so custom resources need no
generated model; watches reconnect (a stream that ends, times out, answers 401 or 410 Gone is reopened from
the last resourceVersion, re-listing after 410). Every client exception becomes a :class:`KubeError`
subclass with one actionable line (``raise ... from e``); connection failures are
:class:`~pipeline.errors.TemporaryError`.

The package, by concern: ``client`` (:class:`Kube`, :func:`connect`, :func:`opened`), ``session`` (the
authenticated ``ApiClient`` and its requests), ``discovery`` (kinds -> :class:`Resource`), ``watch``
(:class:`WatchStream`) and ``errors`` (:func:`translate` and the connection-error lines). No other
pipeline module imports ``kubernetes``, and this package does not import ``gke``: both meet in
``access``. The exception classes live in ``pipeline.errors`` and are re-exported here, as are the names
``apply`` (stage 4), ``rollout`` (stage 5), ``release`` and the tests import from ``pipeline.kube``.
"""

from __future__ import annotations

from ..access import Access, ClusterAccess, KubeContext
from ..errors import (
    KubeAuthError,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeGone,
    KubeInvalid,
    KubeNotFound,
    KubeUnreachable,
    UnknownKind,
)
from .client import Kube, connect, opened, ref
from .discovery import Resource
from .errors import translate
from .session import REQUEST_TIMEOUT_SECONDS, preload
from .watch import WATCH_RECONNECTS, WATCH_WINDOW_SECONDS, WatchEvent, WatchStream

__all__ = [
    "REQUEST_TIMEOUT_SECONDS",
    "WATCH_RECONNECTS",
    "WATCH_WINDOW_SECONDS",
    "Access",
    "ClusterAccess",
    "Kube",
    "KubeAuthError",
    "KubeConflict",
    "KubeContext",
    "KubeError",
    "KubeForbidden",
    "KubeGone",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnreachable",
    "Resource",
    "UnknownKind",
    "WatchEvent",
    "WatchStream",
    "connect",
    "opened",
    "preload",
    "ref",
    "translate",
]
