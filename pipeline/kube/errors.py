"""Translating the ``kubernetes`` client's failures into the pipeline's exceptions, one actionable line each.

An ``ApiException`` (the server answered) becomes the :class:`~pipeline.errors.KubeError` subclass for its
HTTP status (:func:`translate`); a urllib3, socket or TLS failure (no answer) becomes
:class:`~pipeline.errors.KubeUnreachable`, or a :class:`~pipeline.errors.KubeError` naming the TLS problem
(:func:`connection_error`). Values that must never reach a message (a Secret's data) are listed by
:func:`secret_values` and redacted from what the server echoes. The exception classes themselves live in
``pipeline.errors``.

Neighbours: ``kube.session`` translates every request's failure here, ``kube.watch`` a broken stream's;
``kube`` re-exports :func:`translate`. urllib3 is imported lazily, and nothing else of the client.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Sequence

from ..base import Obj
from ..errors import (
    KubeAuthError,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeGone,
    KubeInvalid,
    KubeNotFound,
    KubeUnreachable,
)

# One conflict reads 'conflict with "kubectl"'; several read 'conflicts with "kubectl"' each.
_CONFLICT_MANAGER = re.compile(r'conflicts? with "([^"]+)"')


def one_line(text: object, limit: int = 400) -> str:
    """``text`` on one line, shortened to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _status_body(e: Exception) -> Obj:
    body = getattr(e, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _verb_hint(verb: str, resource: str) -> str:
    return (
        f"Grant the pipeline's identity RBAC permission to {verb} {resource} "
        "(on GKE, e.g. roles/container.developer for its service account)"
    )


def _conflict(doing: str, body: Obj, message: str) -> KubeConflict:
    causes = (body.get("details") or {}).get("causes") or []
    fields = tuple(str(c.get("field", "")) for c in causes if c.get("field"))
    managers = tuple(dict.fromkeys(_CONFLICT_MANAGER.findall(message)))
    if not managers:
        return KubeConflict(f"{doing}: conflict ({message})", "Try again")
    return KubeConflict(
        f"{doing}: field manager conflict with {', '.join(managers)} on {', '.join(fields) or 'fields'}",
        "Someone changed these fields outside the pipeline; put the change in git, or apply with "
        "force to take them over",
        managers=managers,
        fields=fields,
    )


def translate(
    e: Exception,
    doing: str,
    *,
    auth_hint: str,
    verb: str = "",
    resource: str = "",
    redact: Sequence[str] = (),
) -> KubeError:
    """A one-line :class:`KubeError` for a client exception raised while ``doing`` something.

    ``redact`` lists strings (secret values) that must not appear in the message even if the server
    echoed them.
    """
    status = getattr(e, "status", None)
    body = _status_body(e)
    message = str(body.get("message") or getattr(e, "reason", "") or type(e).__name__)
    for value in redact:
        if value:
            message = message.replace(value, "<redacted>")
    message = one_line(message)
    error: KubeError
    if status == 401:
        error = KubeAuthError(
            f"{doing}: the API server refused our credentials (401 Unauthorized)", auth_hint
        )
    elif status == 403:
        error = KubeForbidden(
            f"{doing}: forbidden ({message})", _verb_hint(verb or "access", resource or "it")
        )
    elif status == 404:
        error = KubeNotFound(f"{doing}: not found ({message})", "Check the name and namespace")
    elif status == 409:
        error = _conflict(doing, body, message)
    elif status == 410:
        error = KubeGone(f"{doing}: resourceVersion too old ({message})", "Re-list and watch again")
    elif status in (400, 422):
        error = KubeInvalid(f"{doing}: rejected as invalid: {message}", "Fix the manifest and try again")
    elif status == 429 or (isinstance(status, int) and status >= 500):
        error = KubeUnreachable(f"{doing}: the API server answered {status} ({message})", "Try again shortly")
    elif status in (None, 0):
        error = KubeUnreachable(f"{doing}: no answer from the API server ({message})", "Check the network")
    else:
        error = KubeError(f"{doing}: the API server answered {status} ({message})")
    error.status = status if isinstance(status, int) else None
    return error


def is_connection_error(e: BaseException) -> bool:
    """Whether ``e`` means no (complete) answer: a urllib3 failure or an OS-level one."""
    import urllib3

    return isinstance(e, urllib3.exceptions.HTTPError | OSError)


def _causes(e: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and cause not in chain:
        chain.append(cause)
        # urllib3 nests the underlying error in `.reason` (MaxRetryError) or in its args (SSLError).
        wrapped = [a for a in cause.args if isinstance(a, BaseException)]
        reason = getattr(cause, "reason", None)
        cause = (
            (reason if isinstance(reason, BaseException) else None)
            or cause.__cause__
            or (wrapped[0] if wrapped else None)
            or cause.__context__
        )
    return chain


def connection_error(e: BaseException, doing: str, server: str) -> KubeError:
    """The one line for a request to ``server`` that got no answer: a TLS problem, or no connection."""
    import ssl

    import urllib3

    chain = _causes(e)
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain):
        return KubeError(
            f"{doing}: the TLS certificate of {server} could not be verified",
            "Check the cluster CA (GKE: masterAuth.clusterCaCertificate; kubeconfig: "
            "certificate-authority-data)",
        )
    if any(isinstance(c, urllib3.exceptions.SSLError | ssl.SSLError) for c in chain):
        return KubeError(
            f"{doing}: the TLS handshake with {server} failed", "Check that the address is the API server's"
        )
    return KubeUnreachable(
        f"{doing}: cannot reach the API server at {server} ({type(e).__name__})",
        "Check the network and the cluster endpoint, then try again",
    )


def secret_values(obj: Obj) -> list[str]:
    """The values of a Secret (as sent and decoded) so that no message can carry them."""
    if obj.get("kind") != "Secret":
        return []
    values: list[str] = []
    for value in (obj.get("data") or {}).values():
        values.append(str(value))
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            values.append(base64.b64decode(str(value)).decode("utf-8"))
    values += [str(v) for v in (obj.get("stringData") or {}).values()]
    # Longest first, so that a value containing another is replaced whole.
    return sorted({v for v in values if len(v) >= 3}, key=len, reverse=True)
