"""Lint rules on ports: ``nodeport-out-of-range``, ``port-conflict`` and ``container-port-mismatch``.

A Service's ports against the cluster's nodePort range and against each other, and against the container
ports of the pods it selects (a targetPort no container declares sends traffic nowhere). Uses
:mod:`..index` to find the selected pods; registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ..findings import Issue
from ..index import Index, items, mapping


def nodeports_out_of_range(index: Index) -> Iterator[Issue]:
    """GKE (like any default cluster) allocates nodePorts from 30000-32767 only."""
    for svc in index.of_kind("Service"):
        for port in items(mapping(svc.body.get("spec")).get("ports")):
            node_port = port.get("nodePort")
            if isinstance(node_port, int) and not 30000 <= node_port <= 32767:
                yield Issue(
                    svc.ref,
                    f"{svc.ref}: nodePort {node_port} is outside the cluster's range 30000-32767; the API "
                    "server rejects it. Pick a port in that range or leave nodePort out to get one assigned",
                )


def port_conflicts(index: Index) -> Iterator[Issue]:
    """Ports the API server refuses or that silently shadow each other."""
    node_ports: dict[int, list[str]] = defaultdict(list)
    for svc in index.of_kind("Service"):
        ports = items(mapping(svc.body.get("spec")).get("ports"))
        names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
            yield Issue(
                svc.ref,
                f"{svc.ref}: a Service with several ports needs a unique name on each (spec.ports[].name); "
                "the API server rejects it. Name every port",
            )
        for port in ports:
            if isinstance(port.get("nodePort"), int):
                node_ports[port["nodePort"]].append(svc.ref)
    for node_port, owners in node_ports.items():
        for owner in owners[1:]:
            yield Issue(
                owner,
                f"{owner}: nodePort {node_port} is already taken by {owners[0]}; the second Service applied "
                "is refused ('provided port is already allocated'). Give each Service its own nodePort",
            )
    for template in index.templates:
        for container in template.containers():
            port_names = [str(p["name"]) for p in items(container.get("ports")) if p.get("name")]
            for name in sorted({n for n in port_names if port_names.count(n) > 1}):
                yield Issue(
                    template.owner.ref,
                    f"{template.owner.ref}: container {container.get('name')} names two ports {name!r}; "
                    "a Service's named targetPort cannot tell them apart. Rename one",
                )


def container_port_mismatch(index: Index) -> Iterator[Issue]:
    """A Service whose targetPort no selected container declares sends traffic nowhere."""
    for svc in index.of_kind("Service"):
        spec = mapping(svc.body.get("spec"))
        selector = mapping(spec.get("selector"))
        if not selector or spec.get("type") == "ExternalName":
            continue
        templates = index.selected(svc.namespace, selector, label_selector=False)
        for port in items(spec.get("ports")):
            target = port.get("targetPort", port.get("port"))
            named = isinstance(target, str) and not target.isdigit()
            protocol = port.get("protocol", "TCP")
            for template in templates:
                declared = [
                    (cp.get("containerPort"), cp.get("name"), c.get("name"))
                    for c in template.containers()
                    for cp in items(c.get("ports"))
                    if cp.get("protocol", "TCP") == protocol
                ]
                if named:
                    if any(name == target for _, name, _ in declared):
                        continue
                    names = sorted({str(n) for _, n, _ in declared if n}) or ["none"]
                    yield Issue(
                        svc.ref,
                        f"{svc.ref}: port {port.get('port')} targets the named port {target!r}, but "
                        f"{template.owner.ref} names its container ports {', '.join(names)}; the Service "
                        f"gets no endpoints. Name the container's port {target!r} or fix targetPort",
                    )
                    continue
                if not declared:
                    continue  # Declaring container ports is optional; with none declared we cannot judge.
                if any(number == int(target) for number, _, _ in declared):
                    continue
                numbers = ", ".join(f"{n} ({c})" for n, _, c in declared)
                yield Issue(
                    svc.ref,
                    f"{svc.ref}: port {port.get('port')} sends to targetPort {target}, but "
                    f"{template.owner.ref} declares containerPort {numbers}; one of them is wrong. Make "
                    "the container's containerPort the port the server listens on and point targetPort at "
                    "it (by name, e.g. targetPort: http, so they cannot drift apart)",
                )
