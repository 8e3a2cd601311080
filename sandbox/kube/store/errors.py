"""The API's errors: each becomes a ``Status`` object on the wire, with Kubernetes' code and reason.

Raised by the store (``core.py``, ``deletion.py``, ``selectors.py``, ``watch.py``) and by the API server
(``apiserver/``), which turns any :class:`ApiError` into its ``Status``. The constructors below
(:func:`not_found`, :func:`conflict`, ...) word the messages as kube-apiserver does, with the ``details``
(name, group, kind) that clients such as kubectl read. Uses ``discovery.py`` for a resource's names.
"""

from __future__ import annotations

from typing import Any

from ...errors import SandboxError
from ..discovery import GVR, info_for


class ApiError(SandboxError):
    """A failure the API reports as a ``Status`` with ``code`` and ``reason``."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(ApiError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    """A resourceVersion older than the history (``reason: Expired``, as kube-apiserver says)."""

    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


def _details(gvr: GVR, name: str) -> dict[str, Any]:
    info = info_for(gvr)
    d: dict[str, Any] = {"name": name, "kind": info.plural}
    if info.group:
        d["group"] = info.group
    return d


def not_found(gvr: GVR, name: str) -> NotFound:
    return NotFound(f'{info_for(gvr).qualified} "{name}" not found', details=_details(gvr, name))


def already_exists(gvr: GVR, name: str) -> AlreadyExists:
    return AlreadyExists(f'{info_for(gvr).qualified} "{name}" already exists', details=_details(gvr, name))


def conflict(gvr: GVR, name: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {info_for(gvr).qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_details(gvr, name),
    )


def invalid(gvr: GVR, name: str, causes: list[tuple[str, str, str]]) -> Invalid:
    """``causes``: (reason like FieldValueRequired, field like spec.replicas, message)."""
    info = info_for(gvr)
    text = "; ".join(f"{field}: {message}" if field else message for _, field, message in causes)
    details = _details(gvr, name)
    details["kind"] = info.kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    return Invalid(f'{info.kind} "{name}" is invalid: {text}', details=details)
