"""One operation at a time per environment, across machines: a ``coordination.k8s.io/v1`` Lease.

The git lock in ``gitops`` serialises releases on one machine; a laptop and a GitHub Actions runner share
only the cluster, so ``release``, ``promote``, ``rollback`` and ``drift --repair`` hold a Lease named
``<field manager>-<env>`` in the environment's namespace while they work. How it behaves, in figures:

- The holder renews it every :data:`RENEW_SECONDS` (10 s) from a background thread; it is expired
  :data:`LEASE_SECONDS` (30 s) after the last renewal, so a release killed with SIGKILL blocks the next
  one for at most 30 s. A finished operation lets go at once (clears ``holderIdentity``).
- Every write is a ``PUT`` with the ``resourceVersion`` last read, so of two runners that try to take the
  same Lease at once, the API server lets exactly one succeed (409 Conflict for the other), and only an
  expired (or released) Lease is taken over.
- Before each of its writes (bump, apply, revert, record) the chain calls :meth:`Lease.check`, which
  renews synchronously: a holder whose Lease expired while it was paused and was taken over notices there
  (409, or another holder) and stops with :class:`~pipeline.errors.LeaseLost` without writing.
- A second operation polls every :data:`POLL_SECONDS` with a progress line ("waiting for the release by
  X, started T") up to its ``--wait`` (``[release] lock_wait``), then fails with one line naming the
  holder; ``--no-wait`` refuses at once.

The holder identity says who and where: ``user@host pid N``, or in GitHub Actions the run's URL and the
pid. Neighbours: ``kube`` makes the calls (``Kube.create``/``Kube.replace``), ``release.py`` holds the
Lease around an operation.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from . import interrupt
from .base import Obj, Progress, first_line, quiet
from .config import Environment, Settings
from .errors import KubeConflict, KubeNotFound, LeaseHeld, LeaseLost, PipelineError

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger(__name__)

LEASE_SECONDS = 30
RENEW_SECONDS = 10.0
POLL_SECONDS = 2.0
# While waiting, repeat the progress line this often so a CI log shows the wait is alive.
REMIND_SECONDS = 30.0
OPERATION = "campus-pipeline/operation"
STARTED = "campus-pipeline/started"
API_VERSION, KIND = "coordination.k8s.io/v1", "Lease"


def identity(environ: Mapping[str, str] | None = None, pid: int | None = None) -> str:
    """Who holds the Lease: the Actions run's URL, or ``user@host``; with the process id."""
    env = os.environ if environ is None else environ
    pid = os.getpid() if pid is None else pid
    run = env.get("GITHUB_RUN_ID")
    if run and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{run} pid {pid}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {pid}"


def _micro(at: datetime.datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds, in UTC."""
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: object) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Lease:
    """The environment's Lease as one operation holds it: :meth:`acquire`, :meth:`check`, :meth:`release`.

    ``kube`` is a :class:`~pipeline.kube.Kube` of the operation's own (the renewing thread uses it).
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        holder: str,
        operation: str,
        *,
        duration: int = LEASE_SECONDS,
        renew_every: float = RENEW_SECONDS,
        poll_every: float = POLL_SECONDS,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.kube = kube
        self.namespace, self.name, self.holder, self.operation = namespace, name, holder, operation
        self.duration, self.renew_every, self.poll_every = duration, renew_every, poll_every
        self.clock = clock
        self.where = f"Lease {namespace}/{name}"
        self._obj: Obj | None = None
        self._renewed = 0.0  # monotonic time of the last write the server accepted
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reading ---------------------------------------------------------------------------------------

    def _get(self) -> Obj | None:
        return self.kube.get(API_VERSION, KIND, self.name, self.namespace)

    def _expired(self, obj: Obj, seen: dict[str, float]) -> bool:
        """Free to take: no holder, or not renewed for its duration (by its renewTime, or by our clock
        since we first saw this resourceVersion, whichever says so first: clocks may differ)."""
        spec = obj.get("spec") or {}
        if not spec.get("holderIdentity"):
            return True
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None or (self.clock() - renewed).total_seconds() > duration:
            return True
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        first = seen.setdefault(rv, time.monotonic())
        return time.monotonic() - first > duration

    @staticmethod
    def describe(obj: Obj) -> str:
        """ "the release by X, started T", for the waiting line and the refusal."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        annotations = meta.get("annotations") or {}
        started = annotations.get(STARTED) or spec.get("acquireTime") or "at an unknown time"
        what = annotations.get(OPERATION) or "operation"
        return f"the {what} by {spec.get('holderIdentity')}, started {started}"

    # --- writing ---------------------------------------------------------------------------------------

    def _body(self, current: Obj | None, transitions: int, now: datetime.datetime) -> Obj:
        body: Obj = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "campus-pipeline"},
                "annotations": {OPERATION: self.operation, STARTED: now.isoformat(timespec="seconds")},
            },
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }
        if current is not None:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return body

    def _create(self, body: Obj) -> Obj:
        try:
            return self.kube.create(body)
        except KubeNotFound:
            # Before the first release the namespace does not exist yet: the Lease needs it first.
            self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
            return self.kube.create(body)

    def _try_take(self, current: Obj | None) -> bool:
        now = self.clock()
        try:
            if current is None:
                self._obj = self._create(self._body(None, 0, now))
            else:
                spec = current.get("spec") or {}
                took_over = bool(spec.get("holderIdentity"))
                transitions = int(spec.get("leaseTransitions") or 0) + (1 if took_over else 0)
                self._obj = self.kube.replace(self._body(current, transitions, now))
        except KubeConflict:
            return False  # another runner wrote first (created it, or took it over): look again
        self._renewed = time.monotonic()
        return True

    def acquire(self, wait: float, progress: Progress = quiet) -> None:
        """Take the Lease, waiting up to ``wait`` seconds (0: refuse at once) for its holder to finish."""
        deadline = time.monotonic() + max(0.0, wait)
        seen: dict[str, float] = {}
        told: tuple[str, float] | None = None
        while True:
            current = self._get()
            if current is None or self._expired(current, seen):
                if self._try_take(current):
                    break
                continue
            other = self.describe(current)
            if time.monotonic() >= deadline:
                if wait <= 0:
                    raise LeaseHeld(
                        f"{self.where} is held: {other}",
                        "Try again when it has finished, or drop --no-wait to wait for it",
                    )
                raise LeaseHeld(
                    f"{self.where} is still held after waiting {wait:.0f} s: {other}",
                    "Try again when it has finished, or pass --wait SECONDS to wait longer",
                )
            interrupt.check()  # Ctrl-C while waiting: nothing was written yet, stop at once
            if told is None or told[0] != other or time.monotonic() - told[1] >= REMIND_SECONDS:
                progress(f"waiting for {other}")
                told = (other, time.monotonic())
            time.sleep(min(self.poll_every, max(0.05, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._keep, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        """One renewal, under the lock; sets ``_lost`` when another holder has the Lease now."""
        with self._lock:
            if self._lost is not None or self._obj is None:
                return
            body = dict(self._obj)
            body["spec"] = {**(self._obj.get("spec") or {}), "renewTime": _micro(self.clock())}
            try:
                self._obj = self.kube.replace(body)
                self._renewed = time.monotonic()
                return
            except KubeConflict:
                current = self._get()
                holder = (current or {}).get("spec", {}).get("holderIdentity") if current else None
                self._lost = f"taken over by {holder or 'another operation'}"
            except PipelineError as e:
                log.warning("renewing %s: %s", self.where, first_line(e))
                if time.monotonic() - self._renewed > self.duration:
                    self._lost = f"not renewed for {self.duration} s ({first_line(e)})"

    def _keep(self) -> None:
        while not self._stop.wait(self.renew_every):
            self._renew()
            if self._lost is not None:
                return

    @property
    def lost(self) -> str | None:
        return self._lost

    def check(self) -> None:
        """Renew now; :class:`LeaseLost` if another operation holds the Lease. Call before each write."""
        self._renew()
        if self._lost is not None:
            raise LeaseLost(
                f"{self.where} was {self._lost}: stopped before writing anything more",
                "The other operation now owns the environment; see `invoke history` once it is done",
            )

    def release(self) -> None:
        """Let go at once (a waiting operation takes it on its next poll); never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_every + 5)
        with self._lock:
            if self._lost is not None or self._obj is None:
                return
            spec = {k: v for k, v in (self._obj.get("spec") or {}).items() if k != "holderIdentity"}
            try:
                self.kube.replace({**self._obj, "spec": spec})
            except PipelineError as e:  # taken over, or unreachable: it expires on its own
                log.info("releasing %s: %s", self.where, first_line(e))
            self._obj = None


def lease_name(settings: Settings, env: Environment) -> str:
    return f"{settings.release.field_manager}-{env.name}"


@contextlib.contextmanager
def held(
    settings: Settings,
    env: Environment,
    operation: str,
    *,
    wait: float | None = None,
    progress: Progress = quiet,
) -> Iterator[Lease]:
    """The environment's Lease for the duration of the block (``wait`` default: ``[release] lock_wait``)."""
    from . import gkecache, kube

    with kube.connect(gkecache.environment_access(settings, env)) as cluster:
        lease = Lease(
            cluster,
            settings.release.lock_namespace,
            lease_name(settings, env),
            identity(),
            operation,
        )
        lease.acquire(settings.release.lock_wait if wait is None else wait, progress)
        try:
            yield lease
        finally:
            lease.release()
