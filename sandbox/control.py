"""Start, stop and describe the sandbox daemon: what ``invoke sandbox.*`` calls.

``up`` seeds the git remote, starts ``python -m sandbox serve`` detached and waits for ``ready.json``;
``down`` stops it and checks that its listeners are gone; ``env_lines`` turns ``ready.json`` into the
``export`` lines that point the pipeline at the sandbox.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from . import SandboxError
from .gitremote import seed
from .home import Home

START_TIMEOUT = 300.0  # a first start builds the PostgreSQL image offline


def _pid(home: Home) -> int | None:
    try:
        pid = int(home.pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def status(home: Home) -> dict[str, Any] | None:
    """``ready.json`` when the daemon runs and is ready, else None."""
    if _pid(home) is None:
        return None
    return home.read_ready()


def _log_tail(home: Home, lines: int = 5) -> str:
    try:
        text = home.log_file.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(text[-lines:])


def _spawn(home: Home) -> int:
    """Start the daemon in its own session, detached from this process (no Popen left to reap)."""
    log = os.open(home.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "sandbox", "serve", "--home", str(home.path)],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)


def up(home: Home, project_root: Path, branch: str = "main") -> dict[str, Any]:
    running = status(home)
    if running is not None:
        return running
    if _pid(home) is not None:
        raise SandboxError(
            f"a sandbox daemon is starting or stuck (pid file {home.pid_file}); run sandbox.down"
        )
    home.ensure_settings()
    seed(home.git_remote, project_root, branch)
    home.run.mkdir(parents=True, exist_ok=True)
    home.ready_file.unlink(missing_ok=True)
    pid = _spawn(home)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready = home.read_ready()
        if ready is not None:
            return ready
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            raise SandboxError(f"the sandbox daemon exited while starting: {_log_tail(home)}")
        time.sleep(0.2)
    down(home)
    raise SandboxError(f"the sandbox did not become ready within {START_TIMEOUT:.0f} s; see {home.log_file}")


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, int(port))) == 0


def down(home: Home, timeout: float = 60.0) -> bool:
    """Stop the daemon; return False when none was running."""
    pid = _pid(home)
    if pid is None:
        home.pid_file.unlink(missing_ok=True)
        home.ready_file.unlink(missing_ok=True)
        return False
    addresses = listeners(home.read_ready() or {})
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid(home) is not None:
        time.sleep(0.1)
    if _pid(home) is not None:
        os.killpg(pid, signal.SIGKILL)
        raise SandboxError(f"the sandbox daemon ignored SIGTERM for {timeout:.0f} s and was killed")
    still = [a for a in addresses if _listening(a)]
    if still:
        raise SandboxError(f"still listening after down: {', '.join(still)}")
    return True


def listeners(ready: dict[str, Any]) -> list[str]:
    """Every host:port the running sandbox listens on, as its services described them."""
    found: list[str] = []
    for value in ready.values():
        if isinstance(value, dict):
            found += [v for k, v in value.items() if k in ("address", "addresses") and isinstance(v, str)]
            found += [a for a in value.get("listeners", []) if isinstance(a, str)]
    return found


def env_lines(ready: dict[str, Any]) -> list[str]:
    return [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(ready.get("env", {}).items())]


def purge(home: Home) -> None:
    """Stop the sandbox and delete everything it kept: cluster state, registry data, database volumes."""
    import shutil

    down(home)
    settings = home.load_settings()
    if settings is not None and settings.clusters:
        from .kube.kubelet.runtime import remove_volumes

        # The kubelets label what they make with the home they serve (service.py hands them home.path).
        remove_volumes(home.path)
    shutil.rmtree(home.path, ignore_errors=True)
