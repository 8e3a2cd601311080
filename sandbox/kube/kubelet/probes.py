"""Readiness, liveness and startup probes: one thread per probe of a running container instance.

A :class:`Prober` is the kubelet's probe worker: it waits ``initialDelaySeconds``, probes every
``periodSeconds`` (exec through the runtime, HTTP GET or TCP connect against the pod IP), sends one
``Unhealthy`` event per failed attempt and reports to its owner once a threshold is crossed. Readiness
and liveness wait for the startup probe. The owner is the pod worker (``worker.py``), which flips
``ready``/``started`` or schedules the restart; ``containers.py`` starts and stops the probers.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .runtime import RuntimeFailure

if TYPE_CHECKING:
    from .record import ContainerRecord
    from .runtime import DockerRuntime

USER_AGENT = "kube-probe/1.30"


class ProbeOwner(Protocol):
    """What a prober needs from its pod worker."""

    runtime: DockerRuntime

    @property
    def pod_ip(self) -> str | None: ...

    def event(self, reason: str, message: str, kind: str = "Normal", field_path: str = "") -> None: ...

    def probe_result(self, rec: ContainerRecord, cid: str, kind: str, ok: bool) -> None: ...


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


def resolve_port(spec: dict[str, Any], port: Any) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in spec.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"could not find port {port!r} in container {spec.get('name')}")


def http_probe(spec: dict[str, Any], ip: str, port: int, timeout: float) -> ProbeResult:
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
        return ProbeResult(
            False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        )
    except ConnectionRefusedError:
        return ProbeResult(False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused')
    except OSError as e:
        return ProbeResult(False, f'Get "{url}": {e}')
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {response.status}")


def tcp_probe(spec: dict[str, Any], ip: str, port: int, timeout: float) -> ProbeResult:
    host = spec.get("host") or ip
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except ConnectionRefusedError:
        return ProbeResult(False, f"dial tcp {host}:{port}: connect: connection refused")
    except OSError as e:
        return ProbeResult(False, f"dial tcp {host}:{port}: {e}")


def exec_probe(runtime: DockerRuntime, container_id: str, command: list[str], timeout: float) -> ProbeResult:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["code"], result["output"] = runtime.exec(container_id, command)
        except RuntimeFailure as e:
            result["error"] = str(e)

    # The engine's exec has no deadline of its own: a thread that is given up on keeps the probe on time.
    worker = threading.Thread(target=run, daemon=True, name="exec-probe")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return ProbeResult(False, f"command {json.dumps(' '.join(command))} timed out")
    if "error" in result:
        return ProbeResult(False, str(result["error"]))
    output = result.get("output", b"")
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    return ProbeResult(result.get("code") == 0, text)


class Prober(threading.Thread):
    """One probe (readiness, liveness or startup) of one container instance, as the kubelet's probe worker."""

    def __init__(
        self, owner: ProbeOwner, rec: ContainerRecord, kind: str, spec: dict[str, Any], cid: str
    ) -> None:
        super().__init__(daemon=True, name=f"probe-{kind}-{rec.name}")
        self.owner, self.rec, self.kind, self.spec, self.cid = owner, rec, kind, spec, cid
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
                    self.owner.probe_result(self.rec, self.cid, self.kind, True)
            else:
                successes, failures = 0, failures + 1
                label = {"readiness": "Readiness", "liveness": "Liveness", "startup": "Startup"}[self.kind]
                self.owner.event(
                    "Unhealthy", f"{label} probe failed: {result.message}", "Warning", self.rec.field_path
                )
                if failures >= failure_threshold:
                    self.owner.probe_result(self.rec, self.cid, self.kind, False)
                    if self.kind != "readiness":
                        return
            if self.stopped.wait(period):
                return

    def probe(self, timeout: float) -> ProbeResult:
        ip = self.owner.pod_ip or ""
        try:
            if "exec" in self.spec:
                command = [str(c) for c in self.spec["exec"].get("command") or []]
                return exec_probe(self.owner.runtime, self.cid, command, timeout)
            if "httpGet" in self.spec:
                port = resolve_port(self.rec.spec, self.spec["httpGet"].get("port"))
                return http_probe(self.spec["httpGet"], ip, port, timeout)
            if "tcpSocket" in self.spec:
                port = resolve_port(self.rec.spec, self.spec["tcpSocket"].get("port"))
                return tcp_probe(self.spec["tcpSocket"], ip, port, timeout)
        except (ValueError, KeyError) as e:
            return ProbeResult(False, str(e))
        return ProbeResult(False, "unsupported probe handler")


def start_probers(owner: ProbeOwner, rec: ContainerRecord, cid: str) -> None:
    """Start the probes the container's spec asks for (init containers have none), replacing older ones."""
    stop_probers(rec)
    for kind, key in (
        ("startup", "startupProbe"),
        ("readiness", "readinessProbe"),
        ("liveness", "livenessProbe"),
    ):
        if rec.spec.get(key) and not rec.init:
            prober = Prober(owner, rec, kind, rec.spec[key], cid)
            rec.probers.append(prober)
            prober.start()


def stop_probers(rec: ContainerRecord) -> None:
    for prober in rec.probers:
        prober.stopped.set()
    rec.probers = []
