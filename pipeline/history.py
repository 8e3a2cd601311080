"""Record stage: every release's outcome, kept in git as an audit trail (``invoke history``).

A record is one JSON line in a git note (``refs/notes/releases``) on the overlay commit that was deployed:
who released which digest from which source commit, who approved it, how it ended and how long each stage
took. Notes keep the trail in git without adding commits to ``main`` (so they cannot start CI), and they
travel with the remote. ``release.py`` writes records and reads them back to refuse a digest that already
failed and to find what to promote or roll back to; ``gitops.py`` does the git work.

An operation is written twice under one ``id``: ``started`` before its first change (on the last overlay
commit, since the bump does not exist yet), and its outcome at the end (on the commit it deployed).
:func:`read` shows each operation once, its outcome replacing the ``started`` line; one that never ended
(killed) stays ``started`` until the next operation on the environment, which holds the Lease and so knows
that nothing else runs, closes it as ``interrupted`` (:func:`close_interrupted`). Only ``succeeded`` makes
a digest good (promotable, a rollback target, "nothing to do"); ``started`` and ``interrupted`` never do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from . import gitops
from .config import Settings

Result = Literal["succeeded", "unchanged", "rolled-back", "failed", "started", "interrupted"]
# Outcomes that say something about the digest itself (a kill or a no-op says nothing).
DECISIVE = frozenset({"succeeded", "rolled-back", "failed"})


@dataclass(frozen=True)
class Record:
    env: str
    # repair: the same release put back after drift (``invoke drift --repair``).
    kind: Literal["release", "promote", "rollback", "repair"]
    result: Result
    image: str  # repository:tag
    digest: str | None
    source_commit: str
    actor: str
    at: str  # ISO 8601, UTC
    approved_by: str | None = None
    reason: str = ""
    stages: Mapping[str, float] = field(default_factory=dict)
    # Shared by an operation's ``started`` record and its outcome; empty in records older than that.
    id: str = ""
    # Filled when read back: the overlay commit the note hangs on.
    commit: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("commit")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, commit: str) -> Record | None:
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(**data, commit=commit)
        except (ValueError, TypeError):
            return None  # someone else's note on the same commit


def record(settings: Settings, commit: str, entry: Record) -> None:
    gitops.add_note(settings, commit, entry.to_json())


def read(settings: Settings, env: str, limit: int = 50) -> list[Record]:
    """The environment's records, newest first: one per operation (its outcome, or ``started``)."""
    overlay = settings.environment(env).overlay
    records: list[Record] = []
    for noted in gitops.noted_log(settings, overlay, limit):
        for line in reversed(noted.notes):
            entry = Record.from_json(line, noted.commit)
            if entry is not None and entry.env == env:
                records.append(entry)
    return merged(records)


def merged(records: list[Record]) -> list[Record]:
    """One record per operation, newest first: an outcome replaces the ``started`` record of its id."""
    ended = {r.id for r in records if r.id and r.result != "started"}
    kept = [r for r in records if r.result != "started" or r.id not in ended]
    return sorted(kept, key=lambda r: r.at, reverse=True)


def start(settings: Settings, entry: Record) -> None:
    """Record ``entry`` (result ``started``) before the operation changes anything."""
    overlay = settings.environment(entry.env).overlay
    record(settings, gitops.last_commit(settings, overlay), entry)


def dangling(records: list[Record]) -> list[Record]:
    """Operations that started and never recorded an outcome (as :func:`read` returns them)."""
    return [r for r in records if r.result == "started"]


def close_interrupted(settings: Settings, records: list[Record], by: str) -> list[Record]:
    """Mark each dangling operation ``interrupted``: call only while holding the environment's Lease."""
    import dataclasses

    closed = []
    for entry in dangling(records):
        done = dataclasses.replace(
            entry, result="interrupted", reason=f"never finished (found by {by})", commit=""
        )
        record(settings, entry.commit, done)
        closed.append(dataclasses.replace(done, commit=entry.commit))
    return closed


def failed_digests(records: list[Record]) -> set[str]:
    """Digests whose latest release failed: they are not released again unless forced."""
    latest: dict[str, Record] = {}
    for entry in records:  # newest first
        if entry.digest and entry.digest not in latest and entry.result in DECISIVE:
            latest[entry.digest] = entry
    return {d for d, r in latest.items() if r.result in ("failed", "rolled-back")}


def verified(records: list[Record], digest: str | None) -> bool:
    """Whether ``digest``'s newest record here (no-ops aside) is a success: what "nothing to do" requires.

    A later ``started`` or ``interrupted`` release of the same digest re-applied it without proving it
    again (killed mid-rollout or mid-smoke), so it counts against, as a failure does.
    """
    latest = next((r for r in records if r.digest == digest and r.result != "unchanged"), None)
    return bool(digest) and latest is not None and latest.result == "succeeded"


def passed(records: list[Record], digest: str) -> Record | None:
    """The newest succeeded release of exactly ``digest``: what makes it promotable."""
    return next((r for r in records if r.digest == digest and r.result == "succeeded"), None)


def matching(records: list[Record], to: str) -> Record | None:
    """The newest succeeded release whose tag or digest is ``to``, or whose overlay commit starts with it."""
    for r in records:
        if r.result == "succeeded" and to in (r.image.rsplit(":", 1)[-1], r.digest):
            return r
        if len(to) >= 7 and r.commit.startswith(to):
            return r
    return None


def last_good(records: list[Record], *, excluding: str | None = None) -> Record | None:
    """The newest release that succeeded, other than ``excluding`` (a digest)."""
    for entry in records:
        if entry.result == "succeeded" and entry.digest and entry.digest != excluding:
            return entry
    return None
