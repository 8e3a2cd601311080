"""The approval gate: a protected environment (prod) changes only with a named approver.

``release.py`` asks :func:`require_approval` before anything is written for a bump, release, promote or
rollback; the name it returns becomes the commit's ``Approved-by:`` trailer and the history's approver.
In CI the approver is the reviewer of the protected GitHub environment; at a terminal, a typed yes.
"""

from __future__ import annotations

import re

from .config import Environment
from .errors import ApprovalRequired, ConfigError

# A name or an e-mail, "asha (interactive)" from a terminal confirmation; nothing that could forge a trailer.
_APPROVER = re.compile(r"[\w .@'+()-]{1,80}")


def require_approval(env: Environment, approved_by: str | None) -> str | None:
    """The approver's name, checked; refuses a protected environment without one."""
    if approved_by is not None:
        name = approved_by.strip()
        if not _APPROVER.fullmatch(name):
            raise ConfigError(
                f"--approved-by {approved_by!r} is not a plain name", "Give a name or an e-mail"
            )
        return name
    if env.protected:
        raise ApprovalRequired(
            f"{env.name} is protected: refusing to change it without an approver",
            "Pass --approved-by NAME (CI: only from a job bound to a protected environment), "
            "or run it at a terminal and confirm",
        )
    return None
