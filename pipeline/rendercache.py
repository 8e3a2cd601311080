"""Rendered overlays kept by commit: a commit's tree never changes, nor what kustomize makes of it.

The drift check renders the overlay of the last good release's commit every time it runs (every 15
minutes on a schedule, and by hand during an incident), and exporting that commit's tree and running
kustomize is most of what a check of a healthy environment costs. The answer depends only on the commit,
the overlay's path and the kustomize binary, so it is kept in ``.pipeline/cache/renders/`` (never
committed), one JSON file per key, written atomically. A file that cannot be read is a miss, never an
error, and only the newest :data:`KEEP` files are kept. The app's Secret is not in a render (it comes from
the environment at check time), so nothing secret is written here.

Neighbours: ``drift`` uses it; the key hashes the binary as ``fingerprint`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .base import Obj
from .config import Environment, Settings
from .overlays import Pin

VERSION = 1
KEEP = 32

Render = tuple[str, Pin | None, list[Obj]]


def _directory(settings: Settings) -> Path:
    return settings.root / ".pipeline" / "cache" / "renders"


def _key(settings: Settings, commit: str, env: Environment, kustomize: tuple[str, ...]) -> str:
    binary: list[object] = list(kustomize)
    with contextlib.suppress(OSError, IndexError):
        st = os.stat(kustomize[0])
        binary += [st.st_size, st.st_mtime_ns]
    raw = json.dumps(
        {
            "v": VERSION,
            "commit": commit,
            "overlay": env.overlay,
            "pin": settings.image.kustomize_name,
            "kustomize": binary,
        }
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _load(path: Path, commit: str) -> Render | None:
    try:
        data = json.loads(path.read_text())
        pin = data["pin"]
        objects = data["objects"]
        if data.get("commit") != commit or not isinstance(objects, list):
            return None
        return commit, (Pin(**pin) if pin is not None else None), objects
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(directory: Path, path: Path, render: Render) -> None:
    commit, pin, objects = render
    try:
        text = json.dumps({"commit": commit, "pin": pin and dataclasses.asdict(pin), "objects": objects})
    except (TypeError, ValueError):
        return  # not JSON (a YAML timestamp, say): such an overlay is simply rendered every time
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".render-")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
        kept = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # not writable: it only costs the next check a render


def cached(
    settings: Settings,
    env: Environment,
    commit: str,
    kustomize: tuple[str, ...],
    render: Callable[[], Render],
) -> Render:
    """``render()`` of ``env``'s overlay at the full commit hash ``commit``, or what it gave last time."""
    directory = _directory(settings)
    path = directory / f"{_key(settings, commit, env, kustomize)}.json"
    found = _load(path, commit)
    if found is not None:
        return found
    made = render()
    if made[0] == commit:
        _store(directory, path, made)
    return made
