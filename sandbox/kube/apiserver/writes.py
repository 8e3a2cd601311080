"""The write handlers: create, update, patch (merge, strategic merge, JSON patch, apply) and delete.

Each reads its options (``fieldManager``, ``dryRun``, ``force``, ``propagationPolicy``, DeleteOptions),
runs the body through admission (``admission.py``) and writes to the store. Patches retry on a Conflict
with the object they patched (as kube-apiserver's GuaranteedUpdate), unless the patch itself names a
resourceVersion; server-side apply merges through ``ssa/`` and reports its conflicts as 409 Status.

Neighbours: ``server.py`` routes to these functions; ``subresources.py`` shares :func:`manager` and
:func:`dry_run`; they use ``negotiation.py`` for bodies and answers and ``store/`` for the objects.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .. import ssa
from ..store import (
    BadRequest,
    Conflict,
    MethodNotAllowed,
    Store,
    UnsupportedMediaType,
    invalid,
    not_found,
    now_rfc3339,
)
from .admission import admit, check_identity, field_validation
from .negotiation import APPLY, JSONPATCH, MERGE, STRATEGIC, json_response, object_response, read_body, truthy
from .target import Target

PATCH_ATTEMPTS = 5

Written = tuple[dict[str, Any], list[str]]  # the stored object, the warnings for the client


def manager(request: web.Request, *, required: bool = False) -> str:
    """The field manager of a write: ``fieldManager``, else the client's User-Agent product."""
    name = request.query.get("fieldManager", "")
    if not name:
        if required:
            raise BadRequest(
                "PATCH requests with apply content type (application/apply-patch+yaml) "
                "require fieldManager to be set"
            )
        agent = request.headers.get("User-Agent", "")
        name = agent.split("/", 1)[0][:128]
    if len(name) > 128:
        raise BadRequest("fieldManager: Too long: may not be longer than 128")
    return name


def dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
    values = request.query.getall("dryRun", [])
    if options and options.get("dryRun"):
        values = [*values, *options["dryRun"]]
    for v in values:
        if v != "All":
            raise BadRequest(f'Invalid value: "{v}": supported values: "All"')
    return bool(values)


def _field_validation(request: web.Request, t: Target, obj: dict[str, Any]) -> list[str]:
    return field_validation(request.query.get("fieldValidation", "Warn"), t, obj)


async def create(request: web.Request, t: Target, store: Store) -> web.Response:
    body = check_identity(t, await read_body(request), require_name=True)
    dry = dry_run(request)
    warnings = _field_validation(request, t, body)
    name = manager(request)
    obj = admit(store, t, t.to_storage(body), None)
    created = store.create(t.gvr, obj, manager=name, dry_run=dry)
    return object_response(request, t, t.view(created), 201, warnings)


async def update(request: web.Request, t: Target, store: Store) -> web.Response:
    assert t.name is not None
    body = check_identity(t, await read_body(request), require_name=False)
    dry = dry_run(request)
    warnings = _field_validation(request, t, body)
    name = manager(request)
    old = store.get(t.gvr, t.namespace, t.name)
    if old is None:
        raise not_found(t.info.gvr, t.name)
    obj = t.to_storage(body)
    if t.subresource != "status":
        obj = admit(store, t, obj, old)
    updated = store.update(t.gvr, obj, manager=name, subresource=t.subresource, dry_run=dry)
    return object_response(request, t, t.view(updated), 200, warnings)


def _patch_rv(patch: dict[str, Any]) -> str | None:
    meta = patch.get("metadata")
    return meta.get("resourceVersion") if isinstance(meta, dict) else None


async def patch(request: web.Request, t: Target, store: Store) -> web.Response:
    assert t.name is not None
    ctype = request.content_type
    if ctype not in (APPLY, MERGE, STRATEGIC, JSONPATCH):
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            f"{JSONPATCH}, {MERGE}, {APPLY}" + ("" if not t.info.builtin else f", {STRATEGIC}")
        )
    if ctype == STRATEGIC and not t.info.builtin:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            f"{JSONPATCH}, {MERGE}, {APPLY}"
        )
    body = await read_body(request)
    dry = dry_run(request)
    force = truthy(request.query.get("force"))
    if force and ctype != APPLY:
        raise BadRequest("force: Invalid value: true: may not be specified for non-apply patch")
    name = manager(request, required=ctype == APPLY)
    warnings: list[str] = []
    for attempt in range(PATCH_ATTEMPTS):
        old = store.get(t.gvr, t.namespace, t.name)
        try:
            if ctype == APPLY:
                result, warnings = _apply(request, t, store, old, body, name, force, dry)
            else:
                if old is None:
                    raise not_found(t.info.gvr, t.name)
                result, warnings = _patch_once(request, t, store, old, body, ctype, name, dry)
        except Conflict:
            if attempt == PATCH_ATTEMPTS - 1 or (isinstance(body, dict) and _patch_rv(body)):
                raise
            continue
        status = 201 if old is None and not dry else 200
        return object_response(request, t, t.view(result), status, warnings)
    raise AssertionError("unreachable")


def _patch_once(
    request: web.Request,
    t: Target,
    store: Store,
    old: dict[str, Any],
    body: Any,
    ctype: str,
    name: str,
    dry: bool,
) -> Written:
    current = t.view(old)
    try:
        if ctype == MERGE:
            patched = ssa.merge_patch(current, body)
        elif ctype == STRATEGIC:
            patched = ssa.strategic_merge_patch(t.info.gvr, current, body)
        else:
            patched = ssa.json_patch(current, body)
    except ssa.PatchError as e:
        if e.invalid:
            raise invalid(t.info.gvr, t.name or "", [("FieldValueInvalid", "", str(e))]) from e
        raise BadRequest(str(e)) from e
    if not isinstance(patched, dict):
        raise BadRequest("the patched object is not a JSON object")
    patched = check_identity(t, patched, require_name=False)
    meta = patched["metadata"]
    meta.setdefault("resourceVersion", old["metadata"]["resourceVersion"])
    if not meta.get("resourceVersion"):
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    warnings = _field_validation(request, t, patched)
    obj = t.to_storage(patched)
    if t.subresource != "status":
        obj = admit(store, t, obj, old)
    updated = store.update(t.gvr, obj, manager=name, subresource=t.subresource, dry_run=dry)
    return updated, warnings


def _merge_applied(
    t: Target, live: dict[str, Any] | None, applied: dict[str, Any], name: str, force: bool
) -> dict[str, Any]:
    """``applied`` merged into ``live`` by ``ssa/``; its conflicts and errors as Status errors."""
    try:
        return ssa.apply(
            t.gvr, live, applied, manager=name, force=force, now=now_rfc3339(), subresource=t.subresource
        )
    except ssa.ApplyConflict as e:
        details: dict[str, Any] = {"name": t.name, "kind": t.info.plural, "causes": e.causes()}
        if t.info.group:
            details["group"] = t.info.group
        raise Conflict(e.message(), details=details) from e
    except ssa.PatchError as e:
        raise BadRequest(
            f"failed to create typed patch object ({t.namespace + '/' if t.namespace else ''}{t.name}; "
            f"{t.info.api_version}, Kind={t.info.kind}): {e}"
        ) from e


def _apply(
    request: web.Request,
    t: Target,
    store: Store,
    old: dict[str, Any] | None,
    body: Any,
    name: str,
    force: bool,
    dry: bool,
) -> Written:
    if not isinstance(body, dict):
        raise BadRequest("the applied configuration must be an object")
    if not body.get("apiVersion") or not body.get("kind"):
        raise BadRequest(f"invalid object type: {body.get('apiVersion', '')}, Kind={body.get('kind', '')}")
    applied = check_identity(t, body, require_name=False)
    warnings = _field_validation(request, t, applied)
    applied = t.to_storage(applied)
    merged = _merge_applied(t, old, applied, name, force)
    managed = merged["metadata"].get("managedFields") or []
    if old is None:
        if t.subresource:
            raise not_found(t.info.gvr, t.name or "")
        obj = admit(store, t, merged, None)
        return store.create(t.gvr, obj, manager=name, dry_run=dry, managed_fields=managed), warnings
    merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    if t.subresource != "status":
        merged = admit(store, t, merged, old)
    updated = store.update(
        t.gvr, merged, manager=name, subresource=t.subresource, dry_run=dry, managed_fields=managed
    )
    return updated, warnings


async def _delete_options(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        options = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"error decoding DeleteOptions: {e}") from e
    return options if isinstance(options, dict) else {}


def _propagation(request: web.Request, options: dict[str, Any]) -> str:
    policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
    if options.get("orphanDependents") is True:
        policy = policy or "Orphan"
    policy = policy or "Background"
    if policy not in ("Background", "Foreground", "Orphan"):
        raise BadRequest(f'propagationPolicy: Unsupported value: "{policy}"')
    return str(policy)


async def delete(request: web.Request, t: Target, store: Store) -> web.Response:
    assert t.name is not None
    if t.subresource:
        raise MethodNotAllowed("the server does not allow this method on the requested resource")
    options = await _delete_options(request)
    dry = dry_run(request, options)
    propagation = _propagation(request, options)
    pre = options.get("preconditions") or {}
    deleted = store.delete(
        t.gvr,
        t.namespace,
        t.name,
        propagation=propagation,
        dry_run=dry,
        uid=pre.get("uid"),
        resource_version=pre.get("resourceVersion"),
    )
    if deleted is None:
        raise not_found(t.info.gvr, t.name)
    # Finalizers (or foreground deletion) keep it: the answer is the object, now with deletionTimestamp.
    still_there = store.get(t.gvr, t.namespace, t.name)
    if still_there is not None and not dry:
        return object_response(request, t, t.view(still_there))
    details: dict[str, Any] = {"name": t.name, "kind": t.info.plural, "uid": deleted["metadata"].get("uid")}
    if t.info.group:
        details["group"] = t.info.group
    return json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    )


async def delete_collection(request: web.Request, t: Target, store: Store) -> web.Response:
    options = await _delete_options(request)
    dry = dry_run(request, options)
    propagation = _propagation(request, options)
    items, rv = store.list(
        t.gvr,
        t.namespace,
        label_selector=request.query.get("labelSelector"),
        field_selector=request.query.get("fieldSelector"),
    )
    deleted = []
    for item in items:
        meta = item["metadata"]
        gone = store.delete(t.gvr, meta.get("namespace"), meta["name"], propagation=propagation, dry_run=dry)
        if gone is not None:
            deleted.append(t.view(gone))
    return json_response(
        {
            "kind": f"{t.info.kind}List",
            "apiVersion": t.info.api_version,
            "metadata": {"resourceVersion": rv},
            "items": deleted,
        }
    )
