"""Drift stage: the live objects against what the environment's last good release declared.

What was declared is the overlay at the release's recorded overlay commit (``history``, ``gitops``),
rendered with kustomize (``render``), labelled as the apply stage labels it (``applyset``), plus the app's
Secret from the environment variables, as a release builds it (``appsecret``). Each declared object is
read live and sent as a server-side dry run with our field manager and ``force`` (``kube``): the server
answers with the object as it would be after a re-apply, so defaulted fields, status and fields only
other managers set (a ``kubectl annotate``, a controller's annotations) are the same on both sides and
never count. Where the two differ (``fields``), the live object's ``managedFields`` say who wrote the
live value: a person's edit (``kubectl scale``, ``kubectl set image``, ``kubectl edit``) is drift; a field
that a controller owns by design (an HPA's replicas) is reported as "owned by X" and is not. Objects
that carry our ApplySet label but are no longer declared are drift too.

``release.drift`` chains this with ``release.repair`` (the verified deploy, recorded as ``repair``);
``driftreport`` holds what is returned and how it is shown. Nothing here writes to the cluster or to git.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import appsecret, gitops, history, overlays, rendercache
from .applyset import (
    NEVER_PRUNE,
    ApplySet,
    group_kind,
    inventory_namespace,
    key,
    labelled,
    namespaces_of,
    order,
    recorded,
)
from .base import ROLLOUT_KINDS, Obj
from .compare import LAST_APPLIED, normalized
from .config import Environment, Settings
from .driftreport import HIDDEN, DriftReport, FieldDrift, ObjectDrift, What
from .errors import ReleaseRefused, SecretEnvMissing
from .fields import Difference, FieldPath, Owner, differences, owners
from .images import Image
from .kube import Kube, KubeNotFound, UnknownKind
from .report import StageResult

# Field managers of controllers that own some fields of our objects by design: the fields they hold are
# reported as "owned by X", never as drift (Argo CD's ignoreDifferences by managedFieldsManagers is the same
# idea). The HPA writes spec.replicas through the scale subresource as kube-controller-manager.
CONTROLLERS = frozenset(
    {"kube-controller-manager", "horizontal-pod-autoscaler", "vpa-updater", "keda-operator"}
)
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


@dataclass(frozen=True)
class Declared:
    """What the last good release applied: its record, the overlay commit, its pin and objects."""

    record: history.Record
    commit: str
    pin: overlays.Pin | None
    objects: list[Obj] = field(repr=False)


def last_release(records: Iterable[history.Record]) -> history.Record | None:
    """The newest release whose outcome is known: it succeeded, or it failed and the previous release was
    restored (that record hangs on the revert commit, which pins what runs)."""
    return next((r for r in records if r.result in ("succeeded", "rolled-back") and r.commit), None)


def render_at(
    settings: Settings, env: Environment, commit: str | None
) -> tuple[str, overlays.Pin | None, list[Obj]]:
    """The environment's overlay at ``commit`` (None: the remote's tip), rendered: commit, pin, objects."""
    from . import render

    def fresh() -> tuple[str, overlays.Pin | None, list[Obj]]:
        with tempfile.TemporaryDirectory(prefix="campus-drift-") as tmp:
            root = Path(tmp)
            at = gitops.snapshot(settings, root, commit)
            pin = overlays.read_pin(overlays.kustomization(root / env.overlay), settings.image.kustomize_name)
            rendered = render.kustomize_build(root / env.overlay)
        return at, pin, list(rendered.objects)

    if commit is None:
        return fresh()
    return rendercache.cached(settings, env, commit, render.find_kustomize(), fresh)


def declared(settings: Settings, env: Environment, records: Iterable[history.Record]) -> Declared:
    """The declared state: the last good release's overlay commit, rendered (it was validated then)."""
    target = last_release(records)
    if target is None:
        raise ReleaseRefused(
            f"{env.name} has no successful release recorded, so nothing says what it should run",
            f"Release first (`invoke release --env {env.name}`); drift is measured against the last good one",
        )
    commit, pin, objects = render_at(settings, env, target.commit)
    return Declared(target, commit, pin, objects)


def repair_image(settings: Settings, env: Environment, state: Declared) -> Image:
    """The image a repair deploys: the release's pin, once the remote's tip is checked to declare the same.

    A repair goes through the ordinary deploy, which renders the remote's tip: if that is not what the
    release applied (a bump not released yet, a release under way), a repair would apply something nobody
    verified, so it is refused instead.
    """
    if state.pin is None or not state.pin.digest:
        raise ReleaseRefused(f"{env.overlay} at {state.commit[:12]} pins no digest", "Release a built image")
    _, _, at_tip = render_at(settings, env, None)
    if at_tip != state.objects:
        raise ReleaseRefused(
            f"{env.overlay} at the remote's tip differs from what its last good release applied "
            f"(overlay commit {state.commit[:12]}); a release may be under way",
            "Release the change (`invoke release`) or roll back; a repair only puts back what was released",
        )
    return Image(state.pin.new_name, state.pin.tag, state.pin.digest)


# --- the comparison -----------------------------------------------------------------------------------------


def members(
    settings: Settings, env: Environment, objects: Sequence[Obj], environ: Mapping[str, str]
) -> tuple[ApplySet, list[Obj], dict[tuple[str, str, str], str]]:
    """The set as ``apply.apply_environment`` sends it (labelled, the Secret added); what cannot be built."""
    aset = ApplySet(env.name, inventory_namespace(objects))
    found = [o for o in objects if o.get("kind") and o.get("apiVersion")]
    unknown: dict[tuple[str, str, str], str] = {}
    spec = appsecret.from_settings(settings)
    namespace = spec.namespace or aset.namespace
    try:
        found.append(spec.build(environ, namespace))
    except SecretEnvMissing as e:
        unknown[("Secret", namespace, spec.name)] = f"{e.what} (its values are not compared)"
    return aset, [labelled(o, env.name, aset.id) for o in order(found)], unknown


class _Autoscalers:
    """The HorizontalPodAutoscalers of a namespace, listed once and only when a replica count differs."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.by_namespace: dict[str, list[Obj]] = {}
        # The objects are compared from several threads; one lists, the others wait for its answer.
        self._lock = threading.Lock()

    def targeting(self, obj: Obj) -> str:
        """The name of an HPA that scales ``obj``, or ""."""
        with self._lock:
            return self._targeting(obj)

    def _targeting(self, obj: Obj) -> str:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "")
        if ns not in self.by_namespace:
            self.by_namespace[ns] = []
            for version in ("autoscaling/v2", "autoscaling/v1"):
                try:
                    self.by_namespace[ns], _ = self.kube.list_objects(version, "HorizontalPodAutoscaler", ns)
                    break
                except (UnknownKind, KubeNotFound):
                    continue
        for hpa in self.by_namespace[ns]:
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") == obj.get("kind") and target.get("name") == meta.get("name"):
                return str((hpa.get("metadata") or {}).get("name", ""))
        return ""


def _what(kind: str, path: FieldPath) -> What:
    if kind in ROLLOUT_KINDS and path == ("spec", "replicas"):
        return "replicas"
    if path and path[-1] == "image" and any(step in _CONTAINER_LISTS for step in path):
        return "image"
    return "field"


def _hidden(kind: str, d: Difference) -> tuple[object, object]:
    """The values to show: a Secret's data (and kubectl's copy of it) never are."""
    secret = kind == "Secret" and (
        d.path[:1] in (("data",), ("stringData",)) or d.path[:3] == ("metadata", "annotations", LAST_APPLIED)
    )
    if not secret:
        return d.live, d.declared
    return (HIDDEN if d.live_set else None), (HIDDEN if d.declared_set else None)


def _fields(
    live: Obj, after: Obj, manager: str, controllers: frozenset[str], hpas: _Autoscalers
) -> tuple[list[FieldDrift], list[FieldDrift]]:
    """(drift, owned elsewhere): where the live object differs from its dry-run re-apply."""
    kind = str(live.get("kind"))
    drift: list[FieldDrift] = []
    owned: list[FieldDrift] = []
    for d in differences(normalized(live), normalized(after)):
        by: list[Owner] = [o for o in owners(live, d.path) if o.manager != manager]
        what = _what(kind, d.path)
        shown_live, shown_declared = _hidden(kind, d)
        names = tuple(str(o) for o in by)
        hpa = hpas.targeting(live) if what == "replicas" else ""
        if hpa:
            names = (*names, f"HorizontalPodAutoscaler {hpa}")
        entry = FieldDrift(d.where, what, shown_live, shown_declared, names)
        controlled = bool(hpa) or any(o.manager in controllers for o in by)
        (owned if controlled else drift).append(entry)
    return drift, owned


def _compare(
    kube: Kube, obj: Obj, manager: str, controllers: frozenset[str], hpas: _Autoscalers
) -> ObjectDrift:
    kind, meta = str(obj["kind"]), obj["metadata"]
    namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
    try:
        live = kube.get(obj["apiVersion"], kind, name, meta.get("namespace"))
    except UnknownKind:
        return ObjectDrift(
            kind, namespace, name, "missing", note=f"the cluster does not serve {obj['apiVersion']}"
        )
    if live is None:
        return ObjectDrift(kind, namespace, name, "missing")
    after = kube.server_side_apply(obj, field_manager=manager, dry_run=True, force=True)
    drift, owned = _fields(live, after, manager, controllers, hpas)
    return ObjectDrift(kind, namespace, name, "changed" if drift else "equal", tuple(drift), tuple(owned))


def _undeclared(
    kube: Kube, aset: ApplySet, declared_objects: Sequence[Obj], reserved: Iterable[tuple[str, str, str]]
) -> list[ObjectDrift]:
    """Live objects labelled as members of the set that the release does not declare."""
    parent = kube.get("v1", "ConfigMap", aset.parent_name, aset.namespace)
    kinds, namespaces = recorded(parent)
    kinds |= {group_kind(o) for o in declared_objects}
    namespaces |= namespaces_of(declared_objects) | {aset.namespace}
    current = {key(o) for o in declared_objects} | set(reserved)
    out: list[ObjectDrift] = []
    for live in aset.members(kube, kinds, namespaces):
        if key(live) in current:
            continue
        kind, meta = str(live.get("kind")), live.get("metadata") or {}
        kept = kind in NEVER_PRUNE
        note = (
            f"a repair keeps it ({kind}s are never deleted automatically; delete it by hand if unused)"
            if kept
            else "a repair deletes it"
        )
        out.append(
            ObjectDrift(
                kind,
                str(meta.get("namespace") or ""),
                str(meta.get("name")),
                "undeclared",
                note=note,
                repairable=not kept,
            )
        )
    return out


def check(
    settings: Settings,
    env: Environment,
    kube: Kube,
    state: Declared,
    *,
    environ: Mapping[str, str] | None = None,
    controllers: frozenset[str] = CONTROLLERS,
) -> list[ObjectDrift]:
    """Every declared object (and every leftover member of the set) against the cluster; see the module doc.

    ``environ`` is where the Secret's values come from (default: this process's environment); without
    them the Secret is reported as not compared rather than failing the check.
    """
    aset, objects, unknown = members(settings, env, state.objects, os.environ if environ is None else environ)
    manager = settings.release.field_manager
    hpas = _Autoscalers(kube)
    for obj in objects:  # discovery first, one kind at a time: its cache is not shared safely
        with contextlib.suppress(UnknownKind):
            kube.resource(str(obj["apiVersion"]), str(obj["kind"]))
    # Each object is a read and a server-side dry run, independent of the others: sent together.
    with ThreadPoolExecutor(8, thread_name_prefix="drift") as pool:
        found = list(pool.map(lambda obj: _compare(kube, obj, manager, controllers, hpas), objects))
    found += [ObjectDrift(kind, ns, name, "unknown", note=why) for (kind, ns, name), why in unknown.items()]
    found += _undeclared(kube, aset, objects, unknown)
    return found


def report(
    env: Environment, state: Declared, objects: Sequence[ObjectDrift], stages: Sequence[StageResult]
) -> DriftReport:
    pin = state.pin
    return DriftReport(
        env.name,
        state.commit,
        f"{pin.new_name}:{pin.tag}" if pin is not None else "(no pin)",
        pin.digest if pin is not None else None,
        tuple(objects),
        tuple(stages),
    )
