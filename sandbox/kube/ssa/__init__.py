"""Server-side apply, managedFields, and the other patch types of the API server.

What kube-apiserver's field manager (structured-merge-diff) does, for the kinds the sandbox serves:

- **Field sets** in the wire format of ``managedFields[].fieldsV1`` (``paths.py``): ``f:<field>``,
  ``k:{"name":"app"}`` for an item of an associative list, ``v:"x"`` for an item of a set, ``.`` when a
  node is owned itself and has owned children. Which lists are associative (and by which keys), sets or
  atomic, and which objects are maps or atomic, comes from :func:`list_type` and :func:`dict_type`
  (``schema.py``); the paths of a value and the difference of two objects from ``fieldsets.py``.
- **Apply** (:func:`apply`, ``serverside.py``): the applied configuration is merged into the live object;
  fields another manager owns and this apply changes are conflicts (:class:`ApplyConflict`, a 409 on the
  wire) unless forced, in which case ownership moves; fields this manager applied before and omits now are
  removed unless another manager owns them.
- **Update** (:func:`update_managed_fields`, ``managed.py``): a PUT or a non-apply PATCH gives its manager
  the fields it changed and takes them from the others, as an ``operation: Update`` entry.
- **Patches** (``patches.py``): JSON merge patch (RFC 7386), strategic merge patch for the common
  directives kubectl sends, and JSON patch (RFC 6902).
- **Errors** (``errors.py``): :class:`PatchError` and :class:`ApplyConflict`.

The store (``store/``) calls :func:`update_managed_fields` on every write; the API server
(``apiserver/``) calls the rest and turns :class:`ApplyConflict` and :class:`PatchError` into Status
objects. Nothing here does I/O.
"""

from __future__ import annotations

from .errors import ApplyConflict, PatchError, describe_manager
from .fieldsets import fieldset, tracked
from .managed import update_managed_fields
from .patches import json_patch, merge_patch, strategic_merge_patch
from .paths import Ctx, FieldSet, Path, from_fields_v1, path_string, to_fields_v1
from .schema import dict_type, item_element, list_type, set_element
from .serverside import apply

__all__ = [
    "ApplyConflict",
    "Ctx",
    "FieldSet",
    "PatchError",
    "Path",
    "apply",
    "describe_manager",
    "dict_type",
    "fieldset",
    "from_fields_v1",
    "item_element",
    "json_patch",
    "list_type",
    "merge_patch",
    "path_string",
    "set_element",
    "strategic_merge_patch",
    "to_fields_v1",
    "tracked",
    "update_managed_fields",
]
