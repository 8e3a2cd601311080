"""`invoke history --stats` and `invoke report` on a history made here: real git, real notes, no cluster.

A small project with a bare GitOps remote gets source commits at chosen times (one whose message is HTML)
and release records written through ``pipeline.history``, so the expected metrics follow from the times
below by hand. The clusters are not reachable (none is configured): the page must say so, not fail.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import config, history

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
HTML_SUBJECT = '<script>alert("owned")</script> backend: <b>bold</b> & more'
TOML = """\
[image]
repository = "team/app"
kustomize_name = "backend"
context = "app"

[environments.staging]
overlay = "overlays/staging"

[environments.prod]
overlay = "overlays/prod"
protected = true
"""
OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
  - name: backend
    newName: registry.example/team/app
    newTag: sha-0000000
"""


def git(*args: str, cwd: Path, when: datetime.datetime | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.invalid"}  # fmt: skip
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"@{int(when.timestamp())} +0000"
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def ago(**delta: float) -> datetime.datetime:
    return NOW - datetime.timedelta(**delta)


@dataclass
class Made:
    root: Path
    env: dict[str, str]
    commits: dict[str, str]  # name -> sha


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    tmp = tmp_path_factory.mktemp("dashboard")
    root, remote = tmp / "project", tmp / "remote.git"
    (root / "app").mkdir(parents=True)
    (root / "pipeline.toml").write_text(TOML)
    for env in ("staging", "prod"):
        (root / "overlays" / env).mkdir(parents=True)
        (root / "overlays" / env / "kustomization.yaml").write_text(OVERLAY)
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "project", cwd=root, when=ago(hours=6))
    shas = {}
    for name, subject, when in (
        ("c1", "backend: first", ago(hours=5)),
        ("c2", HTML_SUBJECT, ago(hours=3)),
        ("c3", "backend: third", ago(hours=1, minutes=10)),
    ):
        (root / "app" / "file.txt").write_text(name)
        git("add", "-A", cwd=root)
        git("commit", "-q", "-m", subject, cwd=root, when=when)
        shas[name] = git("rev-parse", "HEAD", cwd=root).strip()
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp)
    git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=root)
    env = {**os.environ, "PIPELINE_GITOPS_REMOTE": str(remote), "PIPELINE_ROOT": str(root)}
    settings = config.load(root, env)
    overlay_commit = git("rev-list", "-1", "HEAD", "--", "overlays", cwd=root).strip()
    for kind, result, source, when, reason in (
        ("release", "succeeded", "c1", ago(hours=4), ""),
        ("release", "rolled-back", "c2", ago(hours=2, minutes=30), "rollout: CrashLoopBackOff, exit code 3"),
        ("rollback", "succeeded", "c1", ago(hours=2), ""),
        ("release", "succeeded", "c3", ago(hours=1), ""),
    ):
        entry = history.Record(
            "staging", kind, result, f"registry.example/team/app:sha-{shas[source][:7]}",  # type: ignore[arg-type]
            "sha256:" + source[1] * 64, shas[source], "asha", when.isoformat(), None, reason,
            {"preflight": 1.5, "apply": 2.0, "rollout": 7.25, "smoke": 1.0},
        )  # fmt: skip
        history.record(settings, overlay_commit, entry)
    return Made(root, env, shas)


def invoke(made: Made, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=made.root, env=made.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_stats_json_matches_the_history(made: Made) -> None:
    proc = invoke(made, "history", "--env", "staging", "--stats", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    # Two successful releases (the rollback restores, it is no deployment) in 30 days.
    assert stats["deployments"] == 2
    assert stats["deployment_frequency_per_day"] == pytest.approx(2 / 30)
    # Lead times: c1 committed 5 h ago, released 4 h ago; c3 committed 70 min ago, released 60 min ago.
    assert sorted(stats["lead_times_seconds"]) == [600.0, 3600.0]
    assert stats["lead_time_seconds_median"] == pytest.approx(2100.0)
    # One failed change (rolled back) of three changes; the rollback 30 min later restored it.
    assert (stats["failed_changes"], stats["changes"]) == (1, 3)
    assert stats["change_failure_rate"] == pytest.approx(1 / 3)
    assert stats["time_to_restore_seconds_median"] == pytest.approx(1800.0)
    assert stats["unrestored"] == 0


def test_stats_in_the_terminal(made: Made) -> None:
    proc = invoke(made, "history", "--env", "staging", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert "deployment frequency    0.07/day  (2 deployments)" in proc.stdout
    assert "change failure rate     33%" in proc.stdout
    assert "time to restore (median) 30m 0s" in proc.stdout


def test_report_escapes_html_and_says_the_cluster_is_not_reachable(made: Made, tmp_path: Path) -> None:
    proc = invoke(made, "report", "--out", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    page = Path(proc.stdout.strip())
    assert page == tmp_path / "site" / "index.html"
    html = page.read_text()
    assert (
        "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; backend: &lt;b&gt;bold&lt;/b&gt; &amp; more"
        in html
    )
    assert "<script" not in html and "<b>bold" not in html
    assert "cluster not reachable" in html
    assert "rollout: CrashLoopBackOff, exit code 3" in html
    assert html.count("<svg") == 2  # staging's stage durations and the lead times (prod has no records)
    assert "http://" not in html.replace("http://www.w3.org/", "") and "https://" not in html
    assert (tmp_path / "site" / "style.css").is_file()


def test_report_of_one_environment_offline(made: Made, tmp_path: Path) -> None:
    proc = invoke(made, "report", "--out", str(tmp_path), "--env", "staging", "--offline")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "index.html").read_text()
    assert 'data-env="staging"' in html and 'data-env="prod"' not in html
    assert "not checked (offline report)" in html
