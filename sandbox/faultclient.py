"""The client of the daemon's control interface (``controlserver.py``): what tests and scripts call.

Standard library only (``http.client`` over the Unix socket), so a test or ``scripts/bench`` can turn a
fault on without importing the daemon's dependencies::

    faults = FaultClient(Home(path))
    faults.set_latency(40)
    with faults.fault("api:staging", "status", status=503, seconds=5):
        ...                                   # cleared on exit, even when it has not expired
    faults.refuse_git_pushes()

``python -m sandbox faults --home DIR ...`` is the same from a shell (``faultcli.py``).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import SandboxError
from .home import Home


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class FaultClient:
    def __init__(self, home: Home | Path, timeout: float = 30.0) -> None:
        self.home = home if isinstance(home, Home) else Home(Path(home))
        self.timeout = timeout

    @property
    def socket_path(self) -> Path:
        return self.home.run / "control.sock"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        connection = _UnixConnection(self.socket_path, self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data: dict[str, Any] = json.loads(response.read() or b"{}")
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise SandboxError(
                f"the sandbox's control socket {self.socket_path} does not answer: is the sandbox up?"
            ) from e
        finally:
            connection.close()
        if response.status >= 400:
            raise SandboxError(f"sandbox control {method} {path}: {data.get('error', response.status)}")
        return data

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def set_latency(self, ms: int) -> dict[str, Any]:
        return self._call("PUT", "/latency", {"ms": ms})

    def set_fault(
        self,
        target: str,
        mode: str,
        *,
        status: int = 503,
        delay_ms: int = 0,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        body = {"target": target, "mode": mode, "status": status, "delay_ms": delay_ms, "seconds": seconds}
        return self._call("POST", "/faults", body)

    def clear(self, target: str | None = None) -> dict[str, Any]:
        return self._call("DELETE", f"/faults/{target}" if target else "/faults")

    @contextmanager
    def fault(self, target: str, mode: str, **options: Any) -> Iterator[dict[str, Any]]:
        state = self.set_fault(target, mode, **options)
        try:
            yield state
        finally:
            self.clear(target)

    def refuse_git_pushes(self, seconds: float | None = None) -> dict[str, Any]:
        return self._call("POST", "/git/refuse", {"seconds": seconds})

    def allow_git_pushes(self) -> dict[str, Any]:
        return self._call("DELETE", "/git/refuse")

    def kill_container(
        self, cluster: str, namespace: str, pod: str, container: str | None = None
    ) -> list[str]:
        body = {"cluster": cluster, "namespace": namespace, "pod": pod, "container": container}
        killed: list[str] = self._call("POST", "/kill", body)["killed"]
        return killed

    def delete_pod(self, cluster: str, namespace: str, name: str) -> dict[str, Any]:
        return self._call("POST", "/pods/delete", {"cluster": cluster, "namespace": namespace, "name": name})
