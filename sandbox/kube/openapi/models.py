"""The official Kubernetes client's models, which mirror the Kubernetes OpenAPI schema of the built-in kinds.

One place that imports ``kubernetes.client`` (lazily: it is slow to import) and maps a resource to its
model class. ``schemas.py`` builds the OpenAPI component schemas from these models and ``fields.py``
finds the fields they do not declare; custom resources have no model.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..discovery import ResourceInfo

_MODEL_NAMES = {
    ("", "Event"): "CoreV1Event",
    ("events.k8s.io", "Event"): "EventsV1Event",
    ("", "EndpointPort"): "CoreV1EndpointPort",
}


@functools.cache
def client_models() -> Any:  # the official client's models mirror the Kubernetes OpenAPI schema
    import kubernetes.client

    return kubernetes.client


def model_for(info: ResourceInfo) -> Any:
    if not info.builtin:
        return None
    models = client_models()
    name = _MODEL_NAMES.get((info.group, info.kind)) or info.version.capitalize() + info.kind
    return getattr(models, name, None)


LIST_TYPE = re.compile(r"^list\[(.+)\]$", re.IGNORECASE)
DICT_TYPE = re.compile(r"^dict\(str, (.+)\)$|^dict\[str, (.+)\]$", re.IGNORECASE)
