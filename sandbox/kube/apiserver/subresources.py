"""The ``scale`` and Pod ``log`` subresources (``status`` is a write of ``writes.py``).

``scale`` shows a workload as an ``autoscaling/v1`` Scale and writes its ``spec.replicas`` (PUT, or any
patch type applied to the Scale). ``log`` reads a container's output through the kubelet's
:data:`PodLogs` callable, picks the container as kubectl expects (``default-container`` annotation, or
the only one), and with ``follow`` streams what the container writes until the pod or the client goes.

Neighbours: ``server.py`` routes to these; the kubelet (``kubelet/``, via ``service.py``) provides the
logs; ``watch.py`` keeps the followed logs among its :class:`Streams`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .. import ssa
from ..store import ApiError, BadRequest, MethodNotAllowed, Store, UnsupportedMediaType, invalid, not_found
from .negotiation import APPLY, JSONPATCH, MERGE, STRATEGIC, json_response, read_body, truthy
from .tables import selector_text
from .target import Target
from .watch import Streams
from .writes import dry_run, manager

log = logging.getLogger("sandbox.kube.apiserver")

LOG_POLL_SECONDS = 1.0

PodLogs = Callable[[str, str, str, int, bool], str]  # (namespace, pod, container, tail, previous) -> text


def _to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_text(selector) if selector else "",
        },
    }


async def scale(request: web.Request, t: Target, store: Store) -> web.Response:
    assert t.name is not None
    obj = store.get(t.gvr, t.namespace, t.name)
    if obj is None:
        raise not_found(t.info.gvr, t.name)
    if request.method == "GET":
        return json_response(_to_scale(obj))
    if request.method not in ("PUT", "PATCH"):
        raise MethodNotAllowed("the server does not allow this method on the requested resource")
    body = await read_body(request)
    current = _to_scale(obj)
    ctype = request.content_type
    try:
        if request.method == "PUT":
            new_scale = body
        elif ctype == JSONPATCH:
            new_scale = ssa.json_patch(current, body)
        elif ctype in (MERGE, STRATEGIC, APPLY):
            new_scale = ssa.merge_patch(current, body)
        else:
            raise UnsupportedMediaType(f"unsupported patch type {ctype}")
    except ssa.PatchError as e:
        raise BadRequest(str(e)) from e
    replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        message = f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0"
        raise invalid(t.info.gvr, t.name, [("FieldValueInvalid", "spec.replicas", message)])
    rv = ((new_scale or {}).get("metadata") or {}).get("resourceVersion")
    obj["spec"]["replicas"] = replicas
    if not rv:
        obj["metadata"].pop("resourceVersion", None)
    else:
        obj["metadata"]["resourceVersion"] = rv
    updated = store.update(t.gvr, obj, manager=manager(request), dry_run=dry_run(request))
    return json_response(_to_scale(updated))


def container_of(t: Target, pod: dict[str, Any], asked: str | None) -> str:
    """The container a log request means; kubectl's rules when it names none."""
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
    container = asked
    if not container:
        default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default:
            container = default
        elif len(containers) == 1:
            container = containers[0]
        else:
            raise BadRequest(
                f"a container name must be specified for pod {t.name}, "
                f"choose one of: [{' '.join(containers)}]"
            )
    if container not in containers and container not in init:
        raise BadRequest(f"container {container} is not valid for pod {t.name}")
    return str(container)


async def pod_log(
    request: web.Request, t: Target, store: Store, pod_logs: PodLogs | None, streams: Streams
) -> web.StreamResponse:
    assert t.name is not None and t.namespace is not None
    q: Mapping[str, str] = request.query
    pod = store.get(t.gvr, t.namespace, t.name)
    if pod is None:
        raise not_found(t.info.gvr, t.name)
    container = container_of(t, pod, q.get("container"))
    if pod_logs is None:
        raise BadRequest(f'container "{container}" in pod "{t.name}" is waiting to start: ContainerCreating')
    tail = int(q["tailLines"]) if q.get("tailLines") else -1
    previous = truthy(q.get("previous"))
    loop = asyncio.get_running_loop()
    try:
        text = await loop.run_in_executor(None, pod_logs, t.namespace, t.name, container, tail, previous)
    except ApiError:
        raise
    except Exception as e:
        raise BadRequest(str(e) or f'container "{container}" in pod "{t.name}" is not available') from e
    if not truthy(q.get("follow")):
        return web.Response(text=text, content_type="text/plain")
    return await _follow(request, t, store, pod_logs, streams, container, text)


async def _follow(
    request: web.Request,
    t: Target,
    store: Store,
    pod_logs: PodLogs,
    streams: Streams,
    container: str,
    text: str,
) -> web.StreamResponse:
    """``kubectl logs -f``: what the container writes from now on, until the pod goes or the client."""
    assert t.name is not None and t.namespace is not None
    response = web.StreamResponse(status=200)
    response.content_type = "text/plain"
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    with streams.track():
        try:
            await response.write(text.encode())
            seen = await loop.run_in_executor(None, pod_logs, t.namespace, t.name, container, -1, False)
            while not streams.closing:
                await asyncio.sleep(LOG_POLL_SECONDS)
                if store.get(t.gvr, t.namespace, t.name) is None:
                    break
                try:
                    now = await loop.run_in_executor(
                        None, pod_logs, t.namespace, t.name, container, -1, False
                    )
                except Exception:
                    break  # the container went (restarted or removed): kubectl ends as with a real kubelet
                if now.startswith(seen) and len(now) > len(seen):
                    await response.write(now[len(seen) :].encode())
                seen = now
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:
            if "closing" not in str(e).lower() and "reset" not in str(e).lower():
                log.exception("following the log of %s/%s failed", t.namespace, t.name)
    return response
