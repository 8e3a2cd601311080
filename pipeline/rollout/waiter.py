"""The rollout stage (stage 5): watch workloads until their rollout completes, or fail fast with a diagnosis.

:func:`wait` follows each workload and the pods of its new revision with watches, in threads that feed
one queue; a one-second tick only re-judges what is already known (grace periods, deadlines). A
workload is complete when ``rollout.status`` says so (``kubectl rollout status``'s rules), and failed
when it says so, when the controller stops making progress past ``progressDeadlineSeconds``, or as
soon as one of its new pods shows a state ``rollout.pods`` calls permanent (an image that cannot be
pulled, a crash loop, a pod that stays unschedulable): waiting ten minutes for the controller's own
deadline is too slow for a release that rolls back on failure. The pipeline timeout and the workload's
``progressDeadlineSeconds`` both bound the wait.

Neighbours: ``kube`` provides the watches; ``rollout.status`` and ``rollout.pods`` judge what they
report; ``rollout.diagnosis`` gathers a failure's events and logs; the answer is a
``rollout.result.RolloutResult``. ``apply`` says which workloads it changed; ``release`` decides what a
failed result means (a rollback).
"""

from __future__ import annotations

import datetime
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .. import interrupt
from ..access import Access
from ..base import Obj, Progress, quiet
from ..errors import PipelineError, RolloutError
from ..kube import WATCH_WINDOW_SECONDS, Kube, WatchEvent, WatchStream, opened
from . import diagnosis
from .diagnosis import LOG_LINES
from .pods import (
    HASH_LABEL,
    REVISION,
    UNSCHEDULABLE_GRACE_SECONDS,
    PodProblem,
    labels,
    new_replicaset,
    pod_problem,
    selector_string,
)
from .result import RolloutResult, Status, WorkloadOutcome
from .status import judge

# Slack on top of progressDeadlineSeconds before we stop waiting for the controller to say so itself.
DEADLINE_SLACK_SECONDS = 10.0
_TICK_SECONDS = 1.0

# What the watch threads hand the waiting one: (tracker index, "workload" | "pods" | "error", payload).
_Item = tuple[int, str, WatchEvent | BaseException]


@dataclass
class _Tracker:
    """What is known about one workload while waiting: the object, its pods, and progress so far."""

    kind: str
    namespace: str
    name: str
    started: float
    obj: Obj | None = None
    pods: dict[str, Obj] = field(default_factory=dict)
    first_seen: dict[str, datetime.datetime] = field(default_factory=dict)
    new_hash: str | None = None
    # What new_hash was found for (generation, revision, observedGeneration, pod hashes).
    hash_for: tuple[object, ...] = ()
    # The status without its conditions, to tell progress from standing still.
    last_counts: tuple[tuple[str, str], ...] = ()
    last_progress: float = 0.0
    message: str = ""
    scaling_up: set[str] = field(default_factory=set)
    outcome: WorkloadOutcome | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def relevant_pods(self) -> list[Obj]:
        """Pods of the new revision (the ones whose failure fails this rollout)."""
        if self.obj is None:
            return []
        if self.kind == "Deployment":
            if self.new_hash is None:
                return []
            return [p for p in self.pods.values() if labels(p).get(HASH_LABEL) == self.new_hash]
        if self.kind == "StatefulSet":
            revision = (self.obj.get("status") or {}).get("updateRevision")
            return [
                p
                for p in self.pods.values()
                if not revision or labels(p).get("controller-revision-hash") == revision
            ]
        return []  # DaemonSets: judged by status only


def _pump(stream: WatchStream, index: int, source: str, out: queue.Queue[_Item]) -> None:
    try:
        for event in stream:
            out.put((index, source, event))
    except BaseException as e:  # handed to the waiting thread, which re-raises it
        out.put((index, "error", e))


class _Waiter:
    """The watches of one :func:`wait` and the loop that judges what they report."""

    def __init__(
        self,
        kube: Kube,
        trackers: list[_Tracker],
        deadline: float,
        progress: Progress,
        unschedulable_grace: float,
        log_lines: int,
        window: int,
    ) -> None:
        self.kube = kube
        self.window = window
        self.trackers = trackers
        self.deadline = deadline
        self.progress = progress
        self.grace = unschedulable_grace
        self.log_lines = log_lines
        self.events: queue.Queue[_Item] = queue.Queue()
        self.streams: list[WatchStream] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for index, t in enumerate(self.trackers):
            remaining = max(1.0, self.deadline - time.monotonic())
            obj = self.kube.get(*_api_kind(t.kind), t.name, t.namespace)
            if obj is None:
                t.outcome = self._outcome(t, "failed", f"{t.ref} does not exist", "NotFound")
                continue
            t.obj = obj
            t.last_progress = time.monotonic()
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            self._watch(
                index,
                "workload",
                self.kube.watch(
                    *_api_kind(t.kind),
                    namespace=t.namespace,
                    name=t.name,
                    resource_version=rv,
                    timeout=remaining,
                    window=self.window,
                ),
            )
            selector = selector_string((obj.get("spec") or {}).get("selector"))
            if t.kind in ("Deployment", "StatefulSet") and selector:
                self._watch(
                    index,
                    "pods",
                    self.kube.watch(
                        "v1",
                        "Pod",
                        namespace=t.namespace,
                        label_selector=selector,
                        timeout=remaining,
                        window=self.window,
                    ),
                )

    def _watch(self, index: int, source: str, stream: WatchStream) -> None:
        self.streams.append(stream)
        thread = threading.Thread(
            target=_pump,
            args=(stream, index, source, self.events),
            daemon=True,
            name=f"watch-{source}-{index}",
        )
        self.threads.append(thread)
        thread.start()

    def stop(self) -> None:
        for stream in self.streams:
            stream.stop()
        for thread in self.threads:
            thread.join(timeout=5)

    def run(self) -> None:
        for t in self.trackers:
            if t.outcome is None:
                self._evaluate(t)
        while any(t.outcome is None for t in self.trackers):
            if any(t.outcome is not None and t.outcome.status == "failed" for t in self.trackers):
                break
            interrupt.check()  # SIGTERM/Ctrl-C: stop waiting at this tick (the chain rolls back)
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                for t in self.trackers:
                    if t.outcome is None:
                        t.outcome = self._outcome(
                            t,
                            "timeout",
                            f"{t.ref} did not finish rolling out in time ({t.message or 'no status yet'})",
                            "Timeout",
                        )
                break
            try:
                index, source, payload = self.events.get(timeout=min(_TICK_SECONDS, remaining))
            except queue.Empty:
                for t in self.trackers:
                    if t.outcome is None:
                        self._evaluate(t)
                continue
            if isinstance(payload, BaseException):  # source "error": the watch itself failed
                if isinstance(payload, PipelineError):
                    raise payload
                raise RolloutError(f"watching {self.trackers[index].ref}: {payload!r}") from payload
            t = self.trackers[index]
            if t.outcome is not None:
                continue
            event = payload
            if source == "workload":
                if event.type == "DELETED":
                    t.outcome = self._outcome(
                        t, "failed", f"{t.ref} was deleted during the rollout", "Deleted"
                    )
                    continue
                t.obj = event.object
            else:
                pod_name = str((event.object.get("metadata") or {}).get("name"))
                if event.type == "DELETED":
                    t.pods.pop(pod_name, None)
                else:
                    t.pods[pod_name] = event.object
                    t.first_seen.setdefault(pod_name, datetime.datetime.now(datetime.UTC))
            self._evaluate(t)
        for t in self.trackers:
            if t.outcome is None:
                t.outcome = self._outcome(
                    t, "aborted", "not waited for: another workload failed first", "Aborted"
                )

    def _find_new_hash(self, t: _Tracker) -> None:
        assert t.obj is not None
        meta = t.obj.get("metadata") or {}
        pod_hashes = sorted({labels(p).get(HASH_LABEL, "") for p in t.pods.values()})
        signature = (
            meta.get("generation"),
            (meta.get("annotations") or {}).get(REVISION),
            (t.obj.get("status") or {}).get("observedGeneration"),
            tuple(pod_hashes),
        )
        if t.new_hash is not None and signature[:3] == t.hash_for[:3]:
            return
        if signature == t.hash_for:
            return
        t.hash_for = signature
        selector = selector_string((t.obj.get("spec") or {}).get("selector"))
        replicasets, _ = self.kube.list_objects(
            "apps/v1", "ReplicaSet", t.namespace, label_selector=selector or None
        )
        rs = new_replicaset(t.obj, replicasets)
        if rs is not None:
            t.new_hash = labels(rs).get(HASH_LABEL) or None

    def _evaluate(self, t: _Tracker) -> None:
        if t.obj is None or t.outcome is not None:
            return
        judgement = judge(t.obj)
        now = time.monotonic()
        counts = (t.obj.get("status") or {}).copy()
        counts.pop("conditions", None)
        signature = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in counts.items()))
        if signature != t.last_counts:
            t.last_counts = signature
            t.last_progress = now
        if judgement.message != t.message:
            t.message = judgement.message
            self.progress(f"{t.ref}: {judgement.message}")
        if judgement.done:
            t.outcome = self._outcome(t, "complete", judgement.message)
            return
        if judgement.failed:
            t.outcome = self._diagnosed(t, judgement.message, judgement.reason, self._worst_pod(t))
            return
        if t.kind == "Deployment":
            self._find_new_hash(t)
        problem = self._worst_pod(t)
        if problem is not None:
            t.outcome = self._diagnosed(t, "", problem.reason, problem)
            return
        deadline = (t.obj.get("spec") or {}).get("progressDeadlineSeconds")
        if t.kind == "Deployment" and isinstance(deadline, int):
            stalled = now - t.last_progress
            if stalled > deadline + DEADLINE_SLACK_SECONDS:
                t.outcome = self._diagnosed(
                    t,
                    f"no progress for {stalled:.0f} s (progressDeadlineSeconds is {deadline})",
                    "ProgressDeadlineExceeded",
                    None,
                )

    def _worst_pod(self, t: _Tracker) -> PodProblem | None:
        now = datetime.datetime.now(datetime.UTC)
        for pod in t.relevant_pods():
            name = str((pod.get("metadata") or {}).get("name"))
            problem = pod_problem(
                pod, now=now, unschedulable_grace=self.grace, seen_since=t.first_seen.get(name)
            )
            if problem is None or name in t.scaling_up:
                continue
            if problem.reason == "Unschedulable" and diagnosis.scaling_up(self.kube, pod):
                # The cluster autoscaler is adding a node for it: wait for that (up to the deadline).
                t.scaling_up.add(name)
                self.progress(f"{t.ref}: pod {name} is waiting for the cluster autoscaler to add a node")
                continue
            return problem
        return None

    def _outcome(self, t: _Tracker, status: Status, message: str, reason: str = "") -> WorkloadOutcome:
        return WorkloadOutcome(
            t.kind,
            t.namespace,
            t.name,
            status,
            message,
            reason,
            duration=round(time.monotonic() - t.started, 2),
        )

    def _diagnosed(
        self, t: _Tracker, message: str, reason: str, problem: PodProblem | None
    ) -> WorkloadOutcome:
        """A failed outcome with the pod's events and log lines gathered now, while they are fresh."""
        if problem is None:
            return self._outcome(t, "failed", message or reason, reason)
        pod = t.pods.get(problem.pod) or {
            "kind": "Pod",
            "metadata": {"name": problem.pod, "namespace": t.namespace},
        }
        pod.setdefault("kind", "Pod")
        evidence = diagnosis.gather(self.kube, t.namespace, pod, problem, self.log_lines)
        return replace(
            self._outcome(t, "failed", diagnosis.describe(problem, message), problem.reason),
            pod=problem.pod,
            container=problem.container,
            exit_code=problem.exit_code,
            restarts=problem.restarts,
            events=evidence.events,
            logs=evidence.logs,
        )


def _api_kind(kind: str) -> tuple[str, str]:
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise RolloutError(f"cannot wait for a {kind}", "Only Deployments, StatefulSets and DaemonSets")
    return "apps/v1", kind


def wait(
    access: Access | Kube,
    workloads: Sequence[tuple[str, str, str]],
    *,
    timeout: float,
    on_progress: Progress = quiet,
    unschedulable_grace: float = UNSCHEDULABLE_GRACE_SECONDS,
    log_lines: int = LOG_LINES,
    watch_window: int = WATCH_WINDOW_SECONDS,
) -> RolloutResult:
    """Watch ``workloads`` ((kind, namespace, name) each) until all have rolled out, one fails, or time is up.

    Returns a :class:`RolloutResult` (``ok`` False with a diagnosis on failure); raises only when the
    cluster cannot be watched at all (authentication, RBAC, unreachable). Watches are reopened every
    ``watch_window`` seconds, each time with a fresh token if the old one is about to expire.
    """
    started = time.monotonic()
    for kind, _ns, _name in workloads:
        _api_kind(kind)
    trackers = [_Tracker(kind, ns, name, started) for kind, ns, name in workloads]
    with opened(access) as kube:
        waiter = _Waiter(
            kube, trackers, started + timeout, on_progress, unschedulable_grace, log_lines, watch_window
        )
        try:
            waiter.start()
            waiter.run()
        finally:
            waiter.stop()
    outcomes = tuple(t.outcome for t in trackers if t.outcome is not None)
    ok = all(o.status == "complete" for o in outcomes)
    failures = [o for o in outcomes if o.status in ("failed", "timeout")]
    diagnosis = "\n".join(o.diagnosis() for o in failures)
    summary = f"{failures[0].ref}: {failures[0].message}" if failures else ""
    return RolloutResult(ok, outcomes, diagnosis, round(time.monotonic() - started, 2), summary)
