"""The sandbox's kubelet: runs each Pod as Docker containers on the cluster's Docker network.

The pod-lifecycle controller (``controllers/``) owns the Pod objects; it calls :meth:`Kubelet.sync_pod`
with the Pod and a :class:`~sandbox.kube.resolved.ResolvedPod` (ConfigMaps, Secrets, claims and Service
names already looked up), writes the returned ``status`` back with the status subresource, and turns
:meth:`Kubelet.drain_events` into Event objects. The proxies (``proxy.py``) reach pods on the IPs this
module reports. Nothing here reads the store.

How a pod maps onto Docker, as dockershim did it:

- one Docker bridge network per cluster (``sandbox-<home hash>-<cluster>``, with a fixed subnet so a pod
  can be re-attached with the same IP when its Service aliases change);
- a *pause* container per pod (``k8s_POD_<pod>_<ns>_<uid>_<attempt>``) owns the network namespace, the
  hostname and the aliases; the pod's containers (``k8s_<container>_<pod>_<ns>_<uid>_<restarts>``) join it
  with ``network_mode=container:``, so a restarting container keeps the pod's IP;
- every object carries the ``io.kubernetes.*`` labels plus ``sandbox.kube/home`` and
  ``sandbox.kube/cluster``, which is how :meth:`Kubelet.cleanup` and :func:`remove_all` find them;
- claims are named Docker volumes (never removed here), emptyDirs and configMap/secret files are folders
  under ``<home>/kube/kubelet/<cluster>/pods/<uid>/`` bind-mounted into the containers.

Events are dicts, oldest first::

    {"reason": "Pulling", "message": 'Pulling image "127.0.0.1:5000/backend:sha-1a2b"',
     "type": "Normal", "fieldPath": "spec.containers{backend}", "time": "2024-05-01T12:00:00Z"}

``type`` is ``Normal`` or ``Warning``; ``fieldPath`` is the Event's ``involvedObject.fieldPath`` (empty for
pod-level events); the source is ``{"component": "kubelet", "host": node_name}``. Reasons and messages are
the kubelet's: Pulling, Pulled, Failed, BackOff, ErrImageNeverPull, Created, Started, Killing, Unhealthy,
FailedMount, SandboxChanged. A failing probe yields one ``Unhealthy`` event per failed attempt, as the real
kubelet does; the events controller is expected to aggregate equal events into ``count``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.kube.resolved import ResolvedPod

if TYPE_CHECKING:
    import docker

__all__ = ["ContainerNotFound", "Kubelet", "ResolvedPod", "home_hash", "remove_all"]

LOG = logging.getLogger(__name__)

LABEL_HOME = "sandbox.kube/home"
LABEL_CLUSTER = "sandbox.kube/cluster"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_TYPE = "io.kubernetes.docker.type"  # "podsandbox" or "container", as dockershim labelled them
LABEL_RESTARTS = "io.kubernetes.container.restartCount"
LABEL_HASH = "io.kubernetes.container.hash"
LABEL_ATTEMPT = "io.kubernetes.sandbox.attempt"

PAUSE_IMAGE = "sandbox.local/pause:busybox-1"
# The pause container only has to hold the namespaces and exit promptly on SIGTERM.
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"

# How often a pod worker looks at its containers when nothing wakes it earlier.
POLL_SECONDS = 0.5
USER_AGENT = "kube-probe/1.30"


class ContainerNotFound(LookupError):
    """No container instance to read logs from; ``str()`` is the API server's message for a 400."""


def home_hash(home: Path) -> str:
    """A short stable id of a sandbox home: two sandboxes on one engine never touch each other's objects."""
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:10]


def remove_all(docker_client: docker.DockerClient, home: Path) -> None:
    """Remove every container and network any kubelet of this home made (after a crash, for ``down``)."""
    selector = f"{LABEL_HOME}={home_hash(home)}"
    _remove_labelled(docker_client, [selector])


def _remove_labelled(docker_client: docker.DockerClient, labels: list[str]) -> None:
    import docker.errors

    for info in docker_client.api.containers(all=True, filters={"label": labels}):
        try:
            docker_client.api.remove_container(info["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            # A pod worker may be removing the same container right now: the engine says 409; it goes anyway.
            if e.status_code != 409:
                raise
    for net in docker_client.api.networks(filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_network(net["Id"])


# --- small helpers ------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _docker_time(value: str | None) -> tuple[str, float]:
    """Docker's nanosecond RFC 3339 time as the API's second-precision form and as epoch seconds."""
    if not value or value.startswith("0001-"):
        return "", 0.0
    trimmed = re.sub(r"\.(\d{1,6})\d*", r".\1", value.replace("Z", "+00:00"))
    moment = datetime.fromisoformat(trimmed)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), moment.timestamp()


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` (``10s``, ``1m20s``, ``5m0s``), as kubelet messages do."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds, 3)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec = f"{secs:g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec}"
    if minutes:
        return f"{int(minutes)}m{sec}"
    return sec


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, the rest stays as is."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env[name] if name in env else value[i : end + 1])
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``512Mi``, ``500m``, ``1e9``) as a number."""
    text = str(value).strip()
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)", text)
    if not m:
        raise ValueError(f"quantities must match the regular expression of resource.Quantity: {text!r}")
    number, suffix = float(m.group(1)), m.group(2)
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repository, tag, digest); the repository keeps its registry host."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag, digest or None
    return ref, None, digest or None


def registry_host(image: str) -> str:
    """The registry an image reference points at (``docker.io`` when the first part is not a host)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: ``Always`` for ``:latest`` or no tag, ``IfNotPresent`` otherwise."""
    _, tag, digest = split_image(image)
    if digest:
        return "IfNotPresent"
    return "Always" if tag in (None, "latest") else "IfNotPresent"


def format_pod(pod: dict[str, Any]) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod.get("metadata", {})
    return f"{meta.get('name')}_{meta.get('namespace', 'default')}({meta.get('uid', '')})"


def _container_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _docker_error(e: Exception) -> str:
    explanation = getattr(e, "explanation", None)
    text = explanation.decode() if isinstance(explanation, bytes) else explanation
    return str(text or e).strip()


class _Backoff:
    """client-go's ``flowcontrol.Backoff`` for one key: doubles from base to cap, forgets after 2×cap."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self.duration = 0.0
        self.last_update: float | None = None

    def next(self, at: float) -> None:
        if self.last_update is None or at - self.last_update > 2 * self.cap:
            self.duration = self.base
        else:
            self.duration = min(self.duration * 2, self.cap)
        self.last_update = at

    def in_backoff_since(self, event_time: float, now: float) -> bool:
        if self.last_update is None or event_time - self.last_update > 2 * self.cap:
            return False
        return now - event_time < self.duration

    def in_backoff_since_update(self, now: float) -> bool:
        if self.last_update is None:
            return False
        return now - self.last_update < self.duration

    def until(self, event_time: float) -> float:
        return event_time + self.duration


# --- probes -------------------------------------------------------------------------------------------


@dataclass
class _ProbeResult:
    ok: bool
    message: str = ""


def _http_probe(spec: dict[str, Any], ip: str, port: int, timeout: float) -> _ProbeResult:
    host = spec.get("host") or ip
    scheme = (spec.get("scheme") or "HTTP").lower()
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        headers[h["name"]] = h.get("value", "")
    conn: http.client.HTTPConnection
    if scheme == "https":
        import ssl

        # The kubelet does not verify probe certificates either.
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read(10 * 1024)
    except TimeoutError:
        return _ProbeResult(
            False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        )
    except ConnectionRefusedError:
        return _ProbeResult(False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused')
    except OSError as e:
        return _ProbeResult(False, f'Get "{url}": {e}')
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return _ProbeResult(True)
    return _ProbeResult(False, f"HTTP probe failed with statuscode: {response.status}")


def _tcp_probe(spec: dict[str, Any], ip: str, port: int, timeout: float) -> _ProbeResult:
    host = spec.get("host") or ip
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return _ProbeResult(True)
    except TimeoutError:
        return _ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except ConnectionRefusedError:
        return _ProbeResult(False, f"dial tcp {host}:{port}: connect: connection refused")
    except OSError as e:
        return _ProbeResult(False, f"dial tcp {host}:{port}: {e}")


def _exec_probe(
    docker_client: docker.DockerClient, container_id: str, command: list[str], timeout: float
) -> _ProbeResult:
    import docker.errors

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            exec_id = docker_client.api.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
            result["output"] = docker_client.api.exec_start(exec_id)
            result["code"] = docker_client.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as e:
            result["error"] = _docker_error(e)

    worker = threading.Thread(target=run, daemon=True, name="exec-probe")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return _ProbeResult(False, f"command {json.dumps(' '.join(command))} timed out")
    if "error" in result:
        return _ProbeResult(False, str(result["error"]))
    output = result.get("output", b"")
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    return _ProbeResult(result.get("code") == 0, text)


class _Prober(threading.Thread):
    """One probe (readiness, liveness or startup) of one container instance, as the kubelet's probe worker."""

    def __init__(
        self, worker: _PodWorker, rec: _Container, kind: str, spec: dict[str, Any], cid: str
    ) -> None:
        super().__init__(daemon=True, name=f"probe-{kind}-{rec.name}")
        self.worker, self.rec, self.kind, self.spec, self.cid = worker, rec, kind, spec, cid
        self.stopped = threading.Event()

    def run(self) -> None:
        spec = self.spec
        delay = float(spec.get("initialDelaySeconds") or 0)
        period = float(spec.get("periodSeconds") or 10)
        timeout = float(spec.get("timeoutSeconds") or 1)
        failure_threshold = int(spec.get("failureThreshold") or 3)
        success_threshold = int(spec.get("successThreshold") or 1)
        if self.stopped.wait(delay):
            return
        successes = failures = 0
        while not self.stopped.is_set():
            # Readiness and liveness wait for the startup probe, as in the kubelet.
            if self.kind != "startup" and not self.rec.started:
                if self.stopped.wait(min(period, 0.5)):
                    return
                continue
            result = self.probe(timeout)
            if self.stopped.is_set():
                return
            if result.ok:
                successes, failures = successes + 1, 0
                if successes >= success_threshold:
                    self.worker.probe_result(self.rec, self.cid, self.kind, True)
            else:
                successes, failures = 0, failures + 1
                label = {"readiness": "Readiness", "liveness": "Liveness", "startup": "Startup"}[self.kind]
                self.worker.event(
                    "Unhealthy", f"{label} probe failed: {result.message}", "Warning", self.rec.field_path
                )
                if failures >= failure_threshold:
                    self.worker.probe_result(self.rec, self.cid, self.kind, False)
                    if self.kind != "readiness":
                        return
            if self.stopped.wait(period):
                return

    def probe(self, timeout: float) -> _ProbeResult:
        ip = self.worker.pod_ip or ""
        try:
            if "exec" in self.spec:
                command = [str(c) for c in self.spec["exec"].get("command") or []]
                return _exec_probe(self.worker.kubelet.docker, self.cid, command, timeout)
            if "httpGet" in self.spec:
                port = self.worker.resolve_port(self.rec.spec, self.spec["httpGet"].get("port"))
                return _http_probe(self.spec["httpGet"], ip, port, timeout)
            if "tcpSocket" in self.spec:
                port = self.worker.resolve_port(self.rec.spec, self.spec["tcpSocket"].get("port"))
                return _tcp_probe(self.spec["tcpSocket"], ip, port, timeout)
        except (ValueError, KeyError) as e:
            return _ProbeResult(False, str(e))
        return _ProbeResult(False, "unsupported probe handler")


# --- pod worker ---------------------------------------------------------------------------------------


@dataclass
class _Container:
    name: str
    spec: dict[str, Any]
    init: bool = False
    restart_count: int = 0
    container_id: str | None = None
    image_id: str = ""
    running: bool = False
    started_at: str = ""
    # What the status shows while no instance runs: (reason, message) of state.waiting.
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    terminated: dict[str, Any] | None = None  # state.terminated of the current (exited) instance
    last_terminated: dict[str, Any] | None = None  # lastState.terminated
    finished_at: float = 0.0
    exit_seen: bool = False
    started: bool = False
    ready: bool = False
    kill_reason: str | None = None
    probers: list[_Prober] = field(default_factory=list)
    crash_backoff: _Backoff | None = None
    pull_backoff: _Backoff | None = None
    backoff_event_for: float = -1.0
    pull_event_for: float = -1.0
    last_error: str | None = None

    @property
    def field_path(self) -> str:
        kind = "initContainers" if self.init else "containers"
        return f"spec.{kind}{{{self.name}}}"

    @property
    def completed(self) -> bool:
        return self.terminated is not None and self.terminated.get("exitCode") == 0


class _PodWorker:
    """Owns one pod's Docker objects; a thread reconciles them with the newest spec every half second."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any], resolved: ResolvedPod) -> None:
        self.kubelet = kubelet
        meta = pod["metadata"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.uid: str = (
            meta.get("uid") or hashlib.sha256(f"{self.namespace}/{self.name}".encode()).hexdigest()[:32]
        )
        self.pod, self.resolved = pod, resolved
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.containers: dict[str, _Container] = {}
        self.sandbox_id: str | None = None
        self.sandbox_attempt = 0
        self.aliases: tuple[str, ...] = ()
        self.pod_ip: str | None = None
        self.start_time = ""
        self.conditions: dict[str, tuple[str, str]] = {}
        self.status: dict[str, Any] = {}
        self.adopted = False
        self.last_sync_error = ""
        self.seen_events: set[str] = set()
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"pod-{self.namespace}/{self.name}"
        )
        self._seed_from_status(pod)
        # No notification from here: the kubelet's lock is held while a worker is made.
        self.status = self._status()

    # Called from the kubelet -------------------------------------------------------------------------

    def update(self, pod: dict[str, Any], resolved: ResolvedPod) -> bool:
        with self.lock:
            changed = pod.get("spec") != self.pod.get("spec") or resolved != self.resolved
            self.pod, self.resolved = pod, resolved
        if changed:
            self.wake.set()
        return changed

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            copy: dict[str, Any] = json.loads(json.dumps(self.status))  # a deep copy the caller may keep
            return copy

    def stop(self, wait: float) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(wait)
        with self.lock:
            for rec in self.containers.values():
                self._stop_probers(rec)

    # Called from probers -----------------------------------------------------------------------------

    def event(self, reason: str, message: str, kind: str = "Normal", field_path: str = "") -> None:
        self.kubelet._record(self.namespace, self.name, reason, message, kind, field_path)

    def probe_result(self, rec: _Container, cid: str, kind: str, ok: bool) -> None:
        with self.lock:
            if rec.container_id != cid or not rec.running:
                return
            if kind == "readiness":
                rec.ready = ok
            elif kind == "startup" and ok:
                rec.started = True
            elif not ok:
                rec.kill_reason = f"Container {rec.name} failed {kind} probe, will be restarted"
        self.wake.set()
        self._publish()

    def resolve_port(self, spec: dict[str, Any], port: Any) -> int:
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            return int(port)
        for p in spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"could not find port {port!r} in container {spec.get('name')}")

    # The loop ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()  # before the round, so a wake-up during it is not lost
            try:
                self._reconcile()
            except Exception as e:  # a failed round is retried; the pod must not lose its worker
                if str(e) != self.last_sync_error:  # once per distinct failure, not twice a second
                    LOG.exception("syncing pod %s/%s", self.namespace, self.name)
                self.last_sync_error = str(e)
            else:
                self.last_sync_error = ""
            self._publish()
            self.wake.wait(POLL_SECONDS)

    def _seed_from_status(self, pod: dict[str, Any]) -> None:
        """Carry restart counts over from the stored status, as after a node restart."""
        status = pod.get("status") or {}
        previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
        previous.update({c.get("name"): c for c in status.get("initContainerStatuses") or []})
        for spec, init in self._specs(pod):
            rec = self._rec(spec, init)
            old = previous.get(spec["name"]) or {}
            rec.restart_count = int(old.get("restartCount") or 0)
            rec.last_terminated = (old.get("lastState") or {}).get("terminated")
        self.start_time = status.get("startTime") or ""

    @staticmethod
    def _specs(pod: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
        spec = pod.get("spec") or {}
        return [(c, True) for c in spec.get("initContainers") or []] + [
            (c, False) for c in spec.get("containers") or []
        ]

    def _rec(self, spec: dict[str, Any], init: bool) -> _Container:
        with self.lock:  # probers and kill_pod iterate the records from other threads
            rec = self.containers.get(spec["name"])
            if rec is None:
                k = self.kubelet
                rec = _Container(spec["name"], spec, init)
                rec.crash_backoff = _Backoff(k.backoff_base, k.backoff_max)
                rec.pull_backoff = _Backoff(k.backoff_base, k.backoff_max)
                self.containers[spec["name"]] = rec
            rec.spec, rec.init = spec, init
            return rec

    def _reconcile(self) -> None:
        with self.lock:
            pod, resolved = self.pod, self.resolved
        if not self.adopted:
            self._adopt()
            self.adopted = True
        if not self.start_time:
            self.start_time = _now()
        if not self._ensure_sandbox(pod, resolved):
            return
        mounts_ready = self._prepare_volumes(pod, resolved)
        initializing = False
        for spec, init in self._specs(pod):
            if self.stopping.is_set():
                return
            rec = self._rec(spec, init)
            if not init and initializing:
                rec.waiting = ("PodInitializing", "")
                continue
            self._sync_container(pod, resolved, rec, mounts_ready)
            if init and not rec.completed:
                initializing = True

    # Adoption and the sandbox ------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        k = self.kubelet
        return {
            LABEL_HOME: k.home_id,
            LABEL_CLUSTER: k.cluster,
            LABEL_POD_NAME: self.name,
            LABEL_POD_NAMESPACE: self.namespace,
            LABEL_POD_UID: self.uid,
        }

    def _existing(self) -> list[dict[str, Any]]:
        k = self.kubelet
        found: list[dict[str, Any]] = k.docker.api.containers(
            all=True, filters={"label": [f"{LABEL_HOME}={k.home_id}", f"{LABEL_POD_UID}={self.uid}"]}
        )
        return found

    def _adopt(self) -> None:
        """Take over containers a previous daemon left running; anything else of this pod is removed."""
        found = self._existing()
        sandboxes = [
            c for c in found if c["Labels"].get(LABEL_TYPE) == "podsandbox" and c["State"] == "running"
        ]
        if not sandboxes:
            for c in found:
                self._remove(c["Id"])
            return
        sandbox = max(sandboxes, key=lambda c: int(c["Labels"].get(LABEL_ATTEMPT, "0")))
        self.sandbox_id = sandbox["Id"]
        self.sandbox_attempt = int(sandbox["Labels"].get(LABEL_ATTEMPT, "0"))
        info = self.kubelet.docker.api.inspect_container(sandbox["Id"])
        net = info["NetworkSettings"]["Networks"].get(self.kubelet.network_name) or {}
        self.pod_ip = net.get("IPAddress") or None
        self.aliases = tuple(a for a in net.get("Aliases") or [] if a not in (sandbox["Id"][:12], self.name))
        specs = {s["name"]: (s, init) for s, init in self._specs(self.pod)}
        newest: dict[str, dict[str, Any]] = {}
        for c in found:
            labels = c["Labels"]
            if labels.get(LABEL_TYPE) != "container" or labels.get(LABEL_CONTAINER_NAME) not in specs:
                continue
            name = labels[LABEL_CONTAINER_NAME]
            if name not in newest or int(labels.get(LABEL_RESTARTS, "0")) > int(
                newest[name]["Labels"].get(LABEL_RESTARTS, "0")
            ):
                newest[name] = c
        for name, c in newest.items():
            spec, init = specs[name]
            rec = self._rec(spec, init)
            rec.container_id = c["Id"]
            rec.restart_count = int(c["Labels"].get(LABEL_RESTARTS, "0"))
            if c["State"] == "running":
                self._after_start(rec, c["Id"], adopted=True)

    def _ensure_sandbox(self, pod: dict[str, Any], resolved: ResolvedPod) -> bool:
        import docker.errors

        k = self.kubelet
        aliases = tuple(dict.fromkeys(resolved.service_aliases))
        if self.sandbox_id:
            try:
                state = k.docker.api.inspect_container(self.sandbox_id)["State"]
                alive = bool(state.get("Running"))
            except docker.errors.NotFound:
                alive = False
            if alive:
                if aliases != self.aliases:
                    self._reattach(aliases)
                return True
            # The pod's network namespace is gone: as the kubelet, kill everything and start again.
            self.event("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            for rec in self.containers.values():
                if rec.container_id:
                    self._stop_probers(rec)
                    self._remove(rec.container_id)
                    rec.container_id, rec.running, rec.ready, rec.started = None, False, False, False
            self._remove(self.sandbox_id)
            self.sandbox_id = None
            self.sandbox_attempt += 1
        if self.stopping.is_set():
            return False
        network = k.ensure_network()
        image = k.ensure_pause_image()
        spec = pod.get("spec") or {}
        hostname = (spec.get("hostname") or self.name)[:63].rstrip("-.")
        name = f"k8s_POD_{self.name}_{self.namespace}_{self.uid}_{self.sandbox_attempt}"
        self._remove_by_name(name)
        endpoint = k.docker.api.create_endpoint_config(aliases=list(aliases) or None)
        host_config = k.docker.api.create_host_config(network_mode=network, init=False)
        created = k.docker.api.create_container(
            image,
            command=["/bin/sh", "-c", PAUSE_SCRIPT],
            name=name,
            hostname=hostname,
            labels={**self._labels(), LABEL_TYPE: "podsandbox", LABEL_ATTEMPT: str(self.sandbox_attempt)},
            host_config=host_config,
            networking_config=k.docker.api.create_networking_config({network: endpoint}),
            stop_signal="SIGTERM",
        )
        self.sandbox_id = created["Id"]
        k.docker.api.start(self.sandbox_id)
        info = k.docker.api.inspect_container(self.sandbox_id)
        self.pod_ip = info["NetworkSettings"]["Networks"][network]["IPAddress"]
        self.aliases = aliases
        return True

    def _reattach(self, aliases: tuple[str, ...]) -> None:
        """Aliases are fixed at connect time in Docker, so re-connect the pause container with the same IP."""
        k = self.kubelet
        assert self.sandbox_id is not None
        k.docker.api.disconnect_container_from_network(self.sandbox_id, k.network_name, force=True)
        k.docker.api.connect_container_to_network(
            self.sandbox_id, k.network_name, aliases=list(aliases) or None, ipv4_address=self.pod_ip
        )
        self.aliases = aliases

    # Volumes -----------------------------------------------------------------------------------------

    @property
    def pod_dir(self) -> Path:
        return self.kubelet.pods_dir / self.uid

    def _prepare_volumes(self, pod: dict[str, Any], resolved: ResolvedPod) -> dict[str, str | None]:
        """Volume name -> error message (None when ready); writes configMap/secret files, makes emptyDirs."""
        errors: dict[str, str | None] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            errors[name] = None
            if "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                volume = resolved.volumes.get(claim)
                if volume is None:
                    errors[name] = resolved.volume_errors.get(name) or (
                        f'persistentvolumeclaim "{claim}" is not bound to a volume yet'
                    )
                else:
                    self.kubelet.ensure_volume(volume, claim, self.namespace)
            elif "emptyDir" in vol and (vol["emptyDir"] or {}).get("medium") != "Memory":
                path = self.pod_dir / "volumes" / name
                if not path.exists():
                    path.mkdir(parents=True)
                    path.chmod(0o777)  # emptyDir is world-writable, whatever user the container runs as
            elif any(kind in vol for kind in ("configMap", "secret", "projected", "downwardAPI")):
                kind = next(k for k in ("configMap", "secret", "projected", "downwardAPI") if k in vol)
                source = vol[kind] or {}
                files = resolved.volume_files.get(name)
                if name in resolved.volume_errors:
                    errors[name] = resolved.volume_errors[name]
                    continue
                if files is None and not source.get("optional") and kind in ("configMap", "secret"):
                    errors[name] = resolved.volume_errors.get(name) or (
                        f'MountVolume.SetUp failed for volume "{name}" : {kind.lower()} '
                        f'"{source.get("name") or source.get("secretName")}" not found'
                    )
                    continue
                mode = int(source.get("defaultMode") or 0o644)
                self._write_files(self.pod_dir / "volumes" / name, files or {}, mode)
        for name, message in errors.items():
            if message is not None:
                self._event_once(f"mount:{name}:{message}", "FailedMount", message, "Warning")
        return errors

    def _write_files(self, root: Path, files: dict[str, bytes], mode: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        wanted: set[Path] = set()
        for rel, data in files.items():
            target = (root / rel).resolve()
            if root.resolve() not in target.parents:
                continue  # the API validates paths; never write outside the volume
            wanted.add(target)
            if target.exists() and target.read_bytes() == data and (target.stat().st_mode & 0o777) == mode:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            tmp.replace(target)  # atomic, so a reader never sees half a file
        for existing in root.rglob("*"):
            if existing.is_file() and existing.resolve() not in wanted:
                existing.unlink()

    def _mounts(self, pod: dict[str, Any], resolved: ResolvedPod, spec: dict[str, Any]) -> list[Any]:
        from docker.types import Mount

        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        mounts: list[Any] = []
        for vm in spec.get("volumeMounts") or []:
            vol = volumes.get(vm["name"])
            if vol is None:
                raise ValueError(
                    f'spec.containers[{spec["name"]}].volumeMounts: volume "{vm["name"]}" not found'
                )
            target, read_only, sub = vm["mountPath"], bool(vm.get("readOnly")), vm.get("subPath") or ""
            if "persistentVolumeClaim" in vol:
                volume = resolved.volumes[vol["persistentVolumeClaim"]["claimName"]]
                read_only = read_only or bool(vol["persistentVolumeClaim"].get("readOnly"))
                if sub:
                    # Docker 20.10 cannot mount part of a volume; bind its folder on the host instead.
                    base = Path(self.kubelet.docker.api.inspect_volume(volume)["Mountpoint"])
                    (base / sub).mkdir(parents=True, exist_ok=True)
                    mounts.append(Mount(target, str(base / sub), type="bind", read_only=read_only))
                else:
                    # Kubernetes never copies the image's files into a claim, so neither does Docker here.
                    mounts.append(Mount(target, volume, type="volume", read_only=read_only, no_copy=True))
            elif "emptyDir" in vol and (vol["emptyDir"] or {}).get("medium") == "Memory":
                mounts.append(Mount(target, None, type="tmpfs", tmpfs_mode=0o1777))
            elif "hostPath" in vol:
                host = Path(vol["hostPath"]["path"]) / sub
                if (vol["hostPath"].get("type") or "") in ("DirectoryOrCreate", ""):
                    host.mkdir(parents=True, exist_ok=True)
                mounts.append(Mount(target, str(host), type="bind", read_only=read_only))
            else:
                source = self.pod_dir / "volumes" / vm["name"]
                source.mkdir(parents=True, exist_ok=True)
                if sub:
                    source = source / sub
                    if not source.exists():
                        source.mkdir(parents=True, exist_ok=True)
                files_kind = any(k in vol for k in ("configMap", "secret", "projected", "downwardAPI"))
                mounts.append(Mount(target, str(source), type="bind", read_only=read_only or files_kind))
        return mounts

    # Containers --------------------------------------------------------------------------------------

    def _sync_container(
        self, pod: dict[str, Any], resolved: ResolvedPod, rec: _Container, mounts_ready: dict[str, str | None]
    ) -> None:
        import docker.errors

        k = self.kubelet
        spec = rec.spec
        restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        if rec.container_id:
            try:
                info = k.docker.api.inspect_container(rec.container_id)
            except docker.errors.NotFound:
                info = None
            if info is not None and info["State"].get("Running"):
                rec.running = True
                changed = info["Config"]["Labels"].get(LABEL_HASH) != _container_hash(spec)
                if changed and rec.kill_reason is None:
                    rec.kill_reason = f"Container {rec.name} definition changed, will be restarted"
                if rec.kill_reason is None:
                    return
                self.event("Killing", rec.kill_reason, "Normal", rec.field_path)
                rec.kill_reason = None
                self._stop_probers(rec)
                with contextlib.suppress(docker.errors.NotFound):
                    k.docker.api.stop(rec.container_id, timeout=self._grace(pod))
                info = k.docker.api.inspect_container(rec.container_id)
            if not rec.exit_seen:
                self._record_exit(rec, info)
            if rec.init and rec.completed:
                return
            exit_code = (rec.terminated or {}).get("exitCode", 1)
            if restart_policy == "Never" or (restart_policy == "OnFailure" and exit_code == 0):
                rec.waiting = None
                return
            assert rec.crash_backoff is not None
            now = time.time()
            if rec.crash_backoff.in_backoff_since(rec.finished_at, now):
                duration = go_duration(rec.crash_backoff.duration)
                rec.waiting = (
                    "CrashLoopBackOff",
                    f"back-off {duration} restarting failed container={rec.name} pod={format_pod(pod)}",
                )
                if rec.backoff_event_for != rec.finished_at:
                    rec.backoff_event_for = rec.finished_at
                    self.event(
                        "BackOff",
                        f"Back-off restarting failed container {rec.name} in pod {format_pod(pod)}",
                        "Warning",
                        rec.field_path,
                    )
                return
            rec.crash_backoff.next(rec.finished_at)
            self._start(pod, resolved, rec, mounts_ready, restart=True)
            return
        self._start(pod, resolved, rec, mounts_ready, restart=False)

    def _grace(self, pod: dict[str, Any]) -> int:
        value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return 30 if value is None else int(value)

    def _record_exit(self, rec: _Container, info: dict[str, Any] | None) -> None:
        self._stop_probers(rec)
        rec.running, rec.ready, rec.started, rec.exit_seen = False, False, False, True
        if info is None:  # removed behind our back: Kubernetes reports it as unknown
            rec.terminated = {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
            rec.finished_at = time.time()
            return
        state = info["State"]
        started, _ = _docker_time(state.get("StartedAt"))
        finished, finished_epoch = _docker_time(state.get("FinishedAt"))
        code = int(state.get("ExitCode") or 0)
        if state.get("OOMKilled"):
            reason = "OOMKilled"
        elif state.get("Error"):
            reason = "StartError"
            code = code or 128
        else:
            reason = "Completed" if code == 0 else "Error"
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started or None,
            "finishedAt": finished or _now(),
            "containerID": f"docker://{info['Id']}",
        }
        if state.get("Error"):
            terminated["message"] = state["Error"]
        rec.terminated = {k: v for k, v in terminated.items() if v is not None}
        rec.finished_at = finished_epoch or time.time()
        rec.waiting = None

    def _start(
        self,
        pod: dict[str, Any],
        resolved: ResolvedPod,
        rec: _Container,
        mounts_ready: dict[str, str | None],
        restart: bool,
    ) -> None:
        import docker.errors

        k = self.kubelet
        spec = rec.spec
        for vm in spec.get("volumeMounts") or []:
            if mounts_ready.get(vm["name"]):
                rec.waiting = ("ContainerCreating", "")
                return
        image_id = self._ensure_image(pod, rec)
        if image_id is None:
            return
        try:
            config = self._create_config(pod, resolved, rec, image_id)
        except _ConfigError as e:
            rec.waiting = ("CreateContainerConfigError", str(e))
            self._event_once(f"config:{rec.name}:{e}", "Failed", f"Error: {e}", "Warning", rec.field_path)
            return
        if self.stopping.is_set():
            return
        new_count = rec.restart_count + 1 if restart else rec.restart_count
        name = f"k8s_{rec.name}_{self.name}_{self.namespace}_{self.uid}_{new_count}"
        self._remove_by_name(name)
        self._prune_old(rec)
        labels = {
            **self._labels(),
            LABEL_TYPE: "container",
            LABEL_CONTAINER_NAME: rec.name,
            LABEL_RESTARTS: str(new_count),
            LABEL_HASH: _container_hash(spec),
        }
        try:
            container = k.docker.containers.create(image_id, name=name, labels=labels, **config)
        except docker.errors.APIError as e:
            message = _docker_error(e)
            rec.waiting = ("CreateContainerError", message)
            self._event_once(
                f"create:{rec.name}:{message}", "Failed", f"Error: {message}", "Warning", rec.field_path
            )
            return
        rec.restart_count = new_count
        if restart and rec.terminated is not None:
            rec.last_terminated = rec.terminated
        rec.container_id, rec.terminated, rec.exit_seen = container.id, None, False
        rec.last_error = None
        self.event("Created", f"Created container {rec.name}", "Normal", rec.field_path)
        try:
            container.start()
        except docker.errors.APIError as e:
            # Docker leaves the container "created" with the error in its state; the next round records
            # the exit (StartError) and backs off, as the kubelet does with a runtime start failure.
            message = _docker_error(e)
            self.event("Failed", f"Error: {message}", "Warning", rec.field_path)
            info = k.docker.api.inspect_container(container.id)
            info["State"]["Error"] = info["State"].get("Error") or message
            self._record_exit(rec, info)
            return
        self.event("Started", f"Started container {rec.name}", "Normal", rec.field_path)
        self._after_start(rec, container.id, adopted=False)

    def _after_start(self, rec: _Container, cid: str, adopted: bool) -> None:
        info = self.kubelet.docker.api.inspect_container(cid)
        rec.running, rec.waiting, rec.terminated, rec.exit_seen = True, None, None, False
        rec.started_at, _ = _docker_time(info["State"].get("StartedAt"))
        if adopted:
            with contextlib.suppress(Exception):
                rec.image_id = _image_ref(self.kubelet.docker.api.inspect_image(info["Image"]))
        spec = rec.spec
        rec.started = "startupProbe" not in spec
        rec.ready = "readinessProbe" not in spec and not rec.init
        rec.kill_reason = None
        self._stop_probers(rec)
        for kind, key in (
            ("startup", "startupProbe"),
            ("readiness", "readinessProbe"),
            ("liveness", "livenessProbe"),
        ):
            if spec.get(key) and not rec.init:
                prober = _Prober(self, rec, kind, spec[key], cid)
                rec.probers.append(prober)
                prober.start()

    def _stop_probers(self, rec: _Container) -> None:
        for prober in rec.probers:
            prober.stopped.set()
        rec.probers = []

    def _prune_old(self, rec: _Container) -> None:
        """Keep the current instance (the next one's ``--previous``) and drop older ones, as the GC does."""
        for c in self._existing():
            labels = c["Labels"]
            same = labels.get(LABEL_TYPE) == "container" and labels.get(LABEL_CONTAINER_NAME) == rec.name
            if same and c["Id"] != rec.container_id:
                self._remove(c["Id"])

    def _ensure_image(self, pod: dict[str, Any], rec: _Container) -> str | None:
        """The image id to run, pulling as ``imagePullPolicy`` says; None while waiting (status set)."""
        import docker.errors

        k = self.kubelet
        image = rec.spec.get("image") or ""
        policy = rec.spec.get("imagePullPolicy") or default_pull_policy(image)
        present: Any = None
        with contextlib.suppress(docker.errors.ImageNotFound):
            present = k.docker.images.get(image)
        if policy == "Never" and present is None:
            message = f'Container image "{image}" is not present with pull policy of Never'
            rec.waiting = ("ErrImageNeverPull", message)
            self._event_once(f"never:{rec.name}", "ErrImageNeverPull", message, "Warning", rec.field_path)
            return None
        if present is not None and policy != "Always":
            self.event(
                "Pulled", f'Container image "{image}" already present on machine', "Normal", rec.field_path
            )
            rec.image_id = _image_ref(present.attrs)
            return str(present.id)
        assert rec.pull_backoff is not None
        now = time.time()
        if rec.pull_backoff.in_backoff_since_update(now):
            rec.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            if rec.pull_event_for != rec.pull_backoff.last_update:
                rec.pull_event_for = rec.pull_backoff.last_update or 0.0
                self.event("BackOff", f'Back-off pulling image "{image}"', "Normal", rec.field_path)
                self.event("Failed", "Error: ImagePullBackOff", "Warning", rec.field_path)
            return None
        self.event("Pulling", f'Pulling image "{image}"', "Normal", rec.field_path)
        rec.waiting = ("ContainerCreating", "")
        self._publish()
        began = time.monotonic()
        error = k.pull(image)
        if error is not None:
            rec.pull_backoff.next(time.time())
            rec.waiting = ("ErrImagePull", error)
            self.event("Failed", f'Failed to pull image "{image}": {error}', "Warning", rec.field_path)
            self.event("Failed", "Error: ErrImagePull", "Warning", rec.field_path)
            return None
        took = go_duration(time.monotonic() - began)
        pulled = k.docker.images.get(image)
        size = pulled.attrs.get("Size", 0)
        self.event(
            "Pulled",
            f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
            f"Image size: {size} bytes.",
            "Normal",
            rec.field_path,
        )
        rec.image_id = _image_ref(pulled.attrs)
        return str(pulled.id)

    def _create_config(
        self, pod: dict[str, Any], resolved: ResolvedPod, rec: _Container, image_id: str
    ) -> dict[str, Any]:
        k = self.kubelet
        spec = rec.spec
        error = resolved.error_for(rec.name)
        if error:
            raise _ConfigError(error)
        env = self._environment(pod, resolved, spec)
        pod_sec = (pod.get("spec") or {}).get("securityContext") or {}
        sec = spec.get("securityContext") or {}
        uid = sec.get("runAsUser", pod_sec.get("runAsUser"))
        gid = sec.get("runAsGroup", pod_sec.get("runAsGroup"))
        if sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot")):
            image_user = (k.docker.images.get(image_id).attrs.get("Config") or {}).get("User") or ""
            user_part = image_user.split(":")[0]
            if uid is None and user_part and not user_part.isdigit():
                raise _ConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({user_part}), "
                    f'cannot verify user is non-root (pod: "{format_pod(pod)}", container: {rec.name})'
                )
            effective = int(uid) if uid is not None else int(user_part or 0)
            if effective == 0:
                raise _ConfigError(
                    f'container has runAsNonRoot and image will run as root (pod: "{format_pod(pod)}", '
                    f"container: {rec.name})"
                )
        try:
            mounts = self._mounts(pod, resolved, spec)
        except (ValueError, KeyError, OSError) as e:
            raise _ConfigError(str(e)) from e
        config: dict[str, Any] = {
            "environment": env,
            "network_mode": f"container:{self.sandbox_id}",
            "mounts": mounts,
            "working_dir": spec.get("workingDir") or None,
            "tty": bool(spec.get("tty")),
            "stdin_open": bool(spec.get("stdin")),
            "read_only": bool(sec.get("readOnlyRootFilesystem")),
            "privileged": bool(sec.get("privileged")),
        }
        capabilities = sec.get("capabilities") or {}
        if capabilities.get("drop"):
            config["cap_drop"] = [str(c).upper() for c in capabilities["drop"]]
        if capabilities.get("add"):
            config["cap_add"] = [str(c).upper() for c in capabilities["add"]]
        security_opt = []
        if sec.get("allowPrivilegeEscalation") is False:
            security_opt.append("no-new-privileges")
        # Docker applies its default seccomp profile (RuntimeDefault) unless told otherwise.
        seccomp = (sec.get("seccompProfile") or pod_sec.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            security_opt.append("seccomp=unconfined")
        if security_opt:
            config["security_opt"] = security_opt
        if spec.get("command") is not None:
            config["entrypoint"] = [expand(str(c), env) for c in spec["command"]]
            # A command without args drops the image's CMD, as Kubernetes documents; Docker agrees.
        if spec.get("args") is not None:
            config["command"] = [expand(str(a), env) for a in spec["args"]]
        if uid is not None:
            config["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
        groups = [str(g) for g in pod_sec.get("supplementalGroups") or []]
        if pod_sec.get("fsGroup") is not None:
            groups.append(str(pod_sec["fsGroup"]))
        if groups:
            config["group_add"] = groups
        limits = (spec.get("resources") or {}).get("limits") or {}
        try:
            if "memory" in limits:
                config["mem_limit"] = int(parse_quantity(limits["memory"]))
            if "cpu" in limits:
                config["nano_cpus"] = int(parse_quantity(limits["cpu"]) * 1e9)
        except ValueError as e:
            raise _ConfigError(str(e)) from e
        return config

    def _environment(
        self, pod: dict[str, Any], resolved: ResolvedPod, spec: dict[str, Any]
    ) -> dict[str, str]:
        base = resolved.env.get(spec["name"])
        if base is None:
            base = {e["name"]: str(e.get("value", "")) for e in spec.get("env") or [] if "valueFrom" not in e}
        env = dict(base)
        # Only the kubelet knows these; and $(VAR) refers to names defined earlier in the list.
        ips = {
            "status.podIP": self.pod_ip or "",
            "status.podIPs": self.pod_ip or "",
            "status.hostIP": self.kubelet.node_ip,
            "status.hostIPs": self.kubelet.node_ip,
            "spec.nodeName": self.kubelet.node_name,
        }
        for e in spec.get("env") or []:
            path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path in ips:
                env[e["name"]] = ips[path]
        expanded: dict[str, str] = {}
        for name, value in env.items():
            expanded[name] = expand(value, expanded)
        return expanded

    # Docker housekeeping -----------------------------------------------------------------------------

    def _remove(self, cid: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.kubelet.docker.api.remove_container(cid, force=True, v=True)

    def _remove_by_name(self, name: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            info = self.kubelet.docker.api.inspect_container(name)
            self._remove(info["Id"])

    def _event_once(self, key: str, reason: str, message: str, kind: str, field_path: str = "") -> None:
        """Repeated failures of one kind produce one event per distinct message (the recorder would count)."""
        with self.lock:
            if key in self.seen_events:
                return
            self.seen_events.add(key)
        self.event(reason, message, kind, field_path)

    # Status ------------------------------------------------------------------------------------------

    def _publish(self) -> None:
        with self.lock:
            status = self._status()
            changed = status != self.status
            self.status = status
        if changed:
            self.kubelet._notify(self.namespace, self.name)

    def _container_status(self, rec: _Container) -> dict[str, Any]:
        state: dict[str, Any]
        if rec.running:
            state = {"running": {"startedAt": rec.started_at}}
        elif rec.waiting is not None:
            reason, message = rec.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        elif rec.terminated is not None:
            state = {"terminated": rec.terminated}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        # While a crashed instance waits to be replaced, it is what lastState shows.
        last = rec.terminated if (rec.waiting is not None and rec.terminated) else rec.last_terminated
        status: dict[str, Any] = {
            "name": rec.name,
            "image": rec.spec.get("image", ""),
            "imageID": rec.image_id if rec.container_id else "",
            "ready": rec.ready and rec.running,
            "restartCount": rec.restart_count,
            "started": rec.started and rec.running,
            "state": state,
            "lastState": {"terminated": last} if last else {},
        }
        if rec.container_id:
            status["containerID"] = f"docker://{rec.container_id}"
        return status

    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        value = "True" if ok else "False"
        previous = self.conditions.get(kind)
        if previous is None or previous[0] != value:
            self.conditions[kind] = (value, _now())
        cond: dict[str, Any] = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self.conditions[kind][1],
        }
        if not ok and reason:
            cond["reason"], cond["message"] = reason, message
        return cond

    def _status(self) -> dict[str, Any]:
        specs = self._specs(self.pod)
        for spec, init in specs:
            self._rec(spec, init)
        inits = [self.containers[s["name"]] for s, init in specs if init]
        apps = [self.containers[s["name"]] for s, init in specs if not init]
        restart_policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        phase = _phase(inits, apps, restart_policy)
        unready = [r.name for r in apps if not (r.ready and r.running)]
        incomplete = [r.name for r in inits if not r.completed]
        not_ready = f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition(
                "Initialized",
                not incomplete,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
            ),
            self._condition("Ready", not unready, "ContainersNotReady", not_ready),
            self._condition("ContainersReady", not unready, "ContainersNotReady", not_ready),
            self._condition("PodScheduled", True),
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.kubelet.node_ip,
            "hostIPs": [{"ip": self.kubelet.node_ip}],
            "startTime": self.start_time or _now(),
            "qosClass": _qos_class(self.pod),
            "containerStatuses": [self._container_status(r) for r in apps],
        }
        if self.start_time == "":
            status.pop("startTime")
        if inits:
            status["initContainerStatuses"] = [self._container_status(r) for r in inits]
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return status


class _ConfigError(Exception):
    """A container cannot be configured: its message becomes ``CreateContainerConfigError``'s."""


def _image_ref(attrs: dict[str, Any]) -> str:
    """The kubelet's imageID: ``docker-pullable://repo@sha256:…`` when pulled, else ``docker://<id>``."""
    digests = attrs.get("RepoDigests") or []
    if digests:
        return f"docker-pullable://{digests[0]}"
    return f"docker://{attrs.get('Id', '')}"


def _phase(inits: list[_Container], apps: list[_Container], restart_policy: str) -> str:
    """The kubelet's ``getPhase``."""
    for rec in inits:
        if rec.completed:
            continue
        if rec.terminated is not None and restart_policy == "Never":
            return "Failed"
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for rec in apps:
        if rec.running:
            running += 1
        elif rec.terminated is not None and rec.waiting is None:
            stopped += 1
            succeeded += rec.terminated.get("exitCode") == 0
        elif rec.terminated is not None or rec.last_terminated is not None or rec.restart_count > 0:
            running += 1  # restarting after a crash still counts as running
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _qos_class(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_seen = limits_seen = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_seen = requests_seen or bool(requests) or bool(limits)
        limits_seen = limits_seen or bool(limits)
        for kind in ("cpu", "memory"):
            if kind not in limits or str(requests.get(kind, limits[kind])) != str(limits[kind]):
                guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_seen else "Burstable"


# --- the kubelet --------------------------------------------------------------------------------------


class Kubelet:
    """One node's kubelet for one cluster; every method is thread-safe and :meth:`sync_pod` never blocks.

    Docker work (pulls, creating and starting containers, probes) happens in one worker thread per pod;
    ``sync_pod`` hands the worker the newest Pod and ResolvedPod and returns the status the worker last
    observed (the first call returns ``Pending`` with ``ContainerCreating``), so the asyncio loop may call
    it directly. ``on_change(namespace, name)`` is called from worker threads whenever a pod's status
    changed or it has new events; an asyncio caller should hop back with ``loop.call_soon_threadsafe``.

    ``backoff_base``/``backoff_max``: the crash-loop and image-pull back-off (10 s doubling to 300 s, as the
    kubelet); tests shorten them, the messages keep the kubelet's wording with the shortened durations.
    """

    def __init__(
        self,
        cluster: str,
        node_name: str,
        node_ip: str,
        docker: docker.DockerClient,
        registry_auth: dict[str, dict[str, str]],
        home: Path,
        *,
        on_change: Callable[[str, str], None] | None = None,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.node_ip = node_ip
        self.docker = docker
        self.registry_auth = registry_auth
        self.home = Path(home)
        self.on_change = on_change
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.home_id = home_hash(self.home)
        self.network_name = f"sandbox-{self.home_id}-{cluster}"
        self.pods_dir = self.home / "kube" / "kubelet" / cluster / "pods"
        self._lock = threading.Lock()
        self._network_lock = threading.Lock()
        self._network_ready = False
        self._workers: dict[tuple[str, str], _PodWorker] = {}
        self._events: dict[tuple[str, str], list[dict[str, str]]] = {}

    # The DESIGN.md interface -------------------------------------------------------------------------

    def sync_pod(self, pod: dict[str, Any], resolved: ResolvedPod) -> dict[str, Any]:
        """Make the pod's containers match ``pod.spec``; returns the Pod's ``status``. Idempotent."""
        meta = pod["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        replaced: _PodWorker | None = None
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and meta.get("uid") and worker.uid != meta.get("uid"):
                replaced, worker = worker, None  # same name, new object: the old pod's containers go
            if worker is None:
                worker = _PodWorker(self, pod, resolved)
                self._workers[key] = worker
                start = True
            else:
                start = False
        if replaced is not None:
            threading.Thread(target=self._kill_worker, args=(replaced, 0), daemon=True).start()
        if start:
            worker.thread.start()
        else:
            worker.update(pod, resolved)
        return worker.snapshot()

    def kill_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        """Stop the pod's containers (SIGTERM, SIGKILL after the grace period) and remove them. Blocks."""
        with self._lock:
            worker = self._workers.pop((namespace, name), None)
        if worker is not None:
            self._kill_worker(worker, grace_seconds)
        # Containers of this pod that no worker knows (a daemon that died mid-way) go too.
        found = self.docker.api.containers(
            all=True,
            filters={
                "label": [
                    f"{LABEL_HOME}={self.home_id}",
                    f"{LABEL_CLUSTER}={self.cluster}",
                    f"{LABEL_POD_NAMESPACE}={namespace}",
                    f"{LABEL_POD_NAME}={name}",
                ]
            },
        )
        self._stop_and_remove(namespace, name, found, grace_seconds)

    def pod_logs(
        self, namespace: str, name: str, container: str, tail: int, *, previous: bool = False
    ) -> str:
        """The last ``tail`` lines (all when negative) of a container's output, stdout and stderr merged.

        ``previous``: of the instance before the current one, as ``kubectl logs --previous``. Raises
        :class:`ContainerNotFound` with the API server's message when there is no such instance.
        """
        found = self.docker.api.containers(
            all=True,
            filters={
                "label": [
                    f"{LABEL_HOME}={self.home_id}",
                    f"{LABEL_CLUSTER}={self.cluster}",
                    f"{LABEL_POD_NAMESPACE}={namespace}",
                    f"{LABEL_POD_NAME}={name}",
                    f"{LABEL_CONTAINER_NAME}={container}",
                ]
            },
        )
        found.sort(key=lambda c: int(c["Labels"].get(LABEL_RESTARTS, "0")), reverse=True)
        index = 1 if previous else 0
        if len(found) <= index:
            if previous:
                raise ContainerNotFound(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            raise ContainerNotFound(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        raw = self.docker.api.logs(
            found[index]["Id"], stdout=True, stderr=True, tail=tail if tail >= 0 else "all"
        )
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def drain_events(self, namespace: str, name: str) -> list[dict[str, str]]:
        """Events produced for the pod since the last call, oldest first (shape in the module docstring)."""
        with self._lock:
            return self._events.pop((namespace, name), [])

    def cleanup(self) -> None:
        """Remove every container and the network this kubelet made; Docker volumes of claims stay."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop(wait=5)
        _remove_labelled(self.docker, [f"{LABEL_HOME}={self.home_id}", f"{LABEL_CLUSTER}={self.cluster}"])
        self._network_ready = False
        # emptyDirs and configMap files die with the pods, as on a node that restarts.
        shutil.rmtree(self.pods_dir, ignore_errors=True)

    # Helpers for the workers and the controllers -----------------------------------------------------

    def pod_ip(self, namespace: str, name: str) -> str | None:
        with self._lock:
            worker = self._workers.get((namespace, name))
        return worker.pod_ip if worker else None

    def _record(
        self, namespace: str, name: str, reason: str, message: str, kind: str, field_path: str
    ) -> None:
        event = {"reason": reason, "message": message, "type": kind, "fieldPath": field_path, "time": _now()}
        with self._lock:
            self._events.setdefault((namespace, name), []).append(event)
        self._notify(namespace, name)

    def _notify(self, namespace: str, name: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(namespace, name)
            except Exception:  # the controller's callback must not kill a pod worker
                LOG.exception("on_change callback for %s/%s", namespace, name)

    def _kill_worker(self, worker: _PodWorker, grace_seconds: int) -> None:
        worker.stop(wait=30)
        self._stop_and_remove(worker.namespace, worker.name, worker._existing(), grace_seconds)
        shutil.rmtree(worker.pod_dir, ignore_errors=True)

    def _stop_and_remove(
        self, namespace: str, name: str, found: list[dict[str, Any]], grace_seconds: int
    ) -> None:
        import docker.errors

        running = [c for c in found if c["Labels"].get(LABEL_TYPE) == "container" and c["State"] == "running"]

        def stop(c: dict[str, Any]) -> None:
            container = c["Labels"].get(LABEL_CONTAINER_NAME, "")
            field_path = f"spec.containers{{{container}}}"
            self._record(namespace, name, "Killing", f"Stopping container {container}", "Normal", field_path)
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                # Docker sends the image's stop signal (SIGTERM unless it says otherwise), SIGKILL after.
                self.docker.api.stop(c["Id"], timeout=max(0, int(grace_seconds)))

        threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join(grace_seconds + 30)
        for c in found:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.docker.api.remove_container(c["Id"], force=True, v=True)

    def ensure_network(self) -> str:
        """The cluster's Docker network, created with a fixed subnet on first use."""
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        with self._network_lock:
            if self._network_ready:
                return self.network_name
            existing = [
                n
                for n in self.docker.api.networks(names=[self.network_name])
                if n["Name"] == self.network_name
            ]
            if not existing:
                labels = {LABEL_HOME: self.home_id, LABEL_CLUSTER: self.cluster}
                # Let Docker choose a free range (it knows the host's routes), then pin it: connecting a
                # container with a chosen IP needs a user-configured subnet.
                probe = self.docker.api.create_network(
                    f"{self.network_name}-probe", driver="bridge", labels=labels
                )
                try:
                    config = self.docker.api.inspect_network(probe["Id"])["IPAM"]["Config"][0]
                finally:
                    self.docker.api.remove_network(probe["Id"])
                pool = IPAMPool(subnet=config["Subnet"], gateway=config.get("Gateway"))
                try:
                    self.docker.api.create_network(
                        self.network_name,
                        driver="bridge",
                        labels=labels,
                        ipam=IPAMConfig(pool_configs=[pool]),
                    )
                except docker.errors.APIError as e:
                    if "already exists" not in _docker_error(e):
                        raise
            self._network_ready = True
            return self.network_name

    def ensure_pause_image(self) -> str:
        """The pause image, built once from the host's static busybox."""
        from sandbox.kube.pgimage import RootFS, build_image, image_recipe, static_busybox

        with self._network_lock:
            recipe = hashlib.sha256(
                f"{PAUSE_SCRIPT}\n{static_busybox().stat().st_size}".encode()
            ).hexdigest()[:16]
            if image_recipe(self.docker, PAUSE_IMAGE) == recipe:
                return PAUSE_IMAGE
            rootfs = RootFS()
            rootfs.add_host_file(static_busybox(), "/bin/busybox")
            rootfs.add_symlink("/bin/sh", "busybox")
            rootfs.add_symlink("/bin/sleep", "busybox")
            build_image(self.docker, PAUSE_IMAGE, rootfs, ['CMD ["/bin/sh"]'], recipe)
            return PAUSE_IMAGE

    def ensure_volume(self, volume: str, claim: str, namespace: str) -> None:
        """A claim's Docker volume, made as a fresh GKE persistent disk is: ext4, ``lost+found`` at its root.

        That folder is why a database must keep its data in a subdirectory of the mount on GKE; the sandbox
        reproduces it so the same mistake fails here too.
        """
        import docker.errors

        try:
            self.docker.api.inspect_volume(volume)
            return
        except docker.errors.NotFound:
            pass
        labels = {
            LABEL_HOME: self.home_id,
            LABEL_CLUSTER: self.cluster,
            "sandbox.kube/claim": f"{namespace}/{claim}",
        }
        self.docker.api.create_volume(volume, labels=labels)
        image = self.ensure_pause_image()
        helper = self.docker.api.create_container(
            image,
            command=["/bin/busybox", "mkdir", "-m", "700", "/disk/lost+found"],
            labels={LABEL_HOME: self.home_id, LABEL_CLUSTER: self.cluster},
            host_config=self.docker.api.create_host_config(binds={volume: {"bind": "/disk", "mode": "rw"}}),
        )
        try:
            self.docker.api.start(helper["Id"])
            self.docker.api.wait(helper["Id"], timeout=30)
        finally:
            self.docker.api.remove_container(helper["Id"], force=True, v=True)

    def pull(self, image: str) -> str | None:
        """Pull with the registry's credentials; returns the error message, or None when it worked."""
        import docker.errors

        host = registry_host(image)
        auth = self.registry_auth.get(host)
        if auth is None and host == "docker.io":
            auth = self.registry_auth.get("index.docker.io") or self.registry_auth.get(
                "https://index.docker.io/v1/"
            )
        repo, tag, digest = split_image(image)
        reference = digest or tag or "latest"
        try:
            for line in self.docker.api.pull(repo, tag=reference, stream=True, decode=True, auth_config=auth):
                if isinstance(line, dict) and line.get("error"):
                    return str(line["error"]).strip()
        except docker.errors.APIError as e:
            return _docker_error(e)
        except docker.errors.DockerException as e:
            return str(e)
        return None
