"""GitOps stage: commit an overlay change and push it to the GitOps remote, safely under races.

The only module that imports ``git`` (GitPython). The pipeline writes through its own clone of the remote
(under ``.pipeline/gitops/``), never the user's working tree. A push rejected because the remote moved is
fetched, re-applied on the new tip and retried, so two releases racing each other both land; any other
failure leaves the remote untouched and the clone reset. Neighbours: ``overlays.pin`` is the change
applied inside the clone; ``release.py`` composes the commit message.
"""

from __future__ import annotations

import fcntl
import hashlib
import random
import re
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tenacity

from .config import Settings
from .errors import GitOpsError, PushRejected, SourceError

if TYPE_CHECKING:
    import git

    from .overlays import Bump

# Never let credentials embedded in a remote URL reach a message or a log.
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    return _USERINFO.sub("***@", text)


@dataclass(frozen=True)
class SourceState:
    commit: str
    dirty: bool


@dataclass(frozen=True)
class Published:
    commit: str | None  # None: nothing to change, nothing committed
    attempts: int


def _repo(path: Path) -> git.Repo:
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(
            f"{path} is not inside a git repository", "Run from a clone of the project"
        ) from None


def source_state(root: Path, context: str) -> SourceState:
    """The commit a build of ``context`` comes from, and whether that part of the tree has changes."""
    import git

    with _repo(root) as repo:
        try:
            commit = repo.head.commit.hexsha
        except ValueError:
            raise SourceError(f"{root} has no commit yet", "Commit the source first") from None
        try:
            dirty = repo.is_dirty(untracked_files=True, path=str(root / context))
        except git.GitCommandError as e:
            raise SourceError(
                f"reading the state of {root}: {e.stderr.strip()}", "Check the checkout"
            ) from None
    return SourceState(commit, dirty)


def resolve_commit(root: Path, short: str) -> str | None:
    """The full hash of an abbreviated commit in the project's repository, if it has it."""
    import git

    try:
        with _repo(root) as repo:
            return str(repo.commit(short).hexsha)
    except (git.BadName, ValueError, SourceError):
        return None


def _clone_dir(settings: Settings) -> Path:
    key = hashlib.sha256(settings.gitops.remote.encode()).hexdigest()[:12]
    return settings.root / settings.gitops.cache_dir / key


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two releases on one machine share the clone; the lock serialises them, the retry loop handles others.
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _git_detail(e: Exception) -> str:
    """What git said, on one line: its remote:/error:/fatal: lines, without GitPython's wrapping."""
    text = str(getattr(e, "stderr", "") or e).strip()
    text = re.sub(r"^stderr: '|'$", "", text).replace("\\n", "\n")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("remote:", "error:", "fatal:", "!"))] or lines
    return " ".join(" ".join(said).split())[:240]


def _fail(doing: str, e: Exception, settings: Settings) -> GitOpsError:
    detail = scrub(_git_detail(e))
    return GitOpsError(
        f"{doing} {scrub(settings.gitops.remote)}: {detail}",
        "Check PIPELINE_GITOPS_REMOTE and your git credentials",
    )


def _sync(settings: Settings, directory: Path) -> git.Repo:
    """Our clone, reset to the remote branch's tip with nothing else in it."""
    import git

    branch = settings.gitops.branch
    try:
        if not (directory / ".git").exists():
            repo = git.Repo.clone_from(
                settings.gitops.remote, directory, branch=branch, single_branch=True, no_tags=True
            )
        else:
            repo = git.Repo(directory)
            repo.git.fetch(
                "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
            )
        repo.git.checkout("--quiet", "--force", "-B", branch, f"origin/{branch}")
        repo.git.reset("--quiet", "--hard", f"origin/{branch}")
        repo.git.clean("-qfdx")
    except git.GitCommandError as e:
        raise _fail("fetching", e, settings) from None
    return repo


def _reset(settings: Settings, directory: Path) -> None:
    """Leave our clone at the remote's tip, so no local commit lingers to be pushed by a later run."""
    _sync(settings, directory).close()


def _push(settings: Settings, repo: git.Repo) -> None:
    import git

    branch = settings.gitops.branch
    try:
        repo.git.push("--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{branch}")
    except git.GitCommandError as e:
        text = f"{e.stdout} {e.stderr}"
        if any(
            s in text
            for s in ("[rejected]", "non-fast-forward", "fetch first", "stale info", "cannot lock ref")
        ):
            raise PushRejected(
                f"pushing to {scrub(settings.gitops.remote)}: the branch moved", "Retrying"
            ) from None
        raise _fail("pushing to", e, settings) from None


def publish(
    settings: Settings,
    change: Callable[[Path], Bump | None],
    message: Callable[[Bump], str],
) -> tuple[Published, Bump | None]:
    """Apply ``change`` to a fresh checkout of the remote, commit and push it; retry when raced.

    ``change`` gets the clone's root and returns what it changed (None: nothing, so no commit).
    """
    directory = _clone_dir(settings)
    retrying = _raced(settings)

    def attempt() -> tuple[Published, Bump | None]:
        number = int(retrying.statistics.get("attempt_number", 1))
        with closing(_sync(settings, directory)) as repo:
            result = change(directory)
            if result is None:
                return Published(None, number), None
            try:
                # git's own add/commit rather than GitPython's in-memory index: under a race, a
                # retried commit must be built from the tree the reset just wrote, nothing cached.
                repo.git.add("--", result.file)
                repo.git.commit("--quiet", "--no-verify", "-m", message(result), env=_identity(settings))
                commit = repo.head.commit
                _push(settings, repo)
            except PushRejected:
                raise  # someone else landed first: the next attempt starts again from their tip
            except Exception:
                _reset(settings, directory)
                raise
            return Published(commit.hexsha, number), result

    with _locked(directory):
        try:
            return retrying(attempt)
        except tenacity.RetryError:
            _reset(settings, directory)
    raise GitOpsError(
        f"pushing to {scrub(settings.gitops.remote)}: "
        f"rejected {settings.gitops.push_attempts} times in a row",
        "Others keep pushing to the branch; try again in a minute",
    )


def _raced(settings: Settings) -> tenacity.Retrying:
    """Retry what lost a race to another pusher, with jitter that grows so racers spread out."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(PushRejected),
        stop=tenacity.stop_after_attempt(settings.gitops.push_attempts),
        wait=lambda state: random.uniform(0.05, 0.25) * state.attempt_number,
    )


def _identity(settings: Settings) -> dict[str, str]:
    name, email = settings.gitops.author_name, settings.gitops.author_email
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def snapshot(settings: Settings, dest: Path, commit: str | None = None) -> str:
    """Copy the remote branch's tip (or ``commit`` on it) without .git to ``dest``; return the commit hash.

    Pre-flight renders and validates the overlay there, with the new pin applied, before anything is
    committed; the drift check renders an earlier release's overlay commit.
    """
    import shutil

    import git

    directory = _clone_dir(settings)
    with _locked(directory), closing(_sync(settings, directory)) as repo:
        if commit is not None:
            try:
                # Detached; the next _sync puts the clone back on the branch's tip.
                repo.git.checkout("--quiet", "--force", "--detach", f"{commit}^{{commit}}")
            except git.GitCommandError:
                raise GitOpsError(
                    f"commit {commit[:12]} is not on {scrub(settings.gitops.remote)}",
                    "Was the branch rewritten? Release again to record a commit that is on it",
                ) from None
        shutil.copytree(directory, dest, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True)
        return str(repo.head.commit.hexsha)


NOTES_REF = "refs/notes/releases"


def _fetch_notes(settings: Settings, repo: git.Repo) -> None:
    import git

    try:
        repo.git.fetch("--quiet", "origin", f"+{NOTES_REF}:{NOTES_REF}")
    except git.GitCommandError as e:
        # A remote without any release note yet has no such ref: that is the empty history.
        if "couldn't find remote ref" not in str(e.stderr):
            raise _fail("fetching release notes from", e, settings) from None
        if repo.git.for_each_ref(NOTES_REF):
            repo.git.update_ref("-d", NOTES_REF)


def add_note(settings: Settings, commit: str, text: str) -> None:
    """Append ``text`` to the release notes of ``commit`` (git notes, so main gets no extra commits)."""
    directory = _clone_dir(settings)
    with _locked(directory), closing(_sync(settings, directory)) as repo:
        _append_note(settings, repo, commit, text)


def _append_note(settings: Settings, repo: git.Repo, commit: str, text: str) -> None:
    import git

    def attempt() -> None:
        _fetch_notes(settings, repo)
        try:
            repo.git.notes("--ref", NOTES_REF, "append", "-m", text, commit, env=_identity(settings))
            repo.git.push("--quiet", "--porcelain", "origin", f"{NOTES_REF}:{NOTES_REF}")
        except git.GitCommandError as e:
            rejected = any(s in f"{e.stdout} {e.stderr}" for s in ("[rejected]", "fetch first", "non-fast"))
            if not rejected:
                raise _fail("recording the release in", e, settings) from None
            raise PushRejected("pushing release notes: the notes ref moved", "Retrying") from None

    try:
        _raced(settings)(attempt)
    except tenacity.RetryError:
        raise GitOpsError(
            f"recording the release in {scrub(settings.gitops.remote)}: notes push rejected repeatedly",
            "Try `invoke history` later; the release itself is done",
        ) from None


def last_commit(settings: Settings, path: str) -> str:
    """The newest commit on the remote branch that touched ``path`` (the tip if none did)."""
    directory = _clone_dir(settings)
    with _locked(directory), closing(_sync(settings, directory)) as repo:
        found = repo.git.log("-1", "--format=%H", "--", path).strip()
        return found or str(repo.head.commit.hexsha)


@dataclass(frozen=True)
class Noted:
    commit: str
    date: str
    subject: str
    notes: tuple[str, ...]


def noted_log(settings: Settings, path: str, limit: int = 50) -> list[Noted]:
    """Latest commits touching ``path`` on the remote branch, each with its release notes (newest first)."""
    directory = _clone_dir(settings)
    with _locked(directory):
        sep, end = "\x1f", "\x1e"
        with closing(_sync(settings, directory)) as repo:
            _fetch_notes(settings, repo)
            out = repo.git.log(
                f"-{limit}", f"--notes={NOTES_REF}", f"--format=%H{sep}%cI{sep}%s{sep}%N{end}", "--", path
            )
    found: list[Noted] = []
    for record in out.split(end):
        parts = record.strip("\n").split(sep)
        if len(parts) == 4:
            notes = tuple(line for line in parts[3].splitlines() if line.strip())
            found.append(Noted(parts[0], parts[1], parts[2], notes))
    return found
