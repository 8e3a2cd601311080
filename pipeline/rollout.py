"""Rollout stage (stage 5): watch workloads until their rollout completes, or fail fast with a diagnosis.

Success is judged exactly as ``kubectl rollout status`` judges it (:func:`judge`, a pure function of the
workload object: observedGeneration caught up, every replica updated, old replicas gone, updated replicas
available; ``ProgressDeadlineExceeded`` fails). Waiting for the controller's progress deadline (ten
minutes by default) to learn that an image cannot start is too slow for a release that rolls back on
failure, so the pods of the *new* ReplicaSet (found by its pod-template-hash) are watched too, and
:func:`pod_problem` fails the rollout as soon as one of them shows a state that does not heal by itself:
an image that cannot be pulled, a container that cannot be configured, one that keeps crashing, or a
pod that stays unschedulable past a short grace. The diagnosis names the reason, the container, its exit
code, the pod's recent Events and its last log lines (of the previous, crashed instance for crash loops).

Everything here is watched, not polled: one watch on each workload and one on its pods, in threads that
feed a queue; a one-second tick only re-judges what is already known (grace periods, deadlines). The
pipeline timeout and the workload's ``progressDeadlineSeconds`` both bound the wait.

Neighbours: ``kube`` provides the watches, events and logs; ``apply`` says which workloads it changed;
``release`` decides what a failed :class:`RolloutResult` means (a rollback).
"""

from __future__ import annotations

import datetime
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import PipelineError
from .kube import WATCH_WINDOW_SECONDS, Access, Kube, KubeError, WatchEvent, WatchStream, opened

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Progress = Callable[[str], None]
Status = Literal["complete", "failed", "timeout", "aborted"]

# Waiting reasons that do not heal by themselves (or only after a fix elsewhere): fail at once.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)
# A container restarted this often during a rollout is crashing, even between back-offs.
CRASH_RESTARTS = 2
# How long a pod may stay unschedulable before we call it (a node may be on its way).
UNSCHEDULABLE_GRACE_SECONDS = 30.0
# Slack on top of progressDeadlineSeconds before we stop waiting for the controller to say so itself.
DEADLINE_SLACK_SECONDS = 10.0
LOG_LINES = 20
EVENT_LINES = 8
_TICK_SECONDS = 1.0
_HASH_LABEL = "pod-template-hash"
_REVISION = "deployment.kubernetes.io/revision"


class RolloutError(PipelineError):
    """The rollout could not be watched (not: the rollout failed, which is a :class:`RolloutResult`)."""


# --- pure judgement (unit-tested on dicts) ----------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    done: bool
    failed: bool
    message: str
    reason: str = ""


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def deployment_status(obj: Mapping[str, Any]) -> Judgement:
    """``kubectl rollout status deployment/...``: done, failed (deadline exceeded) or waiting, and why."""
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = _int((obj.get("metadata") or {}).get("generation"))
    if generation > _int(status.get("observedGeneration")):
        return Judgement(False, False, "Waiting for deployment spec update to be observed...")
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Judgement(
            False, True, f'deployment "{name}" exceeded its progress deadline', "ProgressDeadlineExceeded"
        )
    if spec.get("paused"):
        # kubectl would wait for ever; a paused deployment never finishes on its own.
        return Judgement(False, True, f'deployment "{name}" is paused; resume it to roll out', "Paused")
    replicas = spec.get("replicas")
    updated = _int(status.get("updatedReplicas"))
    total = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if replicas is not None and updated < _int(replicas):
        return Judgement(
            False, False, f"{prefix}{updated} out of {replicas} new replicas have been updated..."
        )
    if total > updated:
        return Judgement(False, False, f"{prefix}{total - updated} old replicas are pending termination...")
    if available < updated:
        return Judgement(False, False, f"{prefix}{available} of {updated} updated replicas are available...")
    return Judgement(True, False, f'deployment "{name}" successfully rolled out')


def statefulset_status(obj: Mapping[str, Any]) -> Judgement:
    """``kubectl rollout status statefulset/...``."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return Judgement(
            False, True, "rollout status is only available for RollingUpdate strategy type", "OnDelete"
        )
    generation = _int((obj.get("metadata") or {}).get("generation"))
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or generation > observed:
        return Judgement(False, False, "Waiting for statefulset spec update to be observed...")
    replicas = spec.get("replicas")
    if replicas is not None and _int(status.get("readyReplicas")) < _int(replicas):
        missing = _int(replicas) - _int(status.get("readyReplicas"))
        return Judgement(False, False, f"Waiting for {missing} pods to be ready...")
    rolling = strategy.get("rollingUpdate")
    updated = _int(status.get("updatedReplicas"))
    if rolling is not None:
        partition = rolling.get("partition")
        if replicas is not None and partition is not None and updated < _int(replicas) - _int(partition):
            return Judgement(
                False,
                False,
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {_int(replicas) - _int(partition)} new pods have been updated...",
            )
        return Judgement(
            True, False, f"partitioned roll out complete: {updated} new pods have been updated..."
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return Judgement(
            False,
            False,
            "waiting for statefulset rolling update to complete "
            f"{updated} pods at revision {status.get('updateRevision')}...",
        )
    return Judgement(
        True,
        False,
        f"statefulset rolling update complete {_int(status.get('currentReplicas'))} "
        f"pods at revision {status.get('currentRevision')}...",
    )


def daemonset_status(obj: Mapping[str, Any]) -> Judgement:
    """``kubectl rollout status daemonset/...``."""
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return Judgement(
            False, True, "rollout status is only available for RollingUpdate strategy type", "OnDelete"
        )
    generation = _int((obj.get("metadata") or {}).get("generation"))
    if generation > _int(status.get("observedGeneration")):
        return Judgement(False, False, "Waiting for daemon set spec update to be observed...")
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    prefix = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return Judgement(False, False, f"{prefix}{updated} out of {desired} new pods have been updated...")
    if available < desired:
        return Judgement(False, False, f"{prefix}{available} of {desired} updated pods are available...")
    return Judgement(True, False, f'daemon set "{name}" successfully rolled out')


def judge(obj: Mapping[str, Any]) -> Judgement:
    kind = obj.get("kind")
    if kind == "Deployment":
        return deployment_status(obj)
    if kind == "StatefulSet":
        return statefulset_status(obj)
    if kind == "DaemonSet":
        return daemonset_status(obj)
    raise RolloutError(
        f"cannot judge the rollout of a {kind}", "Only Deployments, StatefulSets and DaemonSets"
    )


@dataclass(frozen=True)
class PodProblem:
    pod: str
    reason: str
    message: str
    container: str = ""
    exit_code: int | None = None
    restarts: int = 0
    # Which logs tell the story: the crashed instance's ("previous"), the current one's, or none.
    logs: Literal["previous", "current", "none"] = "none"


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def pod_problem(
    pod: Mapping[str, Any],
    *,
    now: datetime.datetime,
    unschedulable_grace: float = UNSCHEDULABLE_GRACE_SECONDS,
    seen_since: datetime.datetime | None = None,
) -> PodProblem | None:
    """Why this pod of a new ReplicaSet will not become ready by itself, or None while it still may."""
    name = str((pod.get("metadata") or {}).get("name", "?"))
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for cs in statuses:
        container = str(cs.get("name", ""))
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = _int(cs.get("restartCount"))
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        exit_code = last.get("exitCode") if last else None
        if reason in FATAL_WAITING:
            crashed = reason in ("CrashLoopBackOff", "RunContainerError")
            return PodProblem(
                pod=name,
                reason=reason,
                message=str(waiting.get("message") or ""),
                container=container,
                exit_code=exit_code if crashed else None,
                restarts=restarts,
                logs="previous" if crashed and last else "none",
            )
        if restarts >= CRASH_RESTARTS and last:
            return PodProblem(
                pod=name,
                reason=str(last.get("reason") or "Restarting"),
                message=str(last.get("message") or f"restarted {restarts} times"),
                container=container,
                exit_code=exit_code,
                restarts=restarts,
                logs="previous",
            )
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        since = parse_time(scheduled.get("lastTransitionTime")) or seen_since or now
        if (now - since).total_seconds() >= unschedulable_grace:
            return PodProblem(pod=name, reason="Unschedulable", message=str(scheduled.get("message") or ""))
    return None


def _template_without_hash(template: Mapping[str, Any] | None) -> Obj:
    out = json.loads(json.dumps(template or {}))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(_HASH_LABEL, None)
    return dict(out)


def new_replicaset(deployment: Mapping[str, Any], replicasets: Iterable[Mapping[str, Any]]) -> Obj | None:
    """The Deployment's new ReplicaSet: the one it owns whose pod template is the Deployment's.

    Falls back to the revision annotation the deployment controller keeps equal on both.
    """
    uid = (deployment.get("metadata") or {}).get("uid")
    owned = [
        dict(rs)
        for rs in replicasets
        if not uid
        or any(o.get("uid") == uid for o in (rs.get("metadata") or {}).get("ownerReferences") or [])
    ]
    wanted = _template_without_hash((deployment.get("spec") or {}).get("template"))
    for rs in owned:
        if _template_without_hash((rs.get("spec") or {}).get("template")) == wanted:
            return rs
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    revision = (meta.get("annotations") or {}).get(_REVISION)
    if revision and _int(status.get("observedGeneration")) >= _int(meta.get("generation")):
        for rs in owned:
            if ((rs.get("metadata") or {}).get("annotations") or {}).get(_REVISION) == revision:
                return rs
    return None


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as the ``labelSelector`` query parameter."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadOutcome:
    kind: str
    namespace: str
    name: str
    status: Status
    message: str
    # CrashLoopBackOff, ImagePullBackOff, ProgressDeadlineExceeded, Timeout, NotFound, ... ("" if complete)
    reason: str = ""
    pod: str = ""
    container: str = ""
    exit_code: int | None = None
    restarts: int = 0
    events: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    duration: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def diagnosis(self) -> str:
        if self.status == "complete":
            return ""
        head = f"{self.ref}: {self.message}"
        lines = [head]
        if self.events:
            lines.append("  events:")
            lines += [f"    {e}" for e in self.events]
        if self.logs:
            lines.append(f"  last {len(self.logs)} log lines of {self.pod} ({self.container}):")
            lines += [f"    {line}" for line in self.logs]
        return "\n".join(lines)


@dataclass(frozen=True)
class RolloutResult:
    ok: bool
    workloads: tuple[WorkloadOutcome, ...]
    # Multi-line, human-readable: why it failed, with events and logs ("" when ok).
    diagnosis: str
    duration: float
    # The first failure's one-line reason, for commit messages and summaries.
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutResult:
        workloads = tuple(
            WorkloadOutcome(**{**w, "events": tuple(w.get("events", ())), "logs": tuple(w.get("logs", ()))})
            for w in data.get("workloads", ())
        )
        return cls(
            bool(data["ok"]),
            workloads,
            str(data.get("diagnosis", "")),
            float(data.get("duration", 0.0)),
            str(data.get("summary", "")),
        )


# --- watching -----------------------------------------------------------------------------------------


@dataclass
class _Tracker:
    kind: str
    namespace: str
    name: str
    started: float
    obj: Obj | None = None
    pods: dict[str, Obj] = field(default_factory=dict)
    first_seen: dict[str, datetime.datetime] = field(default_factory=dict)
    new_hash: str | None = None
    hash_for: tuple[Any, ...] = ()
    last_counts: tuple[Any, ...] = ()
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
            return [p for p in self.pods.values() if _labels(p).get(_HASH_LABEL) == self.new_hash]
        if self.kind == "StatefulSet":
            revision = (self.obj.get("status") or {}).get("updateRevision")
            return [
                p
                for p in self.pods.values()
                if not revision or _labels(p).get("controller-revision-hash") == revision
            ]
        return []  # DaemonSets: judged by status only


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _pump(stream: WatchStream, index: int, source: str, out: queue.Queue[tuple[int, str, Any]]) -> None:
    try:
        for event in stream:
            out.put((index, source, event))
    except BaseException as e:  # handed to the waiting thread, which re-raises it
        out.put((index, "error", e))


def _event_line(event: Mapping[str, Any]) -> str:
    count = _int(event.get("count"))
    times = f" (x{count})" if count > 1 else ""
    message = " ".join(str(event.get("message", "")).split())
    return f"{event.get('type', 'Normal')} {event.get('reason', '')}: {message}{times}"


class _Waiter:
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
        self.events: queue.Queue[tuple[int, str, Any]] = queue.Queue()
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
            if source == "error":
                if isinstance(payload, PipelineError):
                    raise payload
                raise RolloutError(f"watching {self.trackers[index].ref}: {payload!r}") from payload
            t = self.trackers[index]
            if t.outcome is not None:
                continue
            event: WatchEvent = payload
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
        pod_hashes = sorted({_labels(p).get(_HASH_LABEL, "") for p in t.pods.values()})
        signature = (
            meta.get("generation"),
            (meta.get("annotations") or {}).get(_REVISION),
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
            t.new_hash = _labels(rs).get(_HASH_LABEL) or None

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
            if problem.reason == "Unschedulable" and self._scaling_up(t, pod):
                # The cluster autoscaler is adding a node for it: wait for that (up to the deadline).
                t.scaling_up.add(name)
                self.progress(f"{t.ref}: pod {name} is waiting for the cluster autoscaler to add a node")
                continue
            return problem
        return None

    def _scaling_up(self, t: _Tracker, pod: Obj) -> bool:
        try:
            events = self.kube.events_for(pod, limit=50)
        except KubeError:
            return False
        return any(e.get("reason") == "TriggeredScaleUp" for e in events)

    def _outcome(
        self, t: _Tracker, status: Status, message: str, reason: str = "", **extra: Any
    ) -> WorkloadOutcome:
        return WorkloadOutcome(
            t.kind,
            t.namespace,
            t.name,
            status,
            message,
            reason,
            duration=round(time.monotonic() - t.started, 2),
            **extra,
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
        events: tuple[str, ...] = ()
        try:
            events = tuple(_event_line(e) for e in self.kube.events_for(pod, limit=EVENT_LINES))
        except KubeError as e:
            events = (f"(events unavailable: {e})",)
        logs: tuple[str, ...] = ()
        if problem.logs != "none" and problem.container:
            logs = self._logs(t, problem)
        parts = [f"pod {problem.pod}"]
        if problem.container:
            parts.append(f"container {problem.container}")
        detail = f"{problem.reason}"
        if problem.exit_code is not None:
            detail += f", exit code {problem.exit_code}"
        if problem.restarts:
            detail += f", {problem.restarts} restart{'s' if problem.restarts != 1 else ''}"
        text = f"{', '.join(parts)}: {detail}"
        if problem.message:
            text += f": {' '.join(problem.message.split())[:300]}"
        if message:
            text = f"{message}; {text}"
        return self._outcome(
            t,
            "failed",
            text,
            problem.reason,
            pod=problem.pod,
            container=problem.container,
            exit_code=problem.exit_code,
            restarts=problem.restarts,
            events=events,
            logs=logs,
        )

    def _logs(self, t: _Tracker, problem: PodProblem) -> tuple[str, ...]:
        attempts = [True, False] if problem.logs == "previous" else [False]
        for previous in attempts:
            try:
                lines = self.kube.pod_logs(
                    t.namespace, problem.pod, problem.container, tail=self.log_lines, previous=previous
                )
            except KubeError as e:
                log.debug("logs of %s (previous=%s): %s", problem.pod, previous, e)
                continue
            if lines:
                return tuple(lines)
        return ()


def _api_kind(kind: str) -> tuple[str, str]:
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise RolloutError(f"cannot wait for a {kind}", "Only Deployments, StatefulSets and DaemonSets")
    return "apps/v1", kind


def wait(
    access: Access | Kube,
    workloads: Sequence[tuple[str, str, str]],
    *,
    timeout: float,
    on_progress: Progress = lambda _: None,
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
