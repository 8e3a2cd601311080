"""A command in a pod's container over the API server's ``exec`` WebSocket (the client's stream API).

What ``kubectl exec -i`` does, for the database stages: stdin from a file-like object (ended with the
``v5.channel.k8s.io`` close of channel 0, so ``pg_restore`` sees its end of input), stdout handed to a
callback chunk by chunk (a dump is never held in memory), stderr kept for the message, and the exit code
from the error channel. Environment variables of the container (its Secret's password) stay inside it:
the command line only names them.

Neighbours: ``kube.client`` gives the :class:`~.session.ApiSession` this opens the socket with;
``pipeline.database`` is the caller. The client library is imported lazily.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ..errors import KubeError
from .errors import connection_error, is_connection_error, one_line

if TYPE_CHECKING:
    from .session import ApiSession

STDOUT, STDERR, STDIN = 1, 2, 0
CHUNK = 256 * 1024
# Bound on what is kept of stderr for the message: enough for pg_dump's last complaint.
STDERR_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ExecResult:
    code: int
    stderr: str


def _configuration(session: ApiSession) -> Any:
    """The client's configuration, with the CA as a file: the WebSocket dialer reads no CA data."""
    config = session.api.configuration
    if getattr(config, "ca_cert_data", None) and not config.ssl_ca_cert:
        config = copy.copy(config)
        fd, path = tempfile.mkstemp(prefix="pipeline-ca-", suffix=".crt")
        with os.fdopen(fd, "w") as f:
            f.write(session.api.configuration.ca_cert_data)
        config.ssl_ca_cert = path
    return config


def run(
    session: ApiSession,
    namespace: str,
    pod: str,
    container: str,
    command: Sequence[str],
    *,
    stdin: IO[bytes] | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
    doing: str,
) -> ExecResult:
    """Run ``command``; raise :class:`KubeError` when it cannot be started, else return its exit code."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import ws_client

    # Unannotated in the client.
    dial: Any = ws_client.WSClient
    websocket_url: Any = ws_client.get_websocket_url

    query: list[tuple[str, str]] = [("command", c) for c in command]
    query += [("container", container), ("stdout", "true"), ("stderr", "true")]
    query += [("stdin", "true" if stdin is not None else "false"), ("tty", "false")]
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    config = _configuration(session)
    try:
        _, url, headers, _, _ = session.api.param_serialize(
            "GET", path, query_params=query, header_params={}, auth_settings=["BearerToken"]
        )
        headers = {k.lower(): v for k, v in headers.items()}
        ws: Any = dial(config, websocket_url(url), headers, False, binary=True)
    except ApiException as e:
        raise KubeError(f"{doing}: {one_line(str(e.reason or e))}", "Is the pod running?") from e
    except Exception as e:
        if is_connection_error(e):
            raise connection_error(e, doing, session.server) from e
        raise KubeError(f"{doing}: {one_line(str(e))}", "Is the pod running? (kubectl get pods)") from e
    finally:
        if config is not session.api.configuration:
            os.unlink(config.ssl_ca_cert)
    stderr = bytearray()

    def drain(timeout: float) -> None:
        ws.update(timeout=timeout)
        out = ws.read_channel(STDOUT, timeout=0)
        if out and on_stdout is not None:
            on_stdout(out)
        err = ws.read_channel(STDERR, timeout=0)
        if err and len(stderr) < STDERR_LIMIT:
            stderr.extend(err[: STDERR_LIMIT - len(stderr)])

    try:
        if stdin is not None:
            while chunk := stdin.read(CHUNK):
                ws.write_stdin(chunk)
                drain(0)
            ws.close_channel(STDIN)
        while ws.is_open():
            drain(1.0)
        drain(0)
        code = ws.returncode
    except Exception as e:
        if is_connection_error(e):
            raise connection_error(e, doing, session.server) from e
        raise KubeError(f"{doing}: the exec stream broke ({one_line(str(e))})", "Try again") from e
    finally:
        ws.close()
    return ExecResult(int(code if code is not None else -1), stderr.decode("utf-8", "replace"))
