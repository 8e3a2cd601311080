"""How a finished command is reported: the stage table, GitHub's job summary, annotations and step outputs.

Pure functions over ``release.ReleaseReport`` (and plain strings), so ``tasks.py`` only decides where the
text goes: the terminal, ``$GITHUB_STEP_SUMMARY``, ``$GITHUB_OUTPUT`` or a workflow command on stdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESULT_WORDS = {
    "released": "released",
    "unchanged": "nothing to do",
    "rolled-back": "FAILED, previous release restored",
    "failed": "FAILED",
}


def stage_rows(report: Any) -> list[tuple[str, str, str, str]]:
    """(stage, status, seconds, detail) per stage, in the order they ran."""
    return [
        (s.name, s.status, "" if s.status == "skipped" else f"{s.seconds:.1f}s", s.detail)
        for s in report.stages
    ]


def headline(report: Any) -> str:
    image = report.image.pinned if report.image else "no image"
    return f"{report.kind} {report.env}: {RESULT_WORDS.get(report.result, report.result)} ({image})"


def markdown(report: Any) -> str:
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


def outputs(report: Any) -> Mapping[str, str]:
    """Step outputs: later jobs (the prod promotion) read the digest that was released."""
    out = {"result": report.result, "env": report.env}
    if report.image is not None:
        out.update(image=report.image.ref, digest=report.image.digest or "", reference=report.image.pinned)
    return out
