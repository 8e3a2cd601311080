"""The resources the sandbox's own code names, and the shapes the store keys its objects by.

Shared by the store's modules (``core.py``, ``deletion.py``, ``persistence.py``), the API server
(``apiserver/``) and the service (``service.py``). A GVR is ``(group, version, plural)`` as
``discovery.py`` defines it.
"""

from __future__ import annotations

from typing import Any

from ..discovery import GVR

NAMESPACES: GVR = ("", "v1", "namespaces")
CONFIGMAPS: GVR = ("", "v1", "configmaps")
SECRETS: GVR = ("", "v1", "secrets")
SERVICES: GVR = ("", "v1", "services")
ENDPOINTS: GVR = ("", "v1", "endpoints")
PODS: GVR = ("", "v1", "pods")
EVENTS: GVR = ("", "v1", "events")
NODES: GVR = ("", "v1", "nodes")
PVCS: GVR = ("", "v1", "persistentvolumeclaims")
PVS: GVR = ("", "v1", "persistentvolumes")
DEPLOYMENTS: GVR = ("apps", "v1", "deployments")
REPLICASETS: GVR = ("apps", "v1", "replicasets")
JOBS: GVR = ("batch", "v1", "jobs")
INGRESSES: GVR = ("networking.k8s.io", "v1", "ingresses")
STORAGECLASSES: GVR = ("storage.k8s.io", "v1", "storageclasses")

Key = tuple[str, str]  # (namespace or "", name)
Objects = list[dict[str, Any]]
ObjectMap = dict[GVR, dict[Key, dict[str, Any]]]  # every stored object by resource and key
