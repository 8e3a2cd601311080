"""`bump` against real bare git remotes and the sandbox's registry: minimal diffs, no-ops, races, the prod
gate, clear failures. `bump` pins the digest the registry has for the tag, so each test pushes its tags."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from pipeline import release
from pipeline.errors import (
    ApprovalRequired,
    ConfigError,
    GitOpsError,
    ImageNotFound,
    OverlayError,
    ReleaseRefused,
)

from ..conftest import Project, git  # type: ignore[import-not-found]

DIGEST = "sha256:" + "ab" * 32
STAGING = "overlays/staging/kustomization.yaml"


def numstat(project: Project, ref: str = "main") -> list[str]:
    return git("--git-dir", str(project.remote), "diff", "--numstat", f"{ref}~1", ref).splitlines()


def test_tag_bump_keeps_comments_and_pins_the_registry_digest(project: Project) -> None:
    digest = project.push("sha-1a2b3c4")["sha-1a2b3c4"]
    before = project.remote_file(STAGING)
    result = release.bump(project.settings(), "staging", "sha-1a2b3c4")
    assert result.commit is not None
    # The tag line changes and the digest line is added after it.
    assert numstat(project) == [f"2\t1\t{STAGING}"]
    after = project.remote_file(STAGING)
    assert f"digest: {digest}" in after

    def comments(text: str) -> list[str]:
        return [line[line.index("#") :] for line in text.splitlines() if "#" in line]

    assert comments(before) == comments(after) != []
    assert "newTag: sha-1a2b3c4   # placeholder until the first release" in after


def test_digest_first_added_is_two_lines(project: Project) -> None:
    digests = project.push("sha-1a2b3c4", "sha-2b3c4d5")
    release.bump(project.settings(), "staging", "sha-1a2b3c4", digest=digests["sha-1a2b3c4"])
    assert numstat(project) == [f"2\t1\t{STAGING}"]
    release.bump(project.settings(), "staging", "sha-2b3c4d5")
    assert numstat(project) == [f"2\t2\t{STAGING}"]
    assert f"digest: {digests['sha-2b3c4d5']}" in project.remote_file(STAGING)


def test_a_tag_the_registry_lacks_or_a_wrong_digest_is_refused_before_any_commit(project: Project) -> None:
    # Measured on main: the tag was committed without a digest, dropping the pin the overlay had.
    project.push("sha-1a2b3c4")
    release.bump(project.settings(), "staging", "sha-1a2b3c4")
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    with pytest.raises(ImageNotFound, match="sha-9999999 is not in the registry"):
        release.bump(project.settings(), "staging", "sha-9999999")
    with pytest.raises(ReleaseRefused, match="now has digest"):
        release.bump(project.settings(), "staging", "sha-1a2b3c4", digest=DIGEST)
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head


def test_same_tag_again_makes_no_commit(project: Project) -> None:
    project.push("sha-1a2b3c4")
    release.bump(project.settings(), "staging", "sha-1a2b3c4")
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    again = release.bump(project.settings(), "staging", "sha-1a2b3c4")
    assert again.commit is None
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head


def test_commit_message_names_everything_and_skips_ci(project: Project) -> None:
    digest = project.push("sha-1a2b3c4")["sha-1a2b3c4"]
    release.bump(project.settings(), "prod", "sha-1a2b3c4", digest=digest, approved_by="Asha Rao")
    message = git("--git-dir", str(project.remote), "log", "-1", "--format=%B", "main")
    subject = message.splitlines()[0]
    assert subject == "deploy(prod): backend sha-1a2b3c4 [skip ci]"
    for needle in (
        "Environment: prod",
        "Tag: sha-1a2b3c4",
        f"Digest: {digest}",
        "Source-Commit: ",
        "Image: ",
    ):
        assert needle in message
    trailers = git(
        "--git-dir", str(project.remote), "log", "-1", "--format=%(trailers:key=Approved-by)", "main"
    )
    assert trailers.strip() == "Approved-by: Asha Rao"
    author = git("--git-dir", str(project.remote), "log", "-1", "--format=%an <%ae> / %cn", "main")
    assert author.strip() == "campus-pipeline <pipeline@users.noreply.github.com> / campus-pipeline"


def test_prod_without_approver_is_refused_before_anything_is_written(project: Project) -> None:
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    with pytest.raises(ApprovalRequired, match="prod is protected"):
        release.bump(project.settings(), "prod", "sha-1a2b3c4")
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head
    assert not (project.root / ".pipeline").exists()  # not even a clone was made


def test_user_working_tree_is_never_touched(project: Project) -> None:
    project.push("sha-1a2b3c4")
    before = (project.root / STAGING).read_text()
    release.bump(project.settings(), "staging", "sha-1a2b3c4")
    assert (project.root / STAGING).read_text() == before
    assert git("status", "--porcelain", "--untracked-files=no", cwd=project.root) == ""


def test_racing_bumps_both_land(project: Project, tmp_path: Path) -> None:
    # Two machines (separate clones) push at once; the loser fetches, re-applies and retries.
    project.push("sha-1111111", "sha-2222222")
    other = tmp_path / "other-machine"
    subprocess.run(["cp", "-a", str(project.root), str(other)], check=True)
    a = project.settings()
    b = Project(other, project.remote, project.env).settings()
    barrier = threading.Barrier(2)
    results: dict[str, release.BumpResult] = {}

    def run(name: str, settings: object, env: str, tag: str, approver: str | None) -> None:
        barrier.wait()
        results[name] = release.bump(settings, env, tag, approved_by=approver)  # type: ignore[arg-type]

    threads = [
        threading.Thread(target=run, args=("a", a, "staging", "sha-1111111", None)),
        threading.Thread(target=run, args=("b", b, "prod", "sha-2222222", "ci")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"].commit and results["b"].commit
    assert "newTag: sha-1111111" in project.remote_file(STAGING)
    assert "newTag: sha-2222222" in project.remote_file("overlays/prod/kustomization.yaml")
    assert max(r.attempts for r in results.values()) >= 1


def test_bad_inputs_fail_cleanly(project: Project) -> None:
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        release.bump(project.settings(), "qa", "sha-1a2b3c4")
    with pytest.raises(ConfigError, match="not a valid Docker tag"):
        release.bump(project.settings(), "staging", "bad tag!")
    with pytest.raises(ConfigError, match="not an image digest"):
        release.bump(project.settings(), "staging", "sha-1a2b3c4", digest="sha256:short")
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head


def test_malformed_overlay_on_remote_makes_no_commit(project: Project) -> None:
    project.push("sha-1a2b3c4")
    (project.root / STAGING).write_text("images: [\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "break it", cwd=project.root)
    git("push", "-q", str(project.remote), "HEAD:refs/heads/main", cwd=project.root)
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    with pytest.raises(OverlayError, match="malformed YAML"):
        release.bump(project.settings(), "staging", "sha-1a2b3c4")
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head


def test_unreachable_remote_is_one_line_without_credentials(project: Project, tmp_path: Path) -> None:
    project.push("sha-1a2b3c4")
    settings = project.settings(PIPELINE_GITOPS_REMOTE="https://user:s3cr3t-token@127.0.0.1:9/campus.git")
    with pytest.raises(GitOpsError) as e:
        release.bump(settings, "staging", "sha-1a2b3c4")
    assert "s3cr3t-token" not in str(e.value)
    assert "\n" not in str(e.value)
    assert "PIPELINE_GITOPS_REMOTE" in str(e.value)


def test_a_remote_that_keeps_refusing_leaves_nothing_behind(project: Project) -> None:
    # A protected branch (here: a hook that declines every push) refuses each attempt.
    hook = project.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: pushes need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    project.push("sha-1a2b3c4")
    head = git("--git-dir", str(project.remote), "rev-parse", "main")
    with pytest.raises(GitOpsError) as e:
        release.bump(project.settings(), "staging", "sha-1a2b3c4")
    assert "\n" not in str(e.value), str(e.value)
    assert "protected branch: pushes need a review" in str(e.value)
    assert git("--git-dir", str(project.remote), "rev-parse", "main") == head
    # The pipeline's own clone is back at the remote's tip: no stray local commit waits to be pushed later.
    clones = list((project.root / ".pipeline" / "gitops").glob("*/.git"))
    assert clones and all(
        git("-C", str(c.parent), "rev-parse", "HEAD").strip() == head.strip() for c in clones
    )


def test_approver_names() -> None:
    from pipeline.config import Environment

    prod = Environment("prod", "overlays/prod", protected=True)
    assert release.require_approval(prod, "Asha Rao") == "Asha Rao"
    assert release.require_approval(prod, "root (interactive)") == "root (interactive)"
    with pytest.raises(ConfigError, match="not a plain name"):
        release.require_approval(prod, "Asha\nApproved-by: mallory")
