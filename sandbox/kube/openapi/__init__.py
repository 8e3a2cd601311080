"""What the sandbox API servers know about the shape of built-in kinds: OpenAPI, defaults, validation.

- The OpenAPI v3 documents (``/openapi/v3`` and one per group-version): paths for every resource, each
  PATCH operation tagged with ``x-kubernetes-group-version-kind`` and declaring the ``fieldValidation``
  query parameter. That is what kubectl 1.27+ looks for before it leaves field validation to the server
  (``fieldValidation=Strict``) instead of downloading schemas to validate client-side. The PATCH
  operations declare no request body, so ``kubectl apply`` (client-side) computes its strategic merge
  patches from its compiled-in types, as it does when a server publishes no schema.
- Known fields (:func:`unknown_fields`) come from the models of the official Python client, which mirror
  the Kubernetes OpenAPI schema; custom resources are stored as they come.
- Defaulting (:func:`apply_defaults`) of what rollout logic and kubectl rely on (Deployment replicas,
  strategy, progressDeadlineSeconds, revisionHistoryLimit, pod template defaults, Service type and
  ports, Namespace phase, Secret type), and validation (:func:`validate`) of names, labels and the
  required fields of the main kinds, returning causes in the API's format.

Modules: ``models.py`` (the client's models), ``schemas.py`` (component schemas from them),
``documents.py`` (the v3 documents and their root), ``fields.py`` (known fields), ``defaults.py``
(defaults and initial status), ``names.py`` and ``validation.py`` (validation). This package only
gathers their names.

Neighbours: ``apiserver/`` runs these as its admission chain; Service IP and nodePort allocation, which
need the store, stay there.
"""

from __future__ import annotations

from .defaults import apply_defaults, default_pod_spec, initial_status
from .documents import v3_document, v3_root
from .fields import drop_unknown, unknown_fields
from .names import Cause
from .validation import validate

__all__ = [
    "Cause",
    "apply_defaults",
    "default_pod_spec",
    "drop_unknown",
    "initial_status",
    "unknown_fields",
    "v3_document",
    "v3_root",
    "validate",
]
