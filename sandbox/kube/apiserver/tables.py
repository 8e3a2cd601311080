"""Table output: what kube-apiserver's printers give ``kubectl get`` (``application/json;as=Table``).

One :class:`Printer` per built-in kind in :data:`PRINTERS` (its columns and a function making one row);
custom resources and kinds without a printer get Name and Age. Ages follow Go's ``HumanDuration``, as
kubectl shows them.

Neighbours: ``negotiation.py``, ``server.py`` and ``watch.py`` call :func:`to_table`;
``subresources.py`` uses :func:`selector_text` for the Scale's selector.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..discovery import ResourceInfo

Column = tuple[str, str, int, str]  # name, type, priority, format
Row = Callable[[dict[str, Any]], list[Any]]


@dataclass(frozen=True)
class Printer:
    """The columns of one kind's table and how one object fills a row of them."""

    columns: list[Column]
    row: Row


def _col(name: str, priority: int = 0, type_: str = "string", fmt: str = "") -> Column:
    return (name, type_, priority, fmt)


NAME = _col("Name", fmt="name")
AGE = _col("Age")


def age(timestamp: str | None) -> str:
    """kubectl's HumanDuration of the time since ``timestamp``."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<unknown>"
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


# ---- cells shared by several kinds ----------------------------------------------------------------------


def _name(o: dict[str, Any]) -> str:
    return str(o["metadata"]["name"])


def _created(o: dict[str, Any]) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _containers(spec: dict[str, Any]) -> tuple[str, str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def selector_text(selector: Any) -> str:
    """A label selector as ``kubectl`` writes it (``app=web,tier in (a,b),!canary``)."""
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        parts.append(
            {
                "In": f"{expr['key']} in ({values})",
                "NotIn": f"{expr['key']} notin ({values})",
                "Exists": expr["key"],
                "DoesNotExist": f"!{expr['key']}",
            }.get(op or "", expr["key"])
        )
    return ",".join(parts) or "<none>"


def _load_balancer_ingress(o: dict[str, Any]) -> list[dict[str, Any]]:
    return ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


# ---- one row per kind -----------------------------------------------------------------------------------


def _pod_reason(pod: dict[str, Any], statuses: list[dict[str, Any]]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    has_running = False
    for c in reversed(statuses):
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            )
        elif c.get("ready") and state.get("running"):
            has_running = True
    if reason == "Completed" and has_running:
        reason = (
            "Running"
            if any(
                cond.get("type") == "Ready" and cond.get("status") == "True"
                for cond in status.get("conditions") or []
            )
            else "NotReady"
        )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = _pod_reason(pod, statuses)
    last = max(
        (((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or "" for c in statuses),
        default="",
    )
    restart_text = f"{restarts} ({age(last)} ago)" if restarts and last else str(restarts)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restart_text,
        age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _deployment_row(o: dict[str, Any]) -> list[Any]:
    s, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(s)
    return [
        _name(o),
        f"{st.get('readyReplicas', 0)}/{s.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        _created(o),
        names,
        images,
        selector_text(s.get("selector")),
    ]


def _replicaset_row(o: dict[str, Any]) -> list[Any]:
    s, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(s)
    return [
        _name(o),
        s.get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        _created(o),
        names,
        images,
        selector_text(s.get("selector")),
    ]


def _statefulset_row(o: dict[str, Any]) -> list[Any]:
    s, st = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(s)
    return [_name(o), f"{st.get('readyReplicas', 0)}/{s.get('replicas', 0)}", _created(o), names, images]


def _service_ports(spec: dict[str, Any]) -> str:
    out = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _service_row(o: dict[str, Any]) -> list[Any]:
    s = o.get("spec") or {}
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in _load_balancer_ingress(o)) or (
        "<pending>" if s.get("type") == "LoadBalancer" else "<none>"
    )
    if s.get("type") == "ExternalName":
        external = s.get("externalName", "<none>")
    selector = ",".join(f"{k}={v}" for k, v in (s.get("selector") or {}).items()) or "<none>"
    return [
        _name(o),
        s.get("type", "ClusterIP"),
        s.get("clusterIP") or "<none>",
        external,
        _service_ports(s),
        _created(o),
        selector,
    ]


def _namespace_row(o: dict[str, Any]) -> list[Any]:
    return [_name(o), (o.get("status") or {}).get("phase", "Active"), _created(o)]


def _node_row(o: dict[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    ready: dict[str, Any] = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    state = "Ready" if ready.get("status") == "True" else "NotReady"
    addresses = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [
        _name(o),
        state,
        "<none>",
        _created(o),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _endpoints_row(o: dict[str, Any]) -> list[Any]:
    addresses = [
        f"{a.get('ip')}:{p.get('port')}"
        for subset in o.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or [{}]
    ]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
    return [_name(o), shown or "<none>", _created(o)]


def _configmap_row(o: dict[str, Any]) -> list[Any]:
    return [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _created(o)]


def _secret_row(o: dict[str, Any]) -> list[Any]:
    return [_name(o), o.get("type", "Opaque"), len(o.get("data") or {}), _created(o)]


def _event_row(o: dict[str, Any]) -> list[Any]:
    ref = o.get("involvedObject") or o.get("regarding") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    obj = f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"
    return [age(last), o.get("type", ""), o.get("reason", ""), obj, o.get("message") or o.get("note", "")]


_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pvc_row(o: dict[str, Any]) -> list[Any]:
    s, st = o.get("spec") or {}, o.get("status") or {}
    return [
        _name(o),
        st.get("phase", "Pending"),
        s.get("volumeName", ""),
        (st.get("capacity") or {}).get("storage", ""),
        ",".join(_ACCESS_MODES.get(m, m) for m in st.get("accessModes") or []),
        s.get("storageClassName") or "<unset>",
        "<unset>",
        _created(o),
        s.get("volumeMode", ""),
    ]


def _ingress_row(o: dict[str, Any]) -> list[Any]:
    s = o.get("spec") or {}
    hosts = ",".join(r.get("host", "*") for r in s.get("rules") or []) or "*"
    address = ",".join(i.get("ip") or i.get("hostname", "") for i in _load_balancer_ingress(o))
    ports = "80, 443" if s.get("tls") else "80"
    return [_name(o), s.get("ingressClassName") or "<none>", hosts, address, ports, _created(o)]


def _storageclass_row(o: dict[str, Any]) -> list[Any]:
    default = (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
    return [
        _name(o) + (" (default)" if default == "true" else ""),
        o.get("provisioner", ""),
        o.get("reclaimPolicy", "Delete"),
        o.get("volumeBindingMode", "Immediate"),
        bool(o.get("allowVolumeExpansion", False)),
        _created(o),
    ]


def _default_row(o: dict[str, Any]) -> list[Any]:
    return [_name(o), _created(o)]


# ---- the printers ---------------------------------------------------------------------------------------

_CONTAINERS, _IMAGES, _SELECTOR = _col("Containers", 1), _col("Images", 1), _col("Selector", 1)
_INT = "integer"

DEFAULT_PRINTER = Printer([NAME, AGE], _default_row)

PRINTERS: dict[str, Printer] = {
    "Pod": Printer(
        [
            NAME,
            _col("Ready"),
            _col("Status"),
            _col("Restarts", type_="string"),
            AGE,
            _col("IP", 1),
            _col("Node", 1),
            _col("Nominated Node", 1),
            _col("Readiness Gates", 1),
        ],
        _pod_row,
    ),
    "Deployment": Printer(
        [
            NAME,
            _col("Ready"),
            _col("Up-to-date", type_=_INT),
            _col("Available", type_=_INT),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _SELECTOR,
        ],
        _deployment_row,
    ),
    "ReplicaSet": Printer(
        [
            NAME,
            _col("Desired", type_=_INT),
            _col("Current", type_=_INT),
            _col("Ready", type_=_INT),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _SELECTOR,
        ],
        _replicaset_row,
    ),
    "StatefulSet": Printer([NAME, _col("Ready"), AGE, _CONTAINERS, _IMAGES], _statefulset_row),
    "Service": Printer(
        [NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE, _SELECTOR],
        _service_row,
    ),
    "Namespace": Printer([NAME, _col("Status"), AGE], _namespace_row),
    "Node": Printer(
        [
            NAME,
            _col("Status"),
            _col("Roles"),
            AGE,
            _col("Version"),
            _col("Internal-IP", 1),
            _col("External-IP", 1),
            _col("OS-Image", 1),
            _col("Kernel-Version", 1),
            _col("Container-Runtime", 1),
        ],
        _node_row,
    ),
    "Endpoints": Printer([NAME, _col("Endpoints"), AGE], _endpoints_row),
    "ConfigMap": Printer([NAME, _col("Data", type_=_INT), AGE], _configmap_row),
    "Secret": Printer([NAME, _col("Type"), _col("Data", type_=_INT), AGE], _secret_row),
    "Event": Printer(
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], _event_row
    ),
    "PersistentVolumeClaim": Printer(
        [
            NAME,
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            AGE,
            _col("VolumeMode", 1),
        ],
        _pvc_row,
    ),
    "Ingress": Printer(
        [NAME, _col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE], _ingress_row
    ),
    "StorageClass": Printer(
        [
            NAME,
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion", type_="boolean"),
            AGE,
        ],
        _storageclass_row,
    ),
}


def printer(info: ResourceInfo) -> Printer:
    """The printer of a built-in kind; custom resources are printed as Name and Age."""
    return PRINTERS.get(info.kind, DEFAULT_PRINTER) if info.builtin else DEFAULT_PRINTER


def _partial(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj["metadata"],
    }


def to_table(
    info: ResourceInfo, objs: list[dict[str, Any]], rv: str, version: str, include: str
) -> dict[str, Any]:
    """``objs`` as a ``meta.k8s.io/<version>`` Table, each row with its object as ``include`` says."""
    spec = printer(info)
    rows = []
    for obj in objs:
        entry: dict[str, Any] = {"cells": spec.row(obj)}
        if include == "Object":
            entry["object"] = obj
        elif include != "None":
            entry["object"] = _partial(obj, version)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": "", "priority": p}
            for n, t, p, f in spec.columns
        ],
        "rows": rows,
    }
