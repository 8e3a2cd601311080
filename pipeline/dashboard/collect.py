"""Everything the dashboard shows, gathered once into plain frozen dataclasses (the page's view model).

Reads the release records (``pipeline.history``), the source commits (``commits.py``), each environment's
pin in git and, unless told not to, its cluster (``live.py``); computes the metrics (``metrics.py``). The
templates (``site.py``) only format what is here. Records of kinds or results this code does not know yet
(``repair``, ``interrupted``, ``started``, ...) are shown as they are, with a neutral style.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import history
from ..config import Settings
from ..overlays import Pin
from . import commits, live, metrics
from .commits import Commit
from .live import Live

# The order the release chain runs its stages in (the records keep them sorted by name); a stage this list
# does not know goes last, in name order.
STAGE_ORDER = (
    "build", "noop", "preflight", "bump", "apply", "rollout", "smoke",
    "revert", "apply (previous)", "rollout (previous)", "smoke (previous)", "record", "fingerprint",
)  # fmt: skip


def ordered_stages(stages: Mapping[str, float]) -> list[tuple[str, float]]:
    known = {name: i for i, name in enumerate(STAGE_ORDER)}
    return sorted(stages.items(), key=lambda item: (known.get(item[0], len(known)), item[0]))


# The CSS class of each result; anything else is "other".
RESULT_STYLES = {
    "succeeded": "ok",
    "unchanged": "quiet",
    "rolled-back": "bad",
    "failed": "bad",
    "started": "other",
    "interrupted": "warn",
}


@dataclass(frozen=True)
class Event:
    """One record on the timeline."""

    record: history.Record
    when: datetime.datetime | None
    style: str
    commit: Commit | None

    @property
    def tag(self) -> str:
        return self.record.image.rpartition(":")[2] or self.record.image

    @property
    def stages(self) -> list[tuple[str, float]]:
        return ordered_stages(self.record.stages)

    @property
    def total_seconds(self) -> float:
        return sum(self.record.stages.values())


@dataclass(frozen=True)
class Check:
    """A verdict with its wording: ``style`` is ok, bad, warn or other."""

    style: str
    text: str


@dataclass(frozen=True)
class EnvView:
    name: str
    pin: Pin | None
    released: history.Record | None  # the record that put the pinned digest there
    commit: Commit | None  # the released record's source commit
    live: Live | None  # None: not asked (--offline)
    agreement: Check
    smoke: Check
    metrics: metrics.Metrics
    events: tuple[Event, ...]  # newest first


@dataclass(frozen=True)
class Dashboard:
    generated: str
    window_days: float
    envs: tuple[EnvView, ...]


def released_record(records: Sequence[history.Record], pin: Pin | None) -> history.Record | None:
    """The newest succeeded record of the pinned digest (or, without a digest, the newest succeeded one)."""
    for record in records:
        if record.result == "succeeded" and (pin is None or not pin.digest or record.digest == pin.digest):
            return record
    return None


def agreement(pin: Pin | None, seen: Live | None, released: history.Record | None = None) -> Check:
    """Whether the cluster runs what git pins (``released``: the record that put it there, if any)."""
    if seen is None:
        return Check("other", "not checked (offline report)")
    if not seen.reachable:
        return Check("warn", f"cluster not reachable: {seen.error}")
    if pin is None:
        return Check("other", "git pins no image yet")
    if not seen.workloads:
        if released is None:
            return Check("other", "nothing released here yet")
        return Check("bad", f"the cluster runs no workload of {pin.new_name}")
    others = sorted(seen.images - {pin.ref})
    if others:
        return Check("bad", f"differs from git: the cluster runs {', '.join(others)}")
    ready = ", ".join(f"{w.name} {w.ready}/{w.replicas} ready" for w in seen.workloads)
    return Check("ok", f"agrees with git ({ready})")


def smoke_result(records: Sequence[history.Record]) -> Check:
    """The outcome of the newest smoke tests the records tell of (newest first)."""
    for r in records:
        if not any(name.startswith("smoke") for name in r.stages):
            continue
        if r.result == "succeeded":
            return Check(
                "ok", f"passed ({r.kind} of {r.image.rpartition(':')[2]}, {metrics.readable_time(r.at)})"
            )
        if r.result == "rolled-back" and "smoke (previous)" in r.stages:
            return Check(
                "ok", f"passed on the restored release ({metrics.readable_time(r.at)}), after: {r.reason}"
            )
        if r.reason.startswith("smoke"):
            return Check("bad", f"failed ({metrics.readable_time(r.at)}): {r.reason}")
        return Check("other", f"{r.result} ({metrics.readable_time(r.at)}): {r.reason}")
    return Check("other", "no smoke tests recorded yet")


def _view(
    settings: Settings,
    name: str,
    records: list[history.Record],
    pin: Pin | None,
    found: dict[str, Commit],
    *,
    ask_cluster: bool,
    now: datetime.datetime,
    days: float,
) -> EnvView:
    env = settings.environment(name)
    repository = pin.new_name if pin else settings.image_repository
    seen = live.read(settings, env, repository) if ask_cluster else None
    released = released_record(records, pin)
    times = {sha: c.time for sha, c in found.items()}
    events = tuple(
        Event(r, metrics.parse_time(r.at), RESULT_STYLES.get(r.result, "other"), found.get(r.source_commit))
        for r in records
    )
    return EnvView(
        name=name,
        pin=pin,
        released=released,
        commit=found.get(released.source_commit) if released else None,
        live=seen,
        agreement=agreement(pin, seen, released),
        smoke=smoke_result(records),
        metrics=metrics.compute(records, times, env=name, now=now, days=days),
        events=events,
    )


def collect(
    settings: Settings,
    env_names: Sequence[str] = (),
    *,
    days: float = 30.0,
    ask_cluster: bool = True,
    now: datetime.datetime | None = None,
    limit: int = 500,
) -> Dashboard:
    """The dashboard of ``env_names`` (default: every environment in the configuration)."""
    names = list(env_names) or list(settings.environments)
    envs = [settings.environment(n) for n in names]
    now = now or datetime.datetime.now(datetime.UTC)
    records = {n: history.read(settings, n, limit) for n in names}
    found = commits.lookup(settings.root, (r.source_commit for rs in records.values() for r in rs))
    pinned = live.pins(settings, envs)
    views = tuple(
        _view(settings, n, records[n], pinned[n], found, ask_cluster=ask_cluster, now=now, days=days)
        for n in names
    )
    return Dashboard(now.isoformat(timespec="seconds"), days, views)
