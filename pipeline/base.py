"""Names that every stage shares, defined once at the bottom of the pipeline's layers.

The object type alias the Kubernetes-facing stages pass around, the progress callback that long stages
report through, the kinds of workload, and the helper that turns any error into the one line a user reads.
Nothing here imports another pipeline module or a third-party client, so every module may import it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

# A Kubernetes object as JSON: the clients hand these over as plain dicts, so a TypedDict would lie.
Obj = dict[str, Any]

# Long stages report what they are doing through this; the command layer decides where it goes.
Progress = Callable[[str], None]

# Kinds whose pods come from a template (lint looks inside their pod spec).
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"})
# Of those, the kinds a release applies directly and waits for, in apply order; ReplicaSets and
# ReplicationControllers are never declared by an overlay, their owners are.
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def quiet(_: str) -> None:
    """The default ``Progress``: say nothing."""


def first_line(e: BaseException | str, width: int = 300) -> str:
    """The first line of an error (or its type's name when it has none), shortened at a word."""
    line = (str(e).strip().splitlines() or [type(e).__name__ if isinstance(e, BaseException) else ""])[0]
    return textwrap.shorten(line, width, placeholder=" …") if line else "no detail"
