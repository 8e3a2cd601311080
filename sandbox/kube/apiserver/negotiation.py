"""Content negotiation: what a request's ``Accept`` and ``Content-Type`` ask for, and the JSON answers.

Reads the media ranges of ``Accept`` (plain JSON, kubectl's ``as=Table``, or refusal with 406), decodes
request bodies (JSON, YAML for apply, never protobuf or CBOR), and writes JSON responses, ``Status``
objects and single objects (as a Table when asked, with ``Warning`` headers).

Neighbours: every handler module of this package uses it (``server.py``, ``watch.py``, ``writes.py``,
``subresources.py``); it uses ``tables.py`` for Table output and ``target.py`` for what a URL names.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from ..store import ApiError, BadRequest, NotAcceptable, UnsupportedMediaType
from .tables import to_table
from .target import Target

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def json_response(data: Any, status: int = 200, *, content_type: str = JSON, **headers: str) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": content_type, **headers},
    )


def status_response(error: ApiError) -> web.Response:
    return json_response(error.status(), error.code)


def media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for p in pieces[1:]:
            k, _, v = p.partition("=")
            params[k.strip()] = v.strip()
        out.append((pieces[0], params))
    return out


def wants_table(request: web.Request) -> str | None:
    """The Table version kubectl asked for ("v1"/"v1beta1"), if JSON Table output is acceptable."""
    for media, params in media_ranges(request.headers.get("Accept", "")):
        if media == JSON and params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
        if media == JSON and "as" not in params:
            return None
    return None


def table_content_type(version: str) -> str:
    return f"{JSON};as=Table;v={version};g=meta.k8s.io"


def check_acceptable(request: web.Request) -> None:
    ranges = media_ranges(request.headers.get("Accept", ""))
    if not ranges:
        return
    for media, _ in ranges:
        if media in (JSON, "*/*", "application/*", "application/yaml", "text/plain"):
            return
    raise NotAcceptable(f"only the following media types are accepted: {JSON}")


def object_response(
    request: web.Request,
    t: Target,
    obj: dict[str, Any],
    status: int = 200,
    warnings: list[str] | None = None,
) -> web.Response:
    """One object as the client asked for it: plain JSON, or a one-row Table for ``kubectl get``."""
    check_acceptable(request)
    table = wants_table(request)
    if table:
        doc = to_table(
            t.info,
            [obj],
            obj["metadata"].get("resourceVersion", ""),
            table,
            request.query.get("includeObject", "PartialObjectMetadata"),
        )
        response = json_response(doc, status, content_type=table_content_type(table))
    else:
        response = json_response(obj, status)
    for w in warnings or []:
        response.headers.add("Warning", f"299 - {json.dumps(w)}")
    return response


async def read_body(request: web.Request) -> Any:
    """The decoded request body; JSON, or YAML for the YAML media types (server-side apply)."""
    ctype = request.content_type
    raw = await request.read()
    if "protobuf" in ctype or "cbor" in ctype:
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types include: {JSON}, "
            "application/yaml"
        )
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        if ctype in ("application/yaml", APPLY, "text/yaml"):
            try:
                return json.loads(raw)
            except ValueError:
                return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as e:
        raise BadRequest(f"error decoding the request body: {e}") from e
