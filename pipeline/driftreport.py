"""What a drift check reports, and how: per object, the fields that differ from the last good release.

:class:`DriftReport` (one :class:`ObjectDrift` per declared or leftover object, each with its
:class:`FieldDrift` list) is what ``release.drift`` returns and what ``tasks.py`` prints, writes as JSON or
to GitHub's job summary, and ``notify`` posts. Pure data and text; ``drift.py`` fills it in. Secret values
never enter it: a Secret's differing keys are named, their values replaced by :data:`HIDDEN`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .report import ReleaseReport, StageResult

HIDDEN = "<hidden>"

# equal: as declared; changed: a field we own differs; missing: deleted by hand; undeclared: carries our
# ApplySet label but the release no longer declares it; unknown: not compared (a Secret whose variables
# are not set where the check runs).
State = Literal["equal", "changed", "missing", "undeclared", "unknown"]
# image: a container's image is not the pinned one; replicas: spec.replicas scaled by hand; field: any
# other field we own.
What = Literal["image", "replicas", "field"]

WORDS: dict[str, str] = {
    "image": "image differs from the pin",
    "replicas": "replicas scaled by hand",
    "field": "changed",
    "missing": "missing (deleted by hand)",
    "undeclared": "no longer declared (carries our ApplySet label)",
    "unknown": "not compared",
}


@dataclass(frozen=True)
class FieldDrift:
    path: str  # spec.template.spec.containers[name=backend].image
    what: What
    live: Any  # JSON value; None when the field is not set live
    declared: Any  # JSON value; None when the release does not set it (and applying would remove it)
    # Who wrote the live value (its field managers other than ours), e.g. "kubectl (/scale)".
    by: tuple[str, ...] = ()

    def line(self) -> str:
        who = f" (by {', '.join(self.by)})" if self.by else ""
        return f"{self.path}: live {_short(self.live)}, declared {_short(self.declared)}{who}"


@dataclass(frozen=True)
class ObjectDrift:
    kind: str
    namespace: str
    name: str
    state: State
    fields: tuple[FieldDrift, ...] = ()
    # Fields we declare that another manager owns by design (an HPA's replicas): reported, not drift.
    owned_elsewhere: tuple[FieldDrift, ...] = ()
    note: str = ""
    # False for leftovers a repair never deletes (claims, volumes): they stay reported for a person.
    repairable: bool = True

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    @property
    def drifted(self) -> bool:
        return self.state in ("changed", "missing", "undeclared")

    def findings(self) -> list[str]:
        """One line per finding: "replicas scaled by hand: spec.replicas: live 3, declared 1 (by kubectl)"."""
        if self.state in ("missing", "undeclared", "unknown"):
            return [WORDS[self.state] + (f": {self.note}" if self.note else "")]
        return [f"{WORDS[f.what]}: {f.line()}" for f in self.fields]


@dataclass(frozen=True)
class DriftReport:
    env: str
    # What the live objects were compared with: the release's overlay commit and the image it pins.
    commit: str
    image: str
    digest: str | None
    objects: tuple[ObjectDrift, ...]
    stages: tuple[StageResult, ...] = ()
    # With --repair, when drift was found: the verified re-apply, then the check run again.
    repair: ReleaseReport | None = None
    after: tuple[ObjectDrift, ...] | None = None
    # Why the repair did not run (refused, or it failed before it could report), one line.
    repair_error: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> tuple[ObjectDrift, ...]:
        return tuple(o for o in self.objects if o.drifted)

    @property
    def found(self) -> bool:
        return bool(self.drifted)

    @property
    def repaired(self) -> bool:
        return (
            self.repair is not None
            and self.repair.ok
            and self.after is not None
            and not any(o.drifted and o.repairable for o in self.after)
        )

    @property
    def result(self) -> str:
        """equal, drift, repaired, or repair-failed."""
        if not self.found:
            return "equal"
        if self.repair_error:
            return "repair-failed"
        if self.repair is None:
            return "drift"
        return "repaired" if self.repaired else "repair-failed"

    @property
    def exit_code(self) -> int:
        """0 equal, 3 drift found (repaired or not), 1 a repair that failed."""
        return {"equal": 0, "drift": 3, "repaired": 3}.get(self.result, 1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(result=self.result, drift=self.found, exit_code=self.exit_code)
        if self.repair is not None:
            data["repair"] = self.repair.to_dict()
        return data


def _short(value: Any, width: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if value is None:
        text = "(not set)"
    return text if len(text) <= width else text[: width - 1] + "…"


def headline(report: DriftReport) -> str:
    drifted, total = len(report.drifted), len(report.objects)
    against = f"the release of {report.image} (overlay commit {report.commit[:12]})"
    if not drifted:
        return f"drift {report.env}: none, {total} objects as declared by {against}"
    tail = {"repaired": "; repaired", "repair-failed": "; REPAIR FAILED"}.get(report.result, "")
    return f"drift {report.env}: {drifted} of {total} objects differ from {against}{tail}"


def lines(report: DriftReport) -> list[str]:
    """The report as text: the headline, then one line per finding, then fields owned elsewhere."""
    out = [headline(report)]
    for obj in report.drifted:
        out += [f"  {obj.ref}: {finding}" for finding in obj.findings()]
    for obj in report.objects:
        for f in obj.owned_elsewhere:
            out.append(f"  {obj.ref}: {f.path} owned by {', '.join(f.by) or 'another manager'} (not drift)")
        if obj.state == "unknown":
            out.append(f"  {obj.ref}: {obj.findings()[0]}")
    out += [f"  note: {n}" for n in report.notes]
    if report.repair_error:
        out.append(f"  repair: not done: {report.repair_error}")
    if report.repair is not None:
        out.append(
            f"  repair: {report.repair.result}{': ' + report.repair.reason if report.repair.reason else ''}"
        )
        for obj in report.after or ():
            if obj.drifted:
                out += [f"  still: {obj.ref}: {finding}" for finding in obj.findings()]
    return out


def markdown(report: DriftReport) -> str:
    """The job summary: the headline and a table of findings."""
    out = [f"### {headline(report)}", ""]
    if report.found:
        out += ["| object | finding |", "| --- | --- |"]
        for obj in report.drifted:
            out += [f"| {obj.ref} | {_cell(finding)} |" for finding in obj.findings()]
        out.append("")
    for obj in report.objects:
        for f in obj.owned_elsewhere:
            out.append(f"- {obj.ref}: `{f.path}` owned by {', '.join(f.by) or 'another manager'} (not drift)")
    out += [f"- note: {_cell(n)}" for n in report.notes]
    if report.repair_error:
        out.append(f"- repair: **not done**: {_cell(report.repair_error)}")
    if report.repair is not None:
        reason = f": {_cell(report.repair.reason)}" if report.repair.reason else ""
        out.append(f"- repair: **{report.repair.result}**{reason}")
    return "\n".join(out).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")
