"""The no-op shortcut: "nothing new" decided from a few cheap facts, before rendering or dry-running.

A release whose image is already what the environment runs costs, on the full path, a fresh snapshot of
the GitOps remote, a render, the schema checks, a cluster lookup and a server-side dry run of every
object, only to find nothing to do. :func:`check` answers the same question first, from facts that cost
one request each, and stops at the first that differs:

1. the registry's digest for the tag (one HTTP request, ``registry``), equal to the one asked for;
2. the GitOps remote's tip (one ``git ls-remote``; the clone is fetched only if it is behind);
3. the environment's newest release record (read from the clone, no fetch): a succeeded release of
   exactly this image and digest — a failed, rolled-back, started or interrupted one sends the release
   down the full path, which refuses or retries it under its own rules;
4. the fingerprint on the ApplySet parent (``fingerprint``): the hash of the inputs the last verified
   release rendered from (tree, image, settings, code) equal to today's, and the hash of what the cluster
   holds of the set (every member's non-status field ownership) equal to what that release left;
5. the app's Secret in the cluster holding the values the environment variables give now.

All equal: the cluster runs exactly what a full pre-flight would render, validate and dry-run, so the
result is "unchanged" without doing it. Any difference, any error, or no fingerprint: the full path
runs, every check included. :func:`remember` writes the fingerprint after a verified release (and after
a full-path "unchanged" that followed one), never before: a release that failed leaves the previous
fingerprint, whose members hash no longer matches the cluster.

``release.deploy`` calls both; ``plan`` and ``drift`` never use the shortcut.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import appsecret, fingerprint, gitops, gkecache, history, registry
from .applyset import APPLYSET_ID, ENV_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL, ApplySet, recorded
from .base import Obj
from .config import Environment, Settings
from .errors import PipelineError, UnknownKind
from .fingerprint import Fingerprint
from .images import Image

if TYPE_CHECKING:
    from .kube import Kube
    from .report import Timeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The answer of :func:`check`: ``image`` (digest resolved) when nothing is new, else why not."""

    image: Image | None
    why: str


def _miss(why: str) -> Verdict:
    log.info("no-op check: %s; taking the full pre-flight", why)
    return Verdict(None, why)


def _settings_parts(settings: Settings, env: Environment) -> Sequence[object]:
    return (env, settings.image, settings.secret, settings.release.field_manager)


def _kustomize() -> tuple[str, ...]:
    from . import render

    try:
        return render.find_kustomize()
    except PipelineError:
        return ()


def newest_record(settings: Settings, env: Environment, at: str, digest: str | None) -> history.Record | None:
    """The environment's newest record (an outcome replacing its ``started`` line), if it says that
    ``digest`` is verified here by ``history``'s own rule (``verify.settled``); else None."""
    records: list[history.Record] = []
    for noted in gitops.noted_at(settings, at, env.overlay, limit=20):
        for line in reversed(noted.notes):
            entry = history.Record.from_json(line, noted.commit)
            if entry is not None and entry.env == env.name and entry.result != "unchanged":
                records.append(entry)
    merged = history.merged(records)
    if not merged or merged[0].result != "succeeded" or not history.verified(merged, digest):
        return None
    return merged[0]


_PARENT_SELECTOR = f"{ENV_LABEL}={{env}},{MANAGED_BY_LABEL}={FIELD_MANAGER},{APPLYSET_ID}"


def _parent(kube: Kube, env: Environment) -> Obj | None:
    """The environment's ApplySet parent, wherever its namespace is (one label-selected list)."""
    items, _ = kube.list_objects(
        "v1", "ConfigMap", None, label_selector=_PARENT_SELECTOR.format(env=env.name)
    )
    return items[0] if len(items) == 1 else None


def _set_selector(env: Environment, parent: Obj) -> str:
    return ApplySet(env.name, str(parent["metadata"]["namespace"])).selector


def _member_lists(kube: Kube, parent: Obj) -> list[str]:
    """The list paths of the kinds and namespaces the parent records (what prune would look at)."""
    kinds, namespaces = recorded(parent)
    paths: list[str] = []
    for gk in sorted(kinds):
        kind, _, group = gk.partition(".")
        try:
            resource = kube.resource_in_group(group, kind)
        except UnknownKind:
            continue  # its CRD is gone, and with it every object of the kind
        scopes = sorted(n for n in namespaces if n) if resource.namespaced else [None]
        paths += [resource.path(ns) for ns in scopes]
    return paths


def _cluster_facts(settings: Settings, env: Environment) -> tuple[Obj | None, Fingerprint | None, list[Obj]]:
    """The parent, its fingerprint and the set's live members: plain HTTPS when it can, else the client."""
    from . import kube

    quick = gkecache.access(settings, env)
    if quick is not None:
        from .kube.lite import Reader

        with Reader(quick) as reader:
            found = reader.items("/api/v1/configmaps", _PARENT_SELECTOR.format(env=env.name))
            parent = found[0] if len(found) == 1 else None
            left = fingerprint.read(parent)
            if parent is None or left is None:
                return parent, left, []
            return parent, left, reader.lists(left.lists, _set_selector(env, parent))
    with kube.connect(gkecache.environment_access(settings, env)) as cluster:
        parent = _parent(cluster, env)
        left = fingerprint.read(parent)
        if parent is None or left is None:
            return parent, left, []
        selector = _set_selector(env, parent)
        members: list[Obj] = []
        for path in left.lists:
            members += cluster.list_path(path, selector)
        return parent, left, members


def _secret_matches(settings: Settings, members: Sequence[Obj]) -> bool:
    spec = appsecret.from_settings(settings)
    live = [o for o in members if o.get("kind") == "Secret" and o["metadata"].get("name") == spec.name]
    if len(live) != 1:
        return False
    try:
        wanted = spec.build(os.environ, str(live[0]["metadata"]["namespace"]))
    except PipelineError:
        return False  # a variable is unset: the full path says which
    return bool((live[0].get("data") or {}) == wanted["data"] and live[0].get("type") == wanted["type"])


def check(settings: Settings, env: Environment, image: Image) -> Verdict:
    """Whether ``env`` already runs exactly ``image`` as a verified release left it (module docstring)."""
    try:
        found = registry.lookup(settings, image.tag, repository=image.repository)
        if not isinstance(found, Image) or not found.digest:
            return _miss("the registry's digest is not known over plain HTTP")
        if image.digest and found.digest != image.digest:
            return _miss("the tag has another digest now")
        tip = gitops.head(settings)
        last = newest_record(settings, env, tip.commit, found.digest)
        if last is None:
            return _miss(f"the last release to {env.name} is not a succeeded one of this image")
        if last.digest != found.digest or last.image != found.ref:
            return _miss(f"the last release to {env.name} was another image")
        expected = fingerprint.inputs(
            tip.tree, found.ref, found.digest, _settings_parts(settings, env), _kustomize()
        )
        parent, left, members = _cluster_facts(settings, env)
        if parent is None or left is None:
            return _miss("no fingerprint on the ApplySet parent")
        if left.inputs != expected:
            return _miss("the overlay, image, settings or code differ from the last release")
        if fingerprint.members(members) != left.members:
            return _miss("the cluster's objects were changed since the last release")
        if not _secret_matches(settings, members):
            return _miss("the Secret's values differ from the environment's")
    except PipelineError as e:
        return _miss(f"a fact could not be read ({e})")
    return Verdict(found, f"{env.name} runs {found.tag} exactly as released")


def shortcut(settings: Settings, env: Environment, image: Image, tl: Timeline) -> Image | None:
    """:func:`check` as a release's first stage: the resolved image when nothing is new (the other
    stages then reported as skipped), else None and the full path follows."""
    with tl.stage("noop") as detail:
        verdict = check(settings, env, image)
        detail.append(verdict.why)
    if verdict.image is None:
        return None
    for name in ("preflight", "bump", "apply", "rollout", "smoke", "record"):
        tl.skip(name, "nothing changed")
    return verdict.image


def remember(
    settings: Settings,
    env: Environment,
    cluster: Kube,
    image: Image,
    rendered: Sequence[Obj],
    base: str,
    commit: str,
) -> bool:
    """Leave the fingerprint of what is now verified in ``env``; False (and nothing written) when unsure.

    ``base`` is the tip that was rendered (with the pin on top), ``commit`` the one the release
    record hangs on: only when ``commit`` is ``base`` itself, or the bump made right on it, do the inputs
    of ``commit``'s tree describe the objects that were applied.
    """
    try:
        if not image.digest or (commit != base and gitops.parent_of(settings, commit) != base):
            return False
        tree = gitops.tree_of(settings, commit)
        parent = _parent(cluster, env)
        if tree is None or parent is None:
            return False
        lists = _member_lists(cluster, parent)
        selector = _set_selector(env, parent)
        live = [o for path in lists for o in cluster.list_path(path, selector)]
        made = fingerprint.Fingerprint(
            fingerprint.inputs(tree, image.ref, image.digest, _settings_parts(settings, env), _kustomize()),
            fingerprint.members(live),
            fingerprint.objects(rendered),
            tuple(lists),
        )
        cluster.server_side_apply(
            fingerprint.annotated(parent, made), field_manager=fingerprint.FIELD_MANAGER, force=True
        )
    except PipelineError as e:
        # The release itself is done and recorded; without a fingerprint the next no-op takes the full path.
        log.warning("could not leave the no-op fingerprint on %s: %s", env.name, e)
        return False
    return True


def remember_unchanged(
    settings: Settings, env: Environment, cluster: Kube, image: Image, rendered: Sequence[Obj], base: str
) -> bool:
    """After a full-path "unchanged": fingerprint it if the newest record is a success of this image."""
    try:
        last = newest_record(settings, env, base, image.digest)
    except PipelineError:
        return False
    if last is None or last.digest != image.digest or last.image != image.ref:
        return False
    return remember(settings, env, cluster, image, rendered, base, base)
