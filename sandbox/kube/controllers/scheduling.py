"""Whether a Pod fits the node, and the scheduler's words when it does not (pure functions).

The sandbox has one node, so scheduling is a yes/no of kube-scheduler's filters that matter here:
resource requests against the node's ``allocatable`` minus what bound pods request (``NodeResourcesFit``:
``Insufficient cpu``), the pod count, ``nodeSelector`` and required node affinity (``NodeAffinity``),
taints without a toleration (``TaintToleration``), ``spec.unschedulable`` and claims
(``VolumeBinding``: a missing claim, or an unbound ``Immediate`` one). The message is the scheduler's
``FitError`` text, e.g. ``0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are
available: 1 No preemption victims found for incoming pod.``, which ``kubectl describe pod`` and the
pipeline's "unschedulable pods" diagnosis show.

Neighbours: ``pods.py`` binds the pods that fit and records ``FailedScheduling`` for the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from .objects import Obj, labels_of, parse_quantity, selector_matches

_NOT_HELPFUL = "Preemption is not helpful for scheduling."
_NO_VICTIMS = "No preemption victims found for incoming pod."


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """Effective requests: the larger of the biggest init container and the sum of the app containers."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> dict[str, Fraction]:
        resources = container.get("resources") or {}
        # A limit without a request defaults the request to the limit.
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, Fraction(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, Fraction(0)), v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, Fraction(0)) + parse_quantity(v)
    return total


def _terms_match(affinity: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    required = (
        ((affinity or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or []
        ok = True
        for e in exprs:
            op = e.get("operator")
            if op in ("Gt", "Lt"):
                value = labels.get(e.get("key", ""))
                try:
                    have, want = int(value or ""), int((e.get("values") or ["0"])[0])
                except ValueError:
                    ok = False
                    break
                ok = have > want if op == "Gt" else have < want
            else:
                ok = selector_matches({"matchExpressions": [e]}, labels)
            if not ok:
                break
        if ok and (exprs or term.get("matchFields")):
            return True
    return False


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _fit_error(reasons: list[str], preemption: str) -> str:
    listed = ", ".join(sorted(reasons))
    return f"0/1 nodes are available: {listed}. preemption: 0/1 nodes are available: 1 {preemption}"


def claim_problem(pod: Obj, claims: Mapping[str, Obj], immediate: Mapping[str, bool]) -> str | None:
    """``VolumeBinding``'s PreFilter: a claim that does not exist, or an Immediate one still unbound."""
    unbound = False
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim")
        if not source:
            continue
        name = source.get("claimName", "")
        claim = claims.get(name)
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        if claim.get("metadata", {}).get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if (claim.get("status") or {}).get("phase") != "Bound" and immediate.get(name, False):
            unbound = True
    return "pod has unbound immediate PersistentVolumeClaims" if unbound else None


def fit(
    pod: Obj,
    node: Obj,
    bound: Iterable[Obj],
    claims: Mapping[str, Obj],
    immediate: Mapping[str, bool],
) -> str | None:
    """None when the pod fits the node, else the scheduler's ``FailedScheduling`` message."""
    problem = claim_problem(pod, claims, immediate)
    if problem is not None:
        return f"0/1 nodes are available: {problem}. preemption: 0/1 nodes are available: 1 {_NOT_HELPFUL}"
    spec = pod.get("spec") or {}
    node_labels = labels_of(node)
    reasons: list[str] = []
    if (node.get("spec") or {}).get("unschedulable"):
        reasons.append("1 node(s) were unschedulable")
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
            taint, spec.get("tolerations") or []
        ):
            value = f": {taint['value']}" if taint.get("value") else ""
            reasons.append(f"1 node(s) had untolerated taint {{{taint.get('key')}{value}}}")
            break
    selector = spec.get("nodeSelector") or {}
    if any(node_labels.get(k) != v for k, v in selector.items()) or not _terms_match(
        spec.get("affinity"), node_labels
    ):
        reasons.append("1 node(s) didn't match Pod's node affinity/selector")
    if reasons:
        return _fit_error(reasons, _NOT_HELPFUL)
    allocatable = {
        k: parse_quantity(v)
        for k, v in (
            (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity") or {}
        ).items()
    }
    used: dict[str, Fraction] = {}
    count = 0
    for other in bound:
        count += 1
        for k, v in pod_requests(other).items():
            used[k] = used.get(k, Fraction(0)) + v
    if "pods" in allocatable and count + 1 > allocatable["pods"]:
        reasons.append("1 Too many pods")
    for resource, amount in sorted(pod_requests(pod).items()):
        # Extended resources the node does not list cannot be requested; cpu and memory always count.
        if amount == 0 or (resource not in allocatable and resource not in ("cpu", "memory")):
            continue
        if used.get(resource, Fraction(0)) + amount > allocatable.get(resource, Fraction(0)):
            reasons.append(f"1 Insufficient {resource}")
    if reasons:
        return _fit_error(reasons, _NO_VICTIMS)
    return None
