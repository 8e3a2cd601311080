"""One release, promote, rollback or repair as the history sees it: who, what, and how it ended.

:class:`Run` writes an operation's ``started`` record before its first change and its outcome at the end,
both under one id (``history`` merges them back into one line); :func:`records` reads the environment's
history and closes, as ``interrupted``, operations that started and never ended. Both write only after
the :data:`~pipeline.verify.Guard` confirmed that this operation still holds the environment's Lease.
Neighbours: ``release.py`` and ``revert`` use them; ``history`` and ``gitops`` do the git work.
"""

from __future__ import annotations

import datetime
import os
import uuid
from dataclasses import dataclass, field
from typing import Literal

from . import history, verify
from .base import first_line
from .config import Environment, Settings
from .errors import GitOpsError
from .images import Image
from .report import Timeline

Kind = Literal["release", "promote", "rollback", "repair"]


def actor() -> str:
    import getpass

    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Run:
    """One operation's identity in the history: its ``started`` record and its outcome share ``id``."""

    settings: Settings
    env: Environment
    kind: Kind
    image: Image
    source_commit: str
    approver: str | None
    tl: Timeline
    guard: verify.Guard
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def entry(self, result: history.Result, reason: str = "") -> history.Record:
        return history.Record(
            self.env.name, self.kind, result, self.image.ref, self.image.digest, self.source_commit, actor(),
            now(), self.approver, reason, self.tl.seconds(), self.id,
        )  # fmt: skip

    def start(self) -> None:
        self.guard()
        history.start(self.settings, self.entry("started"))

    def record(self, commit: str, result: history.Result, reason: str = "", *, strict: bool = True) -> str:
        """Write the outcome; after a failure (``strict`` False) a refused write is told, not raised."""
        try:
            self.guard()
            with self.tl.stage("record"):
                history.record(self.settings, commit, self.entry(result, reason))
        except GitOpsError as e:
            if strict:
                raise
            return f"{reason}; recording it in the history failed too ({first_line(e)})"
        return reason


def records(settings: Settings, env: Environment, guard: verify.Guard, tl: Timeline) -> list[history.Record]:
    """The environment's history, with operations that never finished closed as ``interrupted``.

    Only under the Lease: no other operation can be running, so a ``started`` without an outcome was killed.
    """
    found = history.read(settings, env.name)
    if history.dangling(found):
        guard()
        closed = history.close_interrupted(settings, found, actor())
        tl.progress(f"{len(closed)} earlier operation(s) never finished: recorded as interrupted")
        found = history.read(settings, env.name)
    return found
