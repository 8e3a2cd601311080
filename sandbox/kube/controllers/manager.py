"""The controller manager of one sandbox cluster: runs every controller of this package, level-triggered.

Each controller is a plain synchronous "pass" over the store (``sync_all``) with no state of its own worth
keeping: a pass re-lists what it needs and writes only differences. The manager runs each pass in a
worker thread (the store is thread-safe; Docker calls never block the asyncio loop that also serves the
API) whenever the store reports a change to a kind the controller watches, and at least every few seconds
(progress deadlines, ``minReadySeconds`` and pod status polling depend on time, not on changes). The
kubelet's ``on_change`` callback wakes the pod pass as soon as a container changes state.

Neighbours: ``service.py`` (the KubeService) builds the store, the kubelet and the proxies, then
``await manager.start()`` and, on shutdown, ``await manager.stop()`` before ``kubelet.cleanup()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .deployment import DeploymentController
from .events import EventRecorder
from .jobs import JobController
from .node import NodeHeartbeat, default_node
from .objects import Obj, utcnow
from .pods import PodController
from .replicaset import ReplicaSetController
from .services import Routes, ServiceController
from .volumes import ClaimBinder

if TYPE_CHECKING:
    from ..kubelet import Kubelet
    from ..store import Store, Subscription

log = logging.getLogger("sandbox.kube.controllers")

# Debounce: a burst of store changes (a kubectl apply of ten objects) makes one pass, not ten.
SETTLE_SECONDS = 0.02


@dataclass
class _Loop:
    name: str
    run: Callable[[], None]
    # Resources (plural names) whose changes wake this loop.
    kinds: frozenset[str]
    period: float
    wake: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None


class ControllerManager:
    """Every controller of one cluster. ``node``: the Node object (default: built from the kubelet's name
    and IP); ``on_routes``: called with the proxies' :class:`Routes` whenever they change, from a worker
    thread if it is a plain function, on the event loop if it is ``async`` (such as ``Proxies.sync``);
    ``resync_seconds``: the longest a Deployment/ReplicaSet/Pod pass waits without a change."""

    def __init__(
        self,
        cluster: str,
        store: Store,
        kubelet: Kubelet,
        *,
        node: Obj | None = None,
        on_routes: Callable[[Routes], object] | None = None,
        resync_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.kubelet = kubelet
        self.node = node or default_node(kubelet.node_name, kubelet.node_ip, cluster=cluster)
        self.events = EventRecorder(store, clock)
        self.claims = ClaimBinder(store, kubelet, self.events, cluster, kubelet.node_name, clock)
        self.pods = PodController(store, kubelet, self.events, self.claims, kubelet.node_name, clock)
        self.deployments = DeploymentController(store, self.events, clock, self.pods.terminating)
        self.replicasets = ReplicaSetController(store, self.events, clock, before_delete=self.pods.stop_pod)
        self._on_routes = on_routes
        self.services = ServiceController(store, kubelet.node_ip, self._deliver_routes if on_routes else None)
        self.heartbeat = NodeHeartbeat(store, self.node, clock)
        self.jobs = JobController(store, self.events, clock)
        r = resync_seconds
        self._loops = [
            _Loop("node", self.heartbeat.sync, frozenset({"nodes"}), 5.0),
            _Loop(
                "deployments", self.deployments.sync_all, frozenset({"deployments", "replicasets", "pods"}), r
            ),
            _Loop("replicasets", self.replicasets.sync_all, frozenset({"replicasets", "pods"}), r),
            _Loop("jobs", self.jobs.sync_all, frozenset({"jobs", "pods"}), r),
            _Loop(
                "pods",
                self.pods.sync_all,
                frozenset(
                    {
                        "pods",
                        "nodes",
                        "configmaps",
                        "secrets",
                        "services",
                        "persistentvolumeclaims",
                        "storageclasses",
                    }
                ),
                r,
            ),
            _Loop(
                "claims", self.claims.sync_all, frozenset({"persistentvolumeclaims", "storageclasses"}), 15.0
            ),
            _Loop(
                "services",
                self.services.sync_all,
                frozenset({"services", "pods", "ingresses", "secrets", "endpoints"}),
                2 * r,
            ),
            _Loop("events", self.events.expire, frozenset(), 60.0),
        ]
        # Enough threads that a slow pass (Docker volume removal) never starves the others.
        self._executor = ThreadPoolExecutor(
            max_workers=len(self._loops) + 1, thread_name_prefix=f"ctrl-{cluster}"
        )
        self._subscription: Subscription | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    async def start(self) -> None:
        """Make sure the Node exists, then start every loop (returns at once; they run until ``stop``)."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(self._executor, self.heartbeat.sync)
        self._subscription = self.store.subscribe()
        chained = self.kubelet.on_change

        def on_change(namespace: str, name: str) -> None:
            if chained is not None:
                chained(namespace, name)
            self._wake_threadsafe("pods")

        self.kubelet.on_change = on_change
        for loop in self._loops:
            loop.wake = asyncio.Event()
            loop.wake.set()
            loop.task = asyncio.create_task(
                self._run_loop(loop), name=f"controller-{self.cluster}-{loop.name}"
            )
        self._watch_task = asyncio.create_task(self._watch(), name=f"controller-{self.cluster}-watch")

    async def run(self) -> None:
        """Start, then wait until ``stop`` (for callers that prefer one long-running coroutine)."""
        await self.start()
        tasks = [t for t in (self._watch_task, *(loop.task for loop in self._loops)) if t is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)

    async def stop(self) -> None:
        """Stop every loop and wait for pods being stopped; the kubelet's containers are the caller's."""
        self._stopping = True
        tasks = [t for t in (self._watch_task, *(loop.task for loop in self._loops)) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._subscription is not None:
            self._subscription.close()
        loop = asyncio.get_running_loop()
        # Pods being stopped get a moment to finish; whatever is left, kubelet.cleanup() removes.
        await loop.run_in_executor(None, self.pods.wait_for_kills, 5.0)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> dict[str, object]:
        return {"controllers": [loop.name for loop in self._loops]}

    # --- internals ---

    def _deliver_routes(self, routes: Routes) -> None:
        """Hand routes to the proxies; an async ``on_routes`` (``Proxies.sync``) runs on the event loop."""
        assert self._on_routes is not None
        result = self._on_routes(routes)
        if inspect.isawaitable(result) and self._loop is not None:

            async def wait() -> None:
                await result

            asyncio.run_coroutine_threadsafe(wait(), self._loop).result(timeout=60)

    def _wake_threadsafe(self, name: str) -> None:
        if self._loop is None or self._stopping:
            return
        for loop in self._loops:
            if loop.name == name and loop.wake is not None:
                with contextlib.suppress(RuntimeError):  # the event loop has closed
                    self._loop.call_soon_threadsafe(loop.wake.set)

    async def _watch(self) -> None:
        assert self._subscription is not None
        queue = self._subscription.queue
        while True:
            _, gvr, _ = await queue.get()
            plural = gvr[2]
            if plural == "events":
                continue  # our own records; no controller reads them
            if plural in ("pods", "nodes", "persistentvolumeclaims", "storageclasses"):
                # Unschedulable pods are retried at once when something they depend on changed.
                self.pods.changes += 1
            for loop in self._loops:
                if plural in loop.kinds and loop.wake is not None:
                    loop.wake.set()

    async def _run_loop(self, loop: _Loop) -> None:
        assert loop.wake is not None
        running = asyncio.get_running_loop()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), timeout=loop.period)
            loop.wake.clear()
            await asyncio.sleep(SETTLE_SECONDS)
            try:
                await running.run_in_executor(self._executor, loop.run)
            except RuntimeError:
                if self._stopping:
                    return
                raise
            except Exception:
                log.exception("controller %s of cluster %s", loop.name, self.cluster)
