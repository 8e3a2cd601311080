"""What a finished release, promote or rollback reports, and how: the stage table, GitHub's job summary,
annotations and step outputs.

:class:`ReleaseReport` (with one :class:`StageResult` per stage) is what ``release.py`` returns and what
``tasks.py`` prints or writes as JSON; :class:`Timeline` times the stages as ``release.py`` runs them. The
functions below are pure, so ``tasks.py`` only decides where the text goes: the terminal,
``$GITHUB_STEP_SUMMARY``, ``$GITHUB_OUTPUT`` or a workflow command on stdout. The progress callback the
stages report through is ``base.Progress`` (one definition, below every stage).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .base import Progress, first_line
from .errors import StageFailed
from .images import Image

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class StageResult:
    name: str
    status: Status
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class ReleaseReport:
    env: str
    kind: str  # release, promote, rollback
    # released, unchanged (nothing to do), rolled-back (failed, previous release restored), failed,
    # interrupted (SIGTERM/Ctrl-C: stopped at a safe point, rolled back if it had changed anything)
    result: str
    image: Image | None
    source_commit: str
    stages: tuple[StageResult, ...]
    bump_commit: str | None = None
    reason: str = ""
    urls: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # The rollout stage's result as JSON (``rollout.RolloutResult.to_dict``), for --json and CI.
    rollout: Mapping[str, Any] | None = None
    # The whole story of a failure (events, log lines); ``reason`` is its first line.
    diagnosis: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("released", "unchanged")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class Timeline:
    """Times each stage and remembers how it ended, for the summary table and the history record."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stages: list[StageResult] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        self.progress(f"[{name}]")
        start = time.monotonic()
        try:
            yield detail
        except BaseException as e:
            why = e.reason if isinstance(e, StageFailed) else str(e)
            self.stages.append(StageResult(name, "failed", time.monotonic() - start, first_line(why)))
            raise
        self.stages.append(StageResult(name, "ok", time.monotonic() - start, "; ".join(detail)))

    def skip(self, name: str, why: str) -> None:
        self.stages.append(StageResult(name, "skipped", 0.0, why))

    def seconds(self) -> dict[str, float]:
        return {s.name: round(s.seconds, 2) for s in self.stages if s.status != "skipped"}


RESULT_WORDS = {
    "released": "released",
    "unchanged": "nothing to do",
    "rolled-back": "FAILED, previous release restored",
    "failed": "FAILED",
    "interrupted": "INTERRUPTED",
}


def stage_rows(report: ReleaseReport) -> list[tuple[str, str, str, str]]:
    """(stage, status, seconds, detail) per stage, in the order they ran."""
    return [
        (s.name, s.status, "" if s.status == "skipped" else f"{s.seconds:.1f}s", s.detail)
        for s in report.stages
    ]


def headline(report: ReleaseReport) -> str:
    image = report.image.pinned if report.image else "no image"
    return f"{report.kind} {report.env}: {RESULT_WORDS.get(report.result, report.result)} ({image})"


def markdown(report: ReleaseReport) -> str:
    """The job summary: a headline, where to reach the release, the stage table and the reason."""
    lines = [f"### {headline(report)}", ""]
    if report.urls:
        lines += [f"- {u}" for u in report.urls] + [""]
    lines += ["| stage | status | time | detail |", "| --- | --- | --- | --- |"]
    for name, status, seconds, detail in stage_rows(report):
        lines.append(f"| {name} | {status} | {seconds} | {detail.replace('|', '/')} |")
    if report.reason:
        lines += ["", f"**Reason:** {report.reason}"]
    if report.warnings:
        lines += ["", *[f"> warning: {w}" for w in report.warnings]]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    # GitHub's workflow-command encoding for messages.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation(level: str, title: str, message: str) -> str:
    return f"::{level} title={_escape(title).replace(',', '%2C').replace(':', '%3A')}::{_escape(message)}"


def outputs(report: ReleaseReport) -> Mapping[str, str]:
    """Step outputs: later jobs (the prod promotion) read the digest that was released."""
    out = {"result": report.result, "env": report.env}
    if report.image is not None:
        out.update(image=report.image.ref, digest=report.image.digest or "", reference=report.image.pinned)
    return out
