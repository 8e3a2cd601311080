"""Bad input, data-driven: every case of ``cases.yaml`` runs as a real ``invoke`` in a scratch clone.

Each case gets its own copy of a seeded clone (its ``pipeline.toml`` and overlays edited as the case says,
overlay edits pushed to its own bare GitOps remote) and must end with: a non-zero exit (the case's code),
exactly one line on stderr that is not progress (no traceback), naming the problem (the case's words),
no new commit or release note on the remote, and no secret value of its environment in the output. The
``offline`` cases fail before anything answers (the registry, the Container API and the remote that
nothing should reach point at a closed port); they run concurrently, in seconds. The ``sandbox`` cases
run against one sandbox started for this module, after a good release to staging, and also check that
no object in the cluster changed (resourceVersions before and after).

With ``BADINPUT_REPORT=path`` the outcomes are written there as JSON (one object per case), for
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..release.conftest import (  # type: ignore[import-not-found]
    Clusters,
    Images,
    build_images,
    git,
    running_sandbox,
)

ROOT = Path(__file__).resolve().parents[2]
CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
CLOSED = "127.0.0.1:9"  # discard port: nothing listens, a connection is refused at once
# Fake secrets the offline cases carry: none may appear in any output.
FAKE_SECRETS = {
    "DOCKERHUB_USERNAME": "ci-user",
    "DOCKERHUB_TOKEN": "dckr_pat_fake-token-0123456789",
    "CAMPUS_POSTGRES_PASSWORD": "pg-fake-password-5678",
    "CAMPUS_ADMIN_PASS": "admin-fake-password-9012",
}
SECRET_NAME = re.compile(r"TOKEN|PASS|SECRET|WEBHOOK_URL", re.IGNORECASE)


@dataclass
class Outcome:
    id: str
    args: list[str]
    code: int
    stdout: str
    stderr: str
    remote_before: str
    remote_after: str
    words: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    cluster_changed: list[str] = field(default_factory=list)

    @property
    def message(self) -> list[str]:
        """stderr without progress lines (indented) and blank lines."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith("  ")]


def _substitute(value: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), value)


def _seed(tmp: Path) -> tuple[Path, Path]:
    """A clone of this checkout's HEAD and a bare remote holding it: what every case starts from."""
    clone, remote = tmp / "seed", tmp / "seed.git"
    git("clone", "-q", str(ROOT), str(clone))
    git("init", "-q", "--bare", "-b", "main", str(remote))
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=clone)
    return clone, remote


def _remote_state(remote: Path) -> str:
    return git("--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)")


def _prepare(case: dict[str, Any], seed: tuple[Path, Path], tmp: Path, values: dict[str, str]) -> Path:
    """The case's own clone and remote, with its edits; returns the case directory."""
    where = tmp / case["id"]
    shutil.copytree(seed[0], where / "clone", symlinks=True, ignore=shutil.ignore_patterns(".pipeline"))
    shutil.copytree(seed[1], where / "remote.git", symlinks=True)
    values = {**values, "case": str(where)}
    clone = where / "clone"
    setup = case.get("setup", {})
    for name, content in setup.get("files", {}).items():
        path = where / name
        if content is None:
            path.mkdir(parents=True)
        else:
            path.write_text(_substitute(content, values))
    for rel, edits in setup.get("edit", {}).items():
        path = clone / rel
        text = path.read_text()
        for old, new in edits:
            assert old in text, f"{case['id']}: {old!r} not in {rel}"
            text = text.replace(old, _substitute(new, values), 1)
        path.write_text(text)
    for rel, extra in setup.get("append", {}).items():
        path = clone / rel
        path.write_text(path.read_text() + _substitute(extra, values))
    for rel in setup.get("remove", []):
        (clone / rel).unlink()
    if git("status", "--porcelain", cwd=clone).strip():
        # The overlays are read from the remote's tip, so the case's edits are pushed there.
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", f"case {case['id']}", cwd=clone)
        git("push", "-q", str(where / "remote.git"), "HEAD:refs/heads/main", cwd=clone)
    return where


def _run(case: dict[str, Any], where: Path, base_env: dict[str, str], values: dict[str, str]) -> Outcome:
    values = {**values, "case": str(where)}
    env = {
        **base_env,
        "PIPELINE_ROOT": str(where / "clone"),  # a case's own env may override it
        "PIPELINE_GITOPS_REMOTE": str(where / "remote.git"),
    }
    for name, value in case.get("setup", {}).get("env", {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = _substitute(value, values)
    args = [_substitute(a, values) for a in case["args"]]
    own_remote = where / "remote.git"
    before = _remote_state(own_remote)
    proc = subprocess.run(
        [*INVOKE, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=240
    )
    output = proc.stdout + proc.stderr
    leaked = [
        name
        for name, value in env.items()
        if SECRET_NAME.search(name) and len(value) >= 6 and value in output
    ]
    words = [_substitute(w, values) for w in case["words"]]
    after = _remote_state(own_remote)
    return Outcome(case["id"], args, proc.returncode, proc.stdout, proc.stderr, before, after, words, leaked)


def _check(case: dict[str, Any], outcome: Outcome) -> None:
    where = f"{case['id']}: invoke {' '.join(repr(a) for a in outcome.args)}\n{outcome.stderr}"
    assert outcome.code == case.get("exit", 1), where
    assert "Traceback" not in outcome.stderr + outcome.stdout, where
    assert len(outcome.message) == 1, where
    line = outcome.message[0].lower()
    for word in outcome.words:
        assert word.lower() in line, f"{word!r} missing; {where}"
    assert outcome.remote_after == outcome.remote_before, f"the remote changed; {where}"
    assert not outcome.secrets, f"secret values of {outcome.secrets} in the output; {where}"
    assert not outcome.cluster_changed, f"changed in the cluster: {outcome.cluster_changed}; {where}"


def _report(outcomes: list[Outcome]) -> None:
    path = os.environ.get("BADINPUT_REPORT")
    if path:
        with open(path, "a") as f:
            for o in outcomes:
                row = {k: v for k, v in asdict(o).items() if k not in ("stdout", "stderr")}
                f.write(json.dumps({**row, "message": o.message}) + "\n")


# --- offline: nothing needs to answer ------------------------------------------------------------------

OFFLINE = [c for c in CASES if c.get("needs", "offline") == "offline"]
SANDBOX = [c for c in CASES if c.get("needs") == "sandbox"]


def _offline_env(tmp: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp / "home"),  # no ~/.docker, no gcloud credentials, no kubeconfig of the user's
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PIPELINE_REGISTRY": CLOSED,
        "PIPELINE_GKE_ENDPOINT": f"http://{CLOSED}",
        "PIPELINE_GKE_PROJECT": "sandbox",
        "PIPELINE_GKE_LOCATION": "local",
        "KUBECONFIG": str(tmp / "no-kubeconfig"),
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp / "no-adc.json"),
        **FAKE_SECRETS,
    }


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    tmp = tmp_path_factory.mktemp("badinput")
    (tmp / "home").mkdir()
    seed = _seed(tmp)
    values = {"closed": CLOSED, "tmp": str(tmp)}
    env = _offline_env(tmp)

    def one(case: dict[str, Any]) -> Outcome:
        return _run(case, _prepare(case, seed, tmp, values), env, values)

    # Two cores: four at a time keeps them busy while others wait on git and kustomize.
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(one, OFFLINE))
    _report(outcomes)
    return {o.id: o for o in outcomes}


def test_the_table_is_large_and_well_formed() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be distinct"
    assert len(CASES) >= 45
    for case in CASES:
        assert case["words"] and isinstance(case["args"], list), case["id"]


@pytest.mark.parametrize("case", OFFLINE, ids=[c["id"] for c in OFFLINE])
def test_offline(case: dict[str, Any], offline: dict[str, Outcome]) -> None:
    _check(case, offline[case["id"]])


# --- against the sandbox: a registry, clusters, a good release already there ----------------------------


@dataclass(frozen=True)
class Released:
    clusters: Clusters
    images: Images
    seed: tuple[Path, Path]
    tmp: Path
    env: dict[str, str]


def _cluster(kubeconfig: str, name: str, key: str) -> str:
    clusters = yaml.safe_load(Path(kubeconfig).read_text())["clusters"]
    return str(next(c["cluster"][key] for c in clusters if c["name"] == name))


def _cluster_state(kubeconfig: str) -> dict[str, str]:
    """resourceVersion of every object the pipeline applies (what a release would change)."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig, context="staging")
    try:
        core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
        found: dict[str, str] = {}
        for kind, items in (
            ("Deployment", apps.list_namespaced_deployment("campus").items),
            ("Service", core.list_namespaced_service("campus").items),
            ("ConfigMap", core.list_namespaced_config_map("campus").items),
            ("Secret", core.list_namespaced_secret("campus").items),
            ("Ingress", net.list_namespaced_ingress("campus").items),
            ("PersistentVolumeClaim", core.list_namespaced_persistent_volume_claim("campus").items),
        ):
            for item in items:
                found[f"{kind}/{item.metadata.name}"] = item.metadata.resource_version
        return found
    finally:
        api.close()


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    tmp = tmp_path_factory.mktemp("badinput-sandbox")
    with running_sandbox(tmp / "sandbox", "127.0.0.60,127.0.0.61") as clusters:
        images = build_images(
            clusters.env["PIPELINE_REGISTRY"],
            clusters.env["DOCKERHUB_USERNAME"],
            clusters.env["DOCKERHUB_TOKEN"],
            tmp / "images",
        )
        seed = _seed(tmp)
        env = {
            **clusters.env,
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "PIPELINE_ROOT": str(seed[0]),
            "PIPELINE_GITOPS_REMOTE": str(seed[1]),
        }
        first = subprocess.run(
            [*INVOKE, "release", "--env", "staging", "--image", images.good],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert first.returncode == 0, first.stderr
        # The good release's pin and record are on the seed remote; each case starts from a copy of it.
        git("pull", "-q", str(seed[1]), "main", cwd=seed[0])
        yield Released(clusters, images, seed, tmp, env)


@pytest.mark.e2e
@pytest.mark.parametrize("case", SANDBOX, ids=[c["id"] for c in SANDBOX])
def test_against_the_sandbox(case: dict[str, Any], released: Released) -> None:
    values = {
        "closed": CLOSED,
        "tmp": str(released.tmp),
        "registry": released.clusters.env["PIPELINE_REGISTRY"],
        "good": released.images.good,
        "crash": released.images.crash,
        "missing": released.images.missing,
        "good_tag": released.images.good.rsplit(":", 1)[1],
        "kubeconfig": released.clusters.env["KUBECONFIG"],
        "gke_endpoint": released.clusters.gke_endpoint,
        "staging_server": _cluster(released.clusters.env["KUBECONFIG"], "staging", "server"),
        "staging_ca": _cluster(released.clusters.env["KUBECONFIG"], "staging", "certificate-authority-data"),
    }
    where = _prepare(case, released.seed, released.tmp, values)
    before = _cluster_state(values["kubeconfig"])
    assert "Deployment/backend-core-deployment" in before, before  # the good release is there to be kept
    outcome = _run(case, where, released.env, values)
    after = _cluster_state(values["kubeconfig"])
    outcome.cluster_changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    _report([outcome])
    _check(case, outcome)
