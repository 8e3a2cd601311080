"""What the validate stage reports: one :class:`Finding` per problem, gathered in a :class:`ValidationReport`.

The schema pass (:mod:`.schema`) makes Findings directly; the lint rules (:mod:`.rules`) yield the smaller
:class:`Issue`, and :func:`.rules.lint` adds the target and the rule's id. The package's ``__init__``
re-exports the public types; ``tasks.py`` prints them and ``release`` stops on their errors. Imports
nothing else of the package, so every module of it may import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem in one rendered object: ``obj`` is "Kind/name", ``rule`` a short kebab-case id."""

    target: str
    obj: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.target}: {self.obj}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    findings: tuple[Finding, ...]
    objects_checked: int

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Issue:
    """What a lint rule yields: a Finding without the target and the rule id, which the registry knows."""

    obj: str
    message: str
    severity: Severity = "error"
