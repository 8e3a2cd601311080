"""Label-selected lists from one API server over plain HTTPS, several at once: the no-op check's reads.

The ``kubernetes`` client takes most of a second to import; the no-op check needs a handful of GETs of
known paths (the ApplySet parent, then one list per recorded kind and namespace). :class:`Reader` sends
them with ``http.client`` over TLS checked against the cluster's CA, with the access's bearer token,
from a few threads with a kept-alive connection each, so that under network latency they cost about one
round trip together rather than one each. Read-only, and only for a
:class:`~pipeline.access.ClusterAccess`; any failure is a :class:`~pipeline.errors.KubeError` and the
caller takes the full path.

Neighbours: ``noop`` uses it; ``kube.client`` is the full client for everything else.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..access import ClusterAccess
from ..base import Obj
from ..errors import KubeError

TIMEOUT_SECONDS = 15.0
# Enough to overlap a set's lists; more threads would mostly add TLS handshakes.
PARALLEL = 4


class Reader:
    """GETs of one cluster's API; use as a context manager."""

    def __init__(self, access: ClusterAccess) -> None:
        parts = urllib.parse.urlsplit(access.server)
        self._host = parts.netloc
        self._token = access.tokens.token()
        self._context = ssl.create_default_context(cadata=access.ca_pem)
        self._local = threading.local()
        self._conns: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="kube-lite")

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        for conn in self._conns:
            conn.close()

    def _conn(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self._host, timeout=TIMEOUT_SECONDS, context=self._context)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def get(self, path: str, label_selector: str = "") -> Any:
        query = f"?{urllib.parse.urlencode({'labelSelector': label_selector})}" if label_selector else ""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request("GET", path + query, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()  # a kept-alive connection the server closed: reopen once
                self._local.conn = None
                if attempt == 2:
                    raise KubeError(f"reading {path}: {type(e).__name__}", "Check the cluster") from None
        if response.status != 200:
            raise KubeError(f"reading {path}: HTTP {response.status}", "Check the cluster and its RBAC")
        try:
            return json.loads(data)
        except ValueError:
            raise KubeError(f"reading {path}: not JSON", "Check the cluster") from None

    def items(self, path: str, label_selector: str) -> list[Obj]:
        """The items of a list, each with its kind and apiVersion (lists leave them out)."""
        answer = self.get(path, label_selector)
        kind = str(answer.get("kind", "")).removesuffix("List")
        items: list[Obj] = list(answer.get("items") or [])
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", answer.get("apiVersion", ""))
        return items

    def lists(self, paths: Sequence[str], label_selector: str) -> list[Obj]:
        """Every item of every path's list, the lists sent concurrently."""
        found: list[Obj] = []
        for items in self._pool.map(lambda p: self.items(p, label_selector), paths):
            found.extend(items)
        return found
