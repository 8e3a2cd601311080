"""Apply stage (stage 4): server-side apply of a rendered overlay, the app's Secret, and a safe prune.

:func:`apply` sends every object with one field manager, in an order that lets each find what it needs
(namespaces, CRDs, storage, secrets and config before Services and workloads, the Ingress last), creates
the application's Secret from environment variables named in the configuration (a :class:`SecretSpec`;
the values are never printed, logged, or put in an exception), and prunes objects this pipeline applied
earlier that have left the overlay. ``dry_run=True`` runs the same thing as the server's ``dryRun=All``:
the pre-flight check and ``invoke plan`` use it, and nothing is stored. :func:`diff` shows what an apply
would change, Secret values redacted.

How prune finds only what we manage is ``applyset.py`` (kubectl's ApplySet design, KEP-3659). Prune
lists the recorded kinds by label and deletes what the current set no longer has, except
PersistentVolumeClaims, PersistentVolumes, Namespaces and StorageClasses: deleting those loses data (the
event's database), so they are reported as "would prune, kept" for a person to decide.

Conflicts: we apply without ``force`` first; when another field manager owns a field we set (a
``kubectl edit``, ``kubectl scale``, an earlier ``kubectl apply --server-side``), git is the source of
truth in GitOps, so we take the field over with ``force`` and report whom we took it from. Pass
``force_conflicts=False`` to fail instead, as ``kubectl apply --server-side`` does without
``--force-conflicts``.

Neighbours: ``render`` produces the objects, ``appsecret`` the Secret, ``applyset`` the labels and the
parent, ``compare`` the diffs, ``kube`` talks to the cluster, ``rollout`` waits for the workloads this
stage changed, ``release`` chains them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from . import appsecret
from .applyset import (
    FIELD_MANAGER,
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
from .appsecret import SecretSpec
from .base import ROLLOUT_KINDS, Obj, Progress, quiet
from .compare import ObjectDiff, normalized, redacted, secret_key_changes, unified
from .config import Environment, Settings
from .errors import ApplyError, SecretEnvMissing
from .kube import Access, Kube, KubeConflict, UnknownKind, opened, ref

log = logging.getLogger(__name__)

Action = Literal["created", "configured", "unchanged", "pruned", "kept"]


@dataclass(frozen=True)
class ObjectResult:
    kind: str
    namespace: str
    name: str
    action: Action
    # Why it was kept, whose fields we took over, why the server could not check it in a dry run.
    note: str = ""
    api_version: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class ApplyResult:
    dry_run: bool
    # Every object of the set (the Secret included), in apply order.
    objects: tuple[ObjectResult, ...]
    # Deleted (or, in a dry run, would be) because they left the overlay.
    pruned: tuple[ObjectResult, ...] = ()
    # Left the overlay but kept for data safety: "would prune, kept".
    kept: tuple[ObjectResult, ...] = ()
    inventory: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.pruned) or any(o.action != "unchanged" for o in self.objects)

    def count(self, action: Action) -> int:
        return sum(1 for o in (*self.objects, *self.pruned, *self.kept) if o.action == action)

    @property
    def workloads(self) -> list[tuple[str, str, str]]:
        """(kind, namespace, name) of every workload in the set, for ``rollout.wait``."""
        return [(o.kind, o.namespace, o.name) for o in self.objects if o.kind in ROLLOUT_KINDS]

    @property
    def changed_workloads(self) -> list[tuple[str, str, str]]:
        return [
            (o.kind, o.namespace, o.name)
            for o in self.objects
            if o.kind in ROLLOUT_KINDS and o.action != "unchanged"
        ]

    def summary(self) -> str:
        parts = [f"{self.count(a)} {a}" for a in ("created", "configured", "unchanged", "pruned", "kept")]
        return ("dry run: " if self.dry_run else "") + ", ".join(p for p in parts if not p.startswith("0 "))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


# --- the stage ----------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    obj: Obj
    before: Obj | None
    after: Obj | None
    action: Action
    note: str = ""


@dataclass
class _Plan:
    set: ApplySet
    objects: list[Obj] = field(default_factory=list)
    # Members we cannot send (a Secret whose variables are not set, in a plan) but must not prune either.
    reserved: dict[tuple[str, str, str], str] = field(default_factory=dict)


def _plan(
    objects: Sequence[Obj],
    secret: SecretSpec | None,
    environ: Mapping[str, str] | None,
    inventory: str,
    namespace: str | None,
    *,
    lenient_secret: bool = False,
) -> _Plan:
    if not inventory or not inventory.replace("-", "").isalnum() or len(inventory) > 50:
        raise ApplyError(f"inventory name {inventory!r} is not a short DNS label", "Use the environment name")
    plan = _Plan(ApplySet(inventory, namespace or inventory_namespace(objects)))
    members = [o for o in objects if o.get("kind") and o.get("apiVersion")]
    if secret is not None:
        # Resolved before anything is sent: a missing variable stops the stage with nothing applied.
        secret_ns = secret.namespace or plan.set.namespace
        try:
            members.append(secret.build(os.environ if environ is None else environ, secret_ns))
        except SecretEnvMissing as e:
            if not lenient_secret:
                raise
            plan.reserved[("Secret", secret_ns, secret.name)] = str(e)
    seen: set[tuple[str, str, str]] = set()
    for obj in members:
        k = key(obj)
        if k in seen:
            raise ApplyError(f"{ref(obj)} appears twice in the set", "Remove the duplicate from the overlay")
        seen.add(k)
    plan.objects = [labelled(o, inventory, plan.set.id) for o in order(members)]
    return plan


def _apply_one(
    kube: Kube, obj: Obj, *, field_manager: str, dry_run: bool, force_conflicts: bool
) -> tuple[Obj, str]:
    """Apply one object; on a field manager conflict, take the fields over (or fail) as configured."""
    try:
        return kube.server_side_apply(obj, field_manager=field_manager, dry_run=dry_run, force=False), ""
    except KubeConflict as e:
        # Only a field manager conflict names managers; any other 409 (a resourceVersion race) is not ours
        # to force.
        if not force_conflicts or not e.managers:
            raise
        verb = "would take" if dry_run else "took"
        note = f"{verb} over {', '.join(e.fields) or 'fields'} from {', '.join(e.managers)}"
        log.warning("%s: %s", ref(obj), note)
        return kube.server_side_apply(obj, field_manager=field_manager, dry_run=dry_run, force=True), note


def _classify(before: Obj | None, after: Obj, dry_run: bool) -> Action:
    if before is None:
        return "created"
    if not dry_run:
        rv_before = (before.get("metadata") or {}).get("resourceVersion")
        rv_after = (after.get("metadata") or {}).get("resourceVersion")
        if rv_before and rv_after:
            return "unchanged" if rv_before == rv_after else "configured"
    return "unchanged" if normalized(before) == normalized(after) else "configured"


_DRY_RUN_VERBS = {"created": "would create", "configured": "would configure", "unchanged": "unchanged"}


@dataclass
class _Run:
    """One apply (or dry run) of a plan against a cluster: what the cluster holds before, and the options."""

    kube: Kube
    plan: _Plan
    field_manager: str
    dry_run: bool
    force_conflicts: bool
    progress: Progress
    old_kinds: set[str] = field(default_factory=set)
    old_namespaces: set[str] = field(default_factory=set)
    new_kinds: set[str] = field(default_factory=set)
    new_namespaces: set[str] = field(default_factory=set)
    # Namespaces that will exist once the set is applied, and those that exist now (a dry run cannot
    # place objects into a namespace that the same dry run only pretends to create).
    created_namespaces: set[str] = field(default_factory=set)
    live_namespaces: set[str] = field(default_factory=set)
    crd_kinds: set[str] = field(default_factory=set)
    parent_written: bool = False

    def look(self) -> None:
        plan, kube = self.plan, self.kube
        parent_live = kube.get("v1", "ConfigMap", plan.set.parent_name, plan.set.namespace)
        self.old_kinds, self.old_namespaces = recorded(parent_live)
        self.new_kinds = {group_kind(o) for o in plan.objects}
        self.new_namespaces = namespaces_of(plan.objects)
        self.created_namespaces = {
            o["metadata"]["name"] for o in plan.objects if o.get("kind") == "Namespace"
        }
        self.live_namespaces = {
            ns
            for ns in self.new_namespaces | {plan.set.namespace}
            if kube.get("v1", "Namespace", ns) is not None
        }
        self.crd_kinds = {
            str((o.get("spec") or {}).get("names", {}).get("kind"))
            for o in plan.objects
            if o.get("kind") == "CustomResourceDefinition"
        }

    def write_parent(self, kinds: set[str], namespaces: set[str]) -> None:
        parent = self.plan.set.parent(kinds, namespaces)
        self.kube.server_side_apply(parent, field_manager=self.field_manager, force=True)

    def record_union_first(self, kind: str) -> None:
        """Before any member: record old and new kinds, so an apply that stops half-way leaves every
        member findable by the next prune."""
        if self.parent_written or kind in ("Namespace", "CustomResourceDefinition"):
            return
        ns = self.plan.set.namespace
        if not self.dry_run and (ns in self.live_namespaces or ns in self.created_namespaces):
            self.write_parent(self.old_kinds | self.new_kinds, self.old_namespaces | self.new_namespaces)
        self.parent_written = True

    def one(self, obj: Obj) -> _Outcome | None:
        kind, meta = str(obj["kind"]), obj["metadata"]
        ns = meta.get("namespace")
        self.record_union_first(kind)
        if self.dry_run and ns and ns not in self.live_namespaces and ns in self.created_namespaces:
            self.progress(f"would create {ref(obj)} (namespace not there yet)")
            why = f"namespace {ns} is created by this apply; the server checks this object then"
            return _Outcome(obj, None, None, "created", why)
        try:
            before = self.kube.get(obj["apiVersion"], kind, meta["name"], ns)
        except UnknownKind:
            if self.dry_run and kind in self.crd_kinds:
                return _Outcome(obj, None, None, "created", "its CRD is created by this apply")
            raise
        after, note = _apply_one(
            self.kube, obj, field_manager=self.field_manager, dry_run=self.dry_run,
            force_conflicts=self.force_conflicts,
        )  # fmt: skip
        action = _classify(before, after, self.dry_run)
        verb = _DRY_RUN_VERBS[action] if self.dry_run else action
        self.progress(f"{verb} {ref(obj)}{f' ({note})' if note else ''}")
        if kind == "CustomResourceDefinition" and not self.dry_run:
            self.kube.forget_discovery()
        return _Outcome(obj, before, after, action, note)

    def prune(self) -> tuple[list[_Outcome], set[str]]:
        """Delete members that left the set; keep (and report) the kinds that hold data."""
        pruned: list[_Outcome] = []
        kept_kinds: set[str] = set()
        current = {key(o) for o in self.plan.objects} | set(self.plan.reserved)
        kinds = self.old_kinds | self.new_kinds
        namespaces = self.old_namespaces | self.new_namespaces | self.live_namespaces
        for live in self.plan.set.members(self.kube, kinds, namespaces):
            if key(live) in current:
                continue
            kind = str(live.get("kind"))
            if kind in NEVER_PRUNE:
                kept_kinds.add(group_kind(live))
                why = (
                    f"would prune, kept: a {kind} is never deleted automatically "
                    "(delete it by hand if it is really unused)"
                )
                pruned.append(_Outcome(live, live, None, "kept", why))
                self.progress(f"kept {ref(live)} (left the overlay; {kind}s are never pruned)")
                continue
            meta = live["metadata"]
            self.kube.delete(
                live["apiVersion"], kind, meta["name"], meta.get("namespace"), dry_run=self.dry_run
            )
            pruned.append(_Outcome(live, live, None, "pruned"))
            self.progress(f"{'would prune' if self.dry_run else 'pruned'} {ref(live)}")
        return pruned, kept_kinds


def _each(run: _Run, objects: Sequence[Obj]) -> list[_Outcome | None]:
    if not run.dry_run:
        return [run.one(obj) for obj in objects]
    from concurrent.futures import ThreadPoolExecutor

    for obj in objects:  # discovery first, one kind at a time: its cache is not shared safely
        with contextlib.suppress(UnknownKind):
            run.kube.resource(str(obj["apiVersion"]), str(obj["kind"]))
    # A dry run stores nothing, so no object waits for another: its requests go out together.
    with ThreadPoolExecutor(8, thread_name_prefix="dry-run") as pool:
        return list(pool.map(run.one, objects))


def _run(
    kube: Kube,
    plan: _Plan,
    *,
    field_manager: str,
    dry_run: bool,
    prune: bool,
    force_conflicts: bool,
    progress: Progress,
) -> tuple[list[_Outcome], list[_Outcome]]:
    run = _Run(kube, plan, field_manager, dry_run, force_conflicts, progress)
    run.look()
    outcomes = [o for o in _each(run, plan.objects) if o is not None]
    pruned, kept_kinds = run.prune() if prune else ([], set())
    if not dry_run and run.parent_written:
        # The set as it now is: what we applied, plus the kinds of kept objects (so they keep being
        # reported until someone deletes them). Without prune, old kinds stay recorded for a later prune.
        kinds = run.new_kinds | kept_kinds | (set() if prune else run.old_kinds)
        namespaces = run.new_namespaces | (set() if prune else run.old_namespaces)
        run.write_parent(kinds, namespaces)
    return outcomes, pruned


def apply(
    access: Access | Kube,
    objects: Sequence[Obj],
    *,
    secret: SecretSpec | None = None,
    field_manager: str = FIELD_MANAGER,
    dry_run: bool = False,
    prune: bool = False,
    inventory: str = "default",
    namespace: str | None = None,
    force_conflicts: bool = True,
    environ: Mapping[str, str] | None = None,
    on_progress: Progress = quiet,
) -> ApplyResult:
    """Server-side apply ``objects`` (plus the Secret of ``secret``) and optionally prune; see the module doc.

    ``inventory`` names the set (the environment: ``staging``); ``namespace`` is where its parent
    ConfigMap and, unless the spec says otherwise, the Secret live (default: the overlay's namespace).
    ``environ`` is where Secret values come from (default: this process's environment).
    """
    plan = _plan(objects, secret, environ, inventory, namespace)
    with opened(access) as kube:
        outcomes, pruned = _run(
            kube,
            plan,
            field_manager=field_manager,
            dry_run=dry_run,
            prune=prune,
            force_conflicts=force_conflicts,
            progress=on_progress,
        )

    def result(o: _Outcome) -> ObjectResult:
        meta = o.obj.get("metadata") or {}
        return ObjectResult(
            str(o.obj.get("kind")),
            str(meta.get("namespace") or ""),
            str(meta.get("name")),
            o.action,
            o.note,
            str(o.obj.get("apiVersion", "")),
        )

    return ApplyResult(
        dry_run=dry_run,
        objects=tuple(result(o) for o in outcomes),
        pruned=tuple(result(o) for o in pruned if o.action == "pruned"),
        kept=tuple(result(o) for o in pruned if o.action == "kept"),
        inventory=inventory,
    )


def diff(
    access: Access | Kube,
    objects: Sequence[Obj],
    *,
    secret: SecretSpec | None = None,
    field_manager: str = FIELD_MANAGER,
    inventory: str = "default",
    namespace: str | None = None,
    prune: bool = True,
    environ: Mapping[str, str] | None = None,
) -> list[ObjectDiff]:
    """What applying ``objects`` would change: the server's dry-run result against each live object.

    Ignores what the server changes by itself (managedFields, resourceVersion, status, timestamps);
    Secret values are never shown, only which keys were added, changed or removed. Unlike :func:`apply`,
    unset Secret variables do not fail a plan: the Secret is reported as "unknown".
    """
    # A plan may be asked for where the Secret's variables are not set (a laptop): the Secret is then
    # shown as not compared, and kept out of prune, rather than failing the whole plan.
    plan = _plan(objects, secret, environ, inventory, namespace, lenient_secret=True)
    with opened(access) as kube:
        outcomes, pruned = _run(
            kube,
            plan,
            field_manager=field_manager,
            dry_run=True,
            prune=prune,
            force_conflicts=True,
            progress=quiet,
        )
    diffs = [
        ObjectDiff(kind, ns, name, "unknown", note=f"not compared: {why}")
        for (kind, ns, name), why in plan.reserved.items()
    ]
    verbs = {
        "created": "create",
        "configured": "change",
        "unchanged": "unchanged",
        "pruned": "delete",
        "kept": "keep",
    }
    for o in (*outcomes, *pruned):
        meta = o.obj.get("metadata") or {}
        name = f"{str(o.obj.get('kind')).lower()}/{meta.get('name')}"
        before = redacted(normalized(o.before))
        after = redacted(
            normalized(o.after if o.after is not None else (o.obj if o.action == "created" else None))
        )
        secret_keys: tuple[tuple[str, str], ...] = ()
        if o.obj.get("kind") == "Secret":
            new = o.after if o.after is not None else (o.obj if o.action == "created" else None)
            secret_keys = tuple(secret_key_changes(o.before, new))
        text = "" if o.action in ("unchanged", "kept") else unified(before, after, name)
        diffs.append(
            ObjectDiff(
                str(o.obj.get("kind")),
                str(meta.get("namespace") or ""),
                str(meta.get("name")),
                verbs[o.action],
                text,
                secret_keys,
                o.note,
            )
        )
    return diffs


def apply_environment(
    settings: Settings,
    env: Environment,
    kube: Kube,
    objects: Sequence[Obj],
    *,
    dry_run: bool,
    progress: Progress = quiet,
) -> ApplyResult:
    """:func:`apply` as a release does it: the app's Secret, our field manager, the env's set, pruned."""
    return apply(
        kube,
        objects,
        secret=appsecret.from_settings(settings),
        field_manager=settings.release.field_manager,
        dry_run=dry_run,
        prune=True,
        inventory=env.name,
        environ=os.environ,
        on_progress=progress,
    )


def diff_environment(
    settings: Settings, env: Environment, kube: Kube, objects: Sequence[Obj]
) -> list[ObjectDiff]:
    """:func:`diff` as ``invoke plan`` does it: what :func:`apply_environment` would change."""
    return diff(
        kube,
        objects,
        secret=appsecret.from_settings(settings),
        field_manager=settings.release.field_manager,
        inventory=env.name,
        environ=os.environ,
    )
