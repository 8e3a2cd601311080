"""The release dashboard as a person sees it: a real sandbox history, rendered, opened in headless Chromium.

One module-scoped story on the sandbox's clusters (see ``conftest.py``): a good release to staging, a
crashing release caught and rolled back, a promotion to prod, a second good release from a commit whose
message is HTML, and a rollback to the first. Then ``invoke report`` runs as a user runs it, and Debian's
Chromium (driven by Playwright; the pip wheel carries the driver, no browser is downloaded) opens the page:
both environments, the rollback's reason, the four metrics and the plots are on screen, the HTML commit
message reads as text, and the page asked nothing of any network address. The screenshot is kept in
``test-artifacts/`` (ignored by git) for a person, or CI, to look at.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import config
from pipeline.release import promote, release, rollback

from .conftest import ROOT, Clusters, Images, git, process_env, seeded_clone  # type: ignore[import-not-found]
from .test_release_e2e import (  # type: ignore[import-not-found]
    AUTHOR,
    Project,
    _delete_namespace,
    explain,
)

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
HTML_SUBJECT = "<script>alert('dashboard')</script> backend: a <b>second</b> release"


@dataclass(frozen=True)
class Story:
    project: Project
    crash_reason: str


def _push_variant(project: Project, base: str, tmp: Path) -> str:
    """``base`` with one more label: the same service under a new digest, pushed as a new tag."""
    import docker

    repository, _, _ = base.rpartition(":")
    tag = f"second-{uuid.uuid4().hex[:6]}"
    (tmp / "Dockerfile").write_text(f"FROM {base}\nLABEL campus.dashboard-test={tag}\n")
    client = docker.from_env()
    client.images.pull(base, auth_config=_auth(project))
    client.images.build(path=str(tmp), tag=f"{repository}:{tag}", rm=True)
    for line in client.images.push(repository, tag, auth_config=_auth(project), stream=True, decode=True):
        assert "error" not in line, f"pushing {repository}:{tag}: {line['error']}"
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(f"{repository}:{tag}", force=True)
    return f"{repository}:{tag}"


def _auth(project: Project) -> dict[str, str]:
    return {"username": project.environ["DOCKERHUB_USERNAME"], "password": project.environ["DOCKERHUB_TOKEN"]}


@pytest.fixture(scope="module")
def story(clusters: Clusters, images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    tmp = tmp_path_factory.mktemp("dashboard-e2e")
    clone, remote, environ = seeded_clone(tmp, clusters)
    settings = config.load(clone, environ)
    with process_env(environ):
        project = Project(clone, remote, environ, settings, clusters)
        for env in ("staging", "prod"):
            _delete_namespace(project, env, wait=True)
        try:
            yield Story(project, _make_history(project, images, tmp))
        finally:
            for env in ("staging", "prod"):
                with contextlib.suppress(Exception):
                    _delete_namespace(project, env, wait=False)


def _make_history(project: Project, images: Images, tmp: Path) -> str:
    """Release, crash and roll back, promote, release again from an HTML-titled commit, roll back."""
    settings = project.settings
    good = release(settings, "staging", image_ref=images.good)
    assert good.result == "released", explain(good)
    crashed = release(settings, "staging", image_ref=images.crash)
    assert crashed.result == "rolled-back", explain(crashed)
    promoted = promote(settings, "prod", approved_by="Asha Rao")
    assert promoted.result == "released", explain(promoted)
    readme = project.clone / "backend" / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- dashboard e2e: a second commit -->\n")
    git(*AUTHOR, "commit", "-qam", HTML_SUBJECT, cwd=project.clone)
    (tmp / "variant").mkdir()
    second = release(settings, "staging", image_ref=_push_variant(project, images.good, tmp / "variant"))
    assert second.result == "released", explain(second)
    back = rollback(settings, "staging")
    assert back.result == "released", explain(back)
    return crashed.reason


@dataclass(frozen=True)
class Seen:
    text: str  # the page's visible text
    requested: list[str]  # every URL the page asked for
    kinds: dict[str, list[str]]  # each environment's timeline: the records' kinds, newest first
    plots: list[bool]  # each plot drawn: whether it is visible


def _open(page_path: Path, screenshot: Path) -> Seen:
    """What Chromium shows of the page; a full-page screenshot is kept at ``screenshot``."""
    from playwright.sync_api import Route, sync_playwright

    requested: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", guard)
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_path.as_uri(), wait_until="load")
            text = page.inner_text("body")
            kinds = {
                env: page.locator(f'.timeline[data-env="{env}"] .kind').all_text_contents()
                for env in ("staging", "prod")
            }
            plots = page.locator("figure.plot svg")
            shown = [plots.nth(i).is_visible() for i in range(plots.count())]
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Seen(text, requested, kinds, shown)


def test_the_dashboard_shows_the_story_in_a_browser(story: Story, tmp_path: Path) -> None:
    project = story.project
    out = tmp_path / "report"
    done = project.invoke("report", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    assert page == out / "index.html" and page.is_file()

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard-e2e.png"
    seen = _open(page, screenshot)
    text = seen.text
    assert screenshot.stat().st_size > 10_000

    # Nothing but the page itself and its local stylesheet: no network address at all.
    assert seen.requested and all(url.startswith(("file://", "data:")) for url in seen.requested), (
        seen.requested
    )
    # Both environments, running what git pins, their smoke tests passed.
    for env in ("Staging", "Prod"):
        assert env in text
    assert text.count("agrees with git") == 2, text
    assert "approved by Asha Rao" in text
    # The timeline: the crashing release with its one-line diagnosis, the promotion, the rollback.
    assert "rolled-back" in text and "CrashLoopBackOff" in text
    assert story.crash_reason.splitlines()[0] in text
    assert seen.kinds == {"staging": ["rollback", "release", "release", "release"], "prod": ["promote"]}
    # The four metrics, with their formulas.
    for heading in (
        "deployment frequency",
        "lead time for changes",
        "change failure rate",
        "time to restore",
    ):
        assert heading in text.lower()
    assert "33%" in text  # staging: one failed change of three (good, crash, second)
    assert "1 failed of 3 changes" in text
    # The plots: staging's and prod's stage durations, and the lead times, drawn and visible.
    assert len(seen.plots) == 3 and all(seen.plots), seen.plots
    # The HTML commit message reads as text, and was not run or parsed as markup.
    assert HTML_SUBJECT in text
    html = page.read_text()
    assert "<script" not in html


@pytest.fixture(autouse=True, scope="module")
def _chromium() -> Any:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/lib.sh installs it)")
    return None
