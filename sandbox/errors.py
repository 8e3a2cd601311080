"""The sandbox's one root exception.

Every expected failure in the sandbox (a daemon that will not start, a registry that is missing, an API
error a handler turns into a Status, a patch that cannot be applied) derives from :class:`SandboxError`,
so the command layer (``tasks.py``, ``python -m sandbox``) prints one line for any of them and keeps the
traceback only for bugs. The pipeline never sees these: it meets the sandbox through HTTP, as a cloud.
"""

from __future__ import annotations


class SandboxError(Exception):
    """An expected sandbox failure; ``str()`` is one line saying what to do."""
