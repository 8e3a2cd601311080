"""Apply stage (stage 4): server-side apply of a rendered overlay, the app's Secret, and a safe prune.

:func:`apply` sends every object with one field manager, in an order that lets each find what it needs
(namespaces, CRDs, storage, secrets and config before Services and workloads, the Ingress last), creates
the application's Secret from environment variables named in the configuration (a :class:`SecretSpec`;
the values are never printed, logged, or put in an exception), and prunes objects this pipeline applied
earlier that have left the overlay. ``dry_run=True`` runs the same thing as the server's ``dryRun=All``:
the pre-flight check and ``invoke plan`` use it, and nothing is stored. :func:`diff` shows what an apply
would change, Secret values redacted.

How prune finds only what we manage, after kubectl's ApplySet design (KEP-3659): every applied object
carries the labels ``app.kubernetes.io/managed-by: campus-pipeline``, ``campus-pipeline/env: <inventory>``
and ``applyset.kubernetes.io/part-of: <id>``; a parent ConfigMap (``campus-pipeline-<inventory>``)
records which kinds and namespaces the set spans, so that a kind that left the overlay entirely is still
looked at. Prune lists those kinds by label and deletes what the current set no longer has, except
PersistentVolumeClaims, PersistentVolumes, Namespaces and StorageClasses: deleting those loses data (the
event's database), so they are reported as "would prune, kept" for a person to decide.

Conflicts: we apply without ``force`` first; when another field manager owns a field we set (a
``kubectl edit``, ``kubectl scale``, an earlier ``kubectl apply --server-side``), git is the source of
truth in GitOps, so we take the field over with ``force`` and report whom we took it from. Pass
``force_conflicts=False`` to fail instead, as ``kubectl apply --server-side`` does without
``--force-conflicts``.

Neighbours: ``render`` produces the objects, ``kube`` talks to the cluster, ``rollout`` waits for the
workloads this stage changed, ``release`` chains them.
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import yaml

from .errors import ConfigError, PipelineError
from .kube import Access, Kube, KubeConflict, UnknownKind, opened, ref

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Action = Literal["created", "configured", "unchanged", "pruned", "kept"]
Progress = Callable[[str], None]

FIELD_MANAGER = "campus-pipeline"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ENV_LABEL = "campus-pipeline/env"
# ApplySet (KEP-3659) keys: kubectl's own `apply --prune --applyset` understands them and refuses to touch
# a set whose tooling annotation names another tool, which protects ours from it.
APPLYSET_PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"
APPLYSET_TOOLING = "applyset.kubernetes.io/tooling"
APPLYSET_KINDS = "applyset.kubernetes.io/contains-group-kinds"
APPLYSET_NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "campus-pipeline/v1"
# Never deleted by prune: they hold data (claims, volumes), everything in them (namespaces) or define how
# disks are made (storage classes).
NEVER_PRUNE = frozenset({"PersistentVolumeClaim", "PersistentVolume", "Namespace", "StorageClass"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# Apply order: what others depend on first. Unknown kinds (custom resources such as GKE's
# ManagedCertificate) go after workloads and before the Ingress, which may name them in annotations.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "Secret",
    "ConfigMap",
    "Service",
    "PodDisruptionBudget",
    "DaemonSet",
    "StatefulSet",
    "Deployment",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "HorizontalPodAutoscaler",
    "",  # unknown kinds
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "IngressClass",
    "Ingress",
)
_UNKNOWN_RANK = KIND_ORDER.index("")


class ApplyError(PipelineError):
    """Applying the overlay failed."""


class SecretEnvMissing(ApplyError, ConfigError):
    """An environment variable that a Secret key comes from is not set."""


@dataclass(frozen=True)
class SecretSpec:
    """The application's Secret, made at deploy time from environment variables (never from git)."""

    name: str
    # Secret key -> the environment variable holding its value, e.g. POSTGRES_PASSWORD ->
    # CAMPUS_POSTGRES_PASSWORD.
    keys: Mapping[str, str]
    # Empty: the namespace most of the overlay's objects are in.
    namespace: str = ""
    type: str = "Opaque"

    def build(self, environ: Mapping[str, str], namespace: str) -> Obj:
        """The Secret object; :class:`SecretEnvMissing` naming every unset variable (never a value)."""
        missing = [var for var in self.keys.values() if not environ.get(var)]
        if missing:
            raise SecretEnvMissing(
                f"the Secret {namespace}/{self.name} needs {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not set",
                "Export them before releasing (in GitHub Actions, from repository or environment secrets)",
            )
        data = {
            key: base64.b64encode(environ[var].encode()).decode("ascii") for key, var in self.keys.items()
        }
        # `data` rather than `stringData`: the server stores and returns `data`, so a re-apply with the
        # same values compares equal and is a no-op.
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": namespace},
            "type": self.type,
            "data": data,
        }


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
        return [(o.kind, o.namespace, o.name) for o in self.objects if o.kind in WORKLOAD_KINDS]

    @property
    def changed_workloads(self) -> list[tuple[str, str, str]]:
        return [
            (o.kind, o.namespace, o.name)
            for o in self.objects
            if o.kind in WORKLOAD_KINDS and o.action != "unchanged"
        ]

    def summary(self) -> str:
        parts = [f"{self.count(a)} {a}" for a in ("created", "configured", "unchanged", "pruned", "kept")]
        return ("dry run: " if self.dry_run else "") + ", ".join(p for p in parts if not p.startswith("0 "))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


@dataclass(frozen=True)
class ObjectDiff:
    kind: str
    namespace: str
    name: str
    # "create", "change", "unchanged", "delete" (pruned), "keep" (would prune, kept) or "unknown" (a
    # Secret whose variables are not set where the plan runs).
    action: str
    # A unified diff of the live object against the server's dry-run result (Secret values redacted).
    diff: str = ""
    # For Secrets: (key, "added" | "changed" | "unchanged" | "removed"); values are never shown.
    secret_keys: tuple[tuple[str, str], ...] = ()
    note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


# --- pure helpers (unit-tested on dicts) ----------------------------------------------------------------


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER and kind else _UNKNOWN_RANK


def order(objects: Iterable[Obj]) -> list[Obj]:
    """Objects in apply order; objects of one kind keep the overlay's order."""
    return sorted(objects, key=lambda o: kind_rank(str(o.get("kind", ""))))


def group_kind(obj: Mapping[str, Any]) -> str:
    """``Kind.group`` as ApplySet writes it (``Kind`` alone for the core group)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{obj.get('kind')}.{group}" if group else str(obj.get("kind"))


def applyset_id(name: str, namespace: str) -> str:
    """The ApplySet id of a parent ConfigMap, as KEP-3659 defines it (so kubectl would agree)."""
    digest = hashlib.sha256(f"{name}.{namespace}.ConfigMap.".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def inventory_namespace(objects: Iterable[Mapping[str, Any]]) -> str:
    """The namespace most namespaced objects are in: where the parent (and by default the Secret) live."""
    counts = Counter(
        str((o.get("metadata") or {}).get("namespace"))
        for o in objects
        if (o.get("metadata") or {}).get("namespace")
    )
    return counts.most_common(1)[0][0] if counts else "default"


def labelled(obj: Obj, inventory: str, set_id: str) -> Obj:
    """A copy of ``obj`` carrying the labels that mark it as ours and as a member of the set."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels.update({MANAGED_BY_LABEL: FIELD_MANAGER, ENV_LABEL: inventory, APPLYSET_PART_OF: set_id})
    meta["labels"] = labels
    return out


def key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """Identity of an object within a set: group/kind, namespace, name (API version does not matter)."""
    meta = obj.get("metadata") or {}
    return (group_kind(obj), str(meta.get("namespace") or ""), str(meta.get("name", "")))


_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def normalized(obj: Mapping[str, Any] | None) -> Obj:
    """``obj`` without what the server changes on its own (status, versions, timestamps, managedFields)."""
    if not obj:
        return {}
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for name in _VOLATILE_META:
        meta.pop(name, None)
    annotations = meta.get("annotations") or {}
    # Written by the deployment controller on every rollout; not something an apply changes.
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def redacted(obj: Obj) -> Obj:
    """A Secret with its values replaced (and kubectl's last-applied copy of them dropped)."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for name in ("data", "stringData"):
        if isinstance(out.get(name), dict):
            out[name] = dict.fromkeys(out[name], "<redacted>")
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = "<redacted>"
    return out


def secret_key_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """Per key of a Secret: added, changed, unchanged or removed, comparing values without showing them."""
    old = dict((before or {}).get("data") or {})
    new = dict((after or {}).get("data") or {})
    changes: list[tuple[str, str]] = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            changes.append((k, "added"))
        elif k not in new:
            changes.append((k, "removed"))
        else:
            changes.append((k, "unchanged" if old[k] == new[k] else "changed"))
    return changes


def unified(before: Obj, after: Obj, name: str) -> str:
    """A unified diff of two (normalized, redacted) objects as YAML."""

    def lines(obj: Obj) -> list[str]:
        return (
            yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(keepends=True)
            if obj
            else []
        )

    return "".join(difflib.unified_diff(lines(before), lines(after), f"live/{name}", f"overlay/{name}"))


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
    inventory: str
    namespace: str
    parent_name: str
    set_id: str
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
    ns = namespace or inventory_namespace(objects)
    parent = f"{FIELD_MANAGER}-{inventory}"
    plan = _Plan(inventory, ns, parent, applyset_id(parent, ns))
    members = [o for o in objects if o.get("kind") and o.get("apiVersion")]
    if secret is not None:
        # Resolved before anything is sent: a missing variable stops the stage with nothing applied.
        secret_ns = secret.namespace or ns
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
    plan.objects = [labelled(o, inventory, plan.set_id) for o in order(members)]
    return plan


def _parent(plan: _Plan, kinds: Iterable[str], namespaces: Iterable[str]) -> Obj:
    extra = sorted({n for n in namespaces if n and n != plan.namespace})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": plan.parent_name,
            "namespace": plan.namespace,
            "labels": {APPLYSET_ID: plan.set_id, MANAGED_BY_LABEL: FIELD_MANAGER, ENV_LABEL: plan.inventory},
            "annotations": {
                APPLYSET_TOOLING: TOOLING,
                APPLYSET_KINDS: ",".join(sorted(set(kinds))),
                APPLYSET_NAMESPACES: ",".join(extra),
            },
        },
        "data": {"note": "Inventory of the objects campus-pipeline applies to this cluster; used by prune."},
    }


def _recorded(parent: Obj | None) -> tuple[set[str], set[str]]:
    if not parent:
        return set(), set()
    annotations = (parent.get("metadata") or {}).get("annotations") or {}
    kinds = {k for k in str(annotations.get(APPLYSET_KINDS, "")).split(",") if k}
    namespaces = {n for n in str(annotations.get(APPLYSET_NAMESPACES, "")).split(",") if n}
    namespaces.add(str((parent.get("metadata") or {}).get("namespace", "")))
    return kinds, namespaces


def _namespaces_of(objects: Iterable[Obj]) -> set[str]:
    return {
        str((o.get("metadata") or {}).get("namespace"))
        for o in objects
        if (o.get("metadata") or {}).get("namespace")
    }


def _apply_one(
    kube: Kube, obj: Obj, *, field_manager: str, dry_run: bool, force_conflicts: bool
) -> tuple[Obj, str]:
    """Apply one object; on a field manager conflict, take the fields over (or fail) as configured."""
    try:
        return kube.server_side_apply(obj, field_manager=field_manager, dry_run=dry_run, force=False), ""
    except KubeConflict as e:
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
    parent_live = kube.get("v1", "ConfigMap", plan.parent_name, plan.namespace)
    old_kinds, old_namespaces = _recorded(parent_live)
    new_kinds = {group_kind(o) for o in plan.objects}
    new_namespaces = _namespaces_of(plan.objects)

    # Namespaces that will exist once the set is applied, and those that exist now (a dry run cannot
    # place objects into a namespace that the same dry run only pretends to create).
    created_namespaces = {o["metadata"]["name"] for o in plan.objects if o.get("kind") == "Namespace"}
    live_namespaces = {
        ns for ns in new_namespaces | {plan.namespace} if kube.get("v1", "Namespace", ns) is not None
    }
    crd_kinds = {
        (o.get("spec") or {}).get("names", {}).get("kind")
        for o in plan.objects
        if o.get("kind") == "CustomResourceDefinition"
    }

    outcomes: list[_Outcome] = []
    parent_written = False
    for obj in plan.objects:
        kind = str(obj["kind"])
        meta = obj["metadata"]
        ns = meta.get("namespace")
        if not parent_written and kind not in ("Namespace", "CustomResourceDefinition"):
            # Before any member: record the union of old and new kinds, so that an apply that stops
            # half-way still leaves every member findable by the next prune.
            if not dry_run and (plan.namespace in live_namespaces or plan.namespace in created_namespaces):
                kube.server_side_apply(
                    _parent(plan, old_kinds | new_kinds, old_namespaces | new_namespaces),
                    field_manager=field_manager,
                    force=True,
                )
            parent_written = True
        if dry_run and ns and ns not in live_namespaces and ns in created_namespaces:
            outcomes.append(
                _Outcome(
                    obj,
                    None,
                    None,
                    "created",
                    f"namespace {ns} is created by this apply; the server checks this object then",
                )
            )
            progress(f"would create {ref(obj)} (namespace not there yet)")
            continue
        try:
            before = kube.get(obj["apiVersion"], kind, meta["name"], ns)
        except UnknownKind:
            if dry_run and kind in crd_kinds:
                outcomes.append(_Outcome(obj, None, None, "created", "its CRD is created by this apply"))
                continue
            raise
        after, note = _apply_one(
            kube, obj, field_manager=field_manager, dry_run=dry_run, force_conflicts=force_conflicts
        )
        action = _classify(before, after, dry_run)
        outcomes.append(_Outcome(obj, before, after, action, note))
        verb = _DRY_RUN_VERBS[action] if dry_run else action
        progress(f"{verb} {ref(obj)}{f' ({note})' if note else ''}")
        if kind == "CustomResourceDefinition" and not dry_run:
            kube.forget_discovery()

    pruned: list[_Outcome] = []
    kept_kinds: set[str] = set()
    if prune:
        current = {key(o) for o in plan.objects} | set(plan.reserved)
        for live in _members(
            kube, plan, old_kinds | new_kinds, old_namespaces | new_namespaces | live_namespaces
        ):
            if key(live) in current:
                continue
            kind = str(live.get("kind"))
            if kind in NEVER_PRUNE:
                kept_kinds.add(group_kind(live))
                pruned.append(
                    _Outcome(
                        live,
                        live,
                        None,
                        "kept",
                        f"would prune, kept: a {kind} is never deleted automatically "
                        "(delete it by hand if it is really unused)",
                    )
                )
                progress(f"kept {ref(live)} (left the overlay; {kind}s are never pruned)")
                continue
            meta = live["metadata"]
            kube.delete(live["apiVersion"], kind, meta["name"], meta.get("namespace"), dry_run=dry_run)
            pruned.append(_Outcome(live, live, None, "pruned"))
            progress(f"{'would prune' if dry_run else 'pruned'} {ref(live)}")
    if not dry_run and parent_written:
        # The set as it now is: what we applied, plus the kinds of kept objects (so they keep being
        # reported until someone deletes them). Without prune, old kinds stay recorded for a later prune.
        kinds = new_kinds | kept_kinds | (set() if prune else old_kinds)
        namespaces = new_namespaces | (set() if prune else old_namespaces)
        kube.server_side_apply(_parent(plan, kinds, namespaces), field_manager=field_manager, force=True)
    return outcomes, pruned


def _members(kube: Kube, plan: _Plan, kinds: Iterable[str], namespaces: Iterable[str]) -> list[Obj]:
    """Live objects labelled as members of this set, for the recorded kinds; in reverse apply order."""
    selector = f"{APPLYSET_PART_OF}={plan.set_id},{MANAGED_BY_LABEL}={FIELD_MANAGER}"
    found: dict[tuple[str, str, str], Obj] = {}
    for gk in sorted(set(kinds)):
        kind, _, group = gk.partition(".")
        try:
            resource = kube.resource_in_group(group, kind)
        except UnknownKind:
            continue  # its CRD is gone, and with it every object of the kind
        scopes: Iterable[str | None] = sorted(n for n in namespaces if n) if resource.namespaced else [None]
        for ns in scopes:
            items, _ = kube.list_resource(resource, ns, label_selector=selector)
            for item in items:
                found.setdefault(key(item), item)
    return sorted(found.values(), key=lambda o: -kind_rank(str(o.get("kind"))))


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
    on_progress: Progress = lambda _: None,
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
            progress=lambda _: None,
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
