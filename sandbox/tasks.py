"""The sandbox's command layer: `invoke sandbox.up`, `sandbox.down`, `sandbox.status`, `sandbox.env`.

``tasks.py`` adds this collection to its own (and sets ``project_root`` in invoke's config, the checkout
whose ``.sandbox/`` these tasks manage); the work is in ``control.py``. Expected failures print one line
and exit 1, like the pipeline's tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from .errors import SandboxError

if TYPE_CHECKING:
    from rich.console import Console

    from .home import Home


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SandboxError as e:
        raise Exit(f"error: {e}", code=1) from None


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _home(c: Context) -> Home:
    from .home import Home

    return Home.locate(Path(c.config.project_root))


@task(name="up")
def sandbox_up(c: Context) -> None:
    """Start the sandbox (registry, git remote, clusters); safe to run again."""
    from . import control

    with _errors():
        ready = control.up(_home(c), Path(c.config.project_root))
    console = _console()
    registry = ready.get("registry", {})
    console.print(f"registry (Docker Hub stand-in): {registry.get('address')}, user {registry.get('user')}")
    console.print(f"git remote (GitHub stand-in):   {ready.get('env', {}).get('PIPELINE_GITOPS_REMOTE')}")
    kube = ready.get("kube", {})
    if kube:
        console.print(f"GKE Container API stand-in:     {kube.get('gke_endpoint')}")
        for name, cluster in kube.get("clusters", {}).items():
            console.print(f"cluster {name:<8} API {cluster['server']}, node {cluster['node_ip']}")
    console.print('Point the pipeline at it with:  eval "$(invoke sandbox.env)"')


@task(name="down", help={"purge": "also delete its state: cluster objects, registry, git remote, DB volumes"})
def sandbox_down(c: Context, purge: bool = False) -> None:
    """Stop the sandbox; its state (images, git remote, cluster objects) is kept for the next up."""
    from . import control

    with _errors():
        if purge:
            control.purge(_home(c))
            print("sandbox stopped and its state deleted")
            return
        stopped = control.down(_home(c))
    print("sandbox stopped" if stopped else "sandbox was not running")


@task(name="status")
def sandbox_status(c: Context) -> None:
    """Say what the sandbox runs; exits 1 when it is not running."""
    from . import control

    ready = control.status(_home(c))
    if ready is None:
        raise Exit("sandbox: not running (start it with: invoke sandbox.up)", code=1)
    for key, value in sorted(ready.items()):
        if key != "env":
            print(f"{key}: {value}")


@task(name="env")
def sandbox_env(c: Context) -> None:
    """Print export lines: eval "$(invoke sandbox.env)" points every task at the sandbox."""
    from . import control

    ready = control.status(_home(c))
    if ready is None:
        raise Exit("sandbox: not running (start it with: invoke sandbox.up)", code=1)
    print("\n".join(control.env_lines(ready)))


sandbox = Collection("sandbox", sandbox_up, sandbox_down, sandbox_status, sandbox_env)
