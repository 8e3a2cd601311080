"""GitOps stage: commit an overlay change and push it to the GitOps remote, safely under races.

The only module that runs git: plumbing and porcelain commands through GitPython's command runner
(:func:`_git`), imported on first use so that tasks that never touch git never pay for it. The pipeline
writes through its own clone of the remote (under ``.pipeline/gitops/``), never the user's working tree.
A push rejected because the remote moved is fetched, re-applied on the new tip and retried, so two
releases racing each other both land; any other failure leaves the remote untouched and the clone reset.
Neighbours: ``overlays.pin`` is the change applied inside the clone; ``release.py`` composes the commit
message.
"""

from __future__ import annotations

import fcntl
import hashlib
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .errors import GitOpsError, PushRejected, SourceError

if TYPE_CHECKING:
    import tenacity

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


class GitFailed(Exception):
    """A git command exited non-zero; ``stdout`` and ``stderr`` are what it said."""

    def __init__(self, argv: list[str], status: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {' '.join(argv[:2])} exited {status}: {stderr.strip()[:200]}")
        self.status, self.stdout, self.stderr = status, stdout, stderr


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``git args`` in ``cwd``; its stdout without the final newline, or :class:`GitFailed`."""
    from git.cmd import Git
    from git.exc import GitCommandNotFound

    try:
        # GitPython sets LANGUAGE/LC_ALL=C itself (the race detection reads git's English messages),
        # gives the command no stdin, and merges ``env`` over ours.
        status, stdout, stderr = Git(cwd).execute(
            ["git", *args], with_extended_output=True, with_exceptions=False, env=env
        )
    except GitCommandNotFound:
        raise GitOpsError("git is not installed", "Install git and try again") from None
    if status != 0:
        raise GitFailed(list(args), status, str(stdout), str(stderr))
    return str(stdout)


def files_at(root: Path, commit: str, folder: str) -> list[str] | None:
    """The paths under ``folder`` in ``commit`` of the checkout at ``root``; None: no such commit."""
    try:
        return _git(root, "ls-tree", "--name-only", commit, "--", folder).splitlines()
    except GitFailed:
        return None


def source_state(root: Path, context: str) -> SourceState:
    """The commit a build of ``context`` comes from, and whether that part of the tree has changes."""
    try:
        # One process: the commit and the changes (untracked files included) under the context.
        out = _git(
            root, "status", "--porcelain=v2", "--branch", "--untracked-files=all", "--", str(root / context)
        )
    except (GitFailed, NotADirectoryError, FileNotFoundError) as e:
        if "not a git repository" in getattr(e, "stderr", "") or not isinstance(e, GitFailed):
            raise SourceError(
                f"{root} is not inside a git repository", "Run from a clone of the project"
            ) from None
        raise SourceError(f"reading the state of {root}: {e.stderr.strip()}", "Check the checkout") from None
    lines = out.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if commit == "(initial)":
        raise SourceError(f"{root} has no commit yet", "Commit the source first")
    return SourceState(commit, any(not line.startswith("#") for line in lines))


def resolve_commit(root: Path, short: str) -> str | None:
    """The full hash of an abbreviated commit in the project's repository, if it has it."""
    if not re.fullmatch(r"[0-9a-f]{4,40}", short):
        return None
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{short}^{{commit}}") or None
    except (GitFailed, OSError):
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


def _sync(settings: Settings, directory: Path, *, notes: bool = False, fetch: bool = True) -> Path:
    """Our clone, reset to the remote branch's tip with nothing else in it (and, with ``notes``, the
    release notes fetched in the same round trip). ``fetch=False``: the caller knows the clone is current.
    """
    branch = settings.gitops.branch
    refspecs = [f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
    if notes:
        refspecs.append(f"+{NOTES_REF}:{NOTES_REF}")
    try:
        cloned = not (directory / ".git").exists()
        if cloned:
            _git(
                directory.parent, "clone", "--quiet", "--branch", branch, "--single-branch", "--no-tags",
                settings.gitops.remote, str(directory),
            )  # fmt: skip
        elif fetch:
            try:
                _git(directory, "fetch", "--quiet", "--no-tags", "origin", *refspecs)
            except GitFailed as e:
                # A remote without any release note yet has no such ref: that is the empty history.
                if not notes or "couldn't find remote ref" not in e.stderr:
                    raise
                _git(directory, "fetch", "--quiet", "--no-tags", "origin", refspecs[0])
                if _git(directory, "for-each-ref", NOTES_REF):
                    _git(directory, "update-ref", "-d", NOTES_REF)
        if notes and cloned:
            _fetch_notes(settings, directory)
        _git(directory, "checkout", "--quiet", "--force", "-B", branch, f"origin/{branch}")
        _git(directory, "clean", "-qfdx")
    except GitFailed as e:
        raise _fail("fetching", e, settings) from None
    return directory


def _reset(settings: Settings, directory: Path) -> None:
    """Leave our clone at the remote's tip, so no local commit lingers to be pushed by a later run."""
    _sync(settings, directory)


def _push(settings: Settings, repo: Path) -> None:
    branch = settings.gitops.branch
    try:
        _git(repo, "push", "--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{branch}")
    except GitFailed as e:
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
    import tenacity

    directory = _clone_dir(settings)
    retrying = _raced(settings)

    def attempt() -> tuple[Published, Bump | None]:
        number = int(retrying.statistics.get("attempt_number", 1))
        repo = _sync(settings, directory)
        result = change(directory)
        if result is None:
            return Published(None, number), None
        try:
            # Under a race, a retried commit is built from the tree the reset just wrote.
            _git(repo, "add", "--", result.file)
            _git(repo, "commit", "--quiet", "--no-verify", "-m", message(result), env=_identity(settings))
            commit = _git(repo, "rev-parse", "HEAD")
            _push(settings, repo)
        except PushRejected:
            raise  # someone else landed first: the next attempt starts again from their tip
        except GitFailed as e:
            _reset(settings, directory)
            raise _fail("committing to", e, settings) from None
        except Exception:
            _reset(settings, directory)
            raise
        return Published(commit, number), result

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
    import tenacity

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
    directory = _clone_dir(settings)
    with _locked(directory):
        repo = _sync(settings, directory)
        return _export(settings, repo, dest, commit)


def _export(settings: Settings, repo: Path, dest: Path, commit: str | None) -> str:
    """The tree of ``commit`` (default: the clone's HEAD) written to ``dest``; its commit hash."""
    try:
        found = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit or 'HEAD'}^{{commit}}")
    except GitFailed:
        raise GitOpsError(
            f"commit {(commit or 'HEAD')[:12]} is not on {scrub(settings.gitops.remote)}",
            "Was the branch rewritten? Release again to record a commit that is on it",
        ) from None
    dest.mkdir(parents=True, exist_ok=True)
    # Straight from git's objects into dest (no checkout, no copy of the clone): a fresh index file in
    # dest's parent keeps the clone's own index untouched.
    index = dest.parent / f".{dest.name}.index"
    try:
        _git(
            repo, "--work-tree", str(dest), "read-tree", "--reset", "-u", found,
            env={"GIT_INDEX_FILE": str(index)},
        )  # fmt: skip
    except GitFailed as e:
        raise _fail("reading a commit of", e, settings) from None
    finally:
        index.unlink(missing_ok=True)
    return found


NOTES_REF = "refs/notes/releases"


def _fetch_notes(settings: Settings, repo: Path) -> None:
    try:
        _git(repo, "fetch", "--quiet", "origin", f"+{NOTES_REF}:{NOTES_REF}")
    except GitFailed as e:
        # A remote without any release note yet has no such ref: that is the empty history.
        if "couldn't find remote ref" not in str(e.stderr):
            raise _fail("fetching release notes from", e, settings) from None
        if _git(repo, "for-each-ref", NOTES_REF):
            _git(repo, "update-ref", "-d", NOTES_REF)


def add_note(settings: Settings, commit: str, text: str) -> None:
    """Append ``text`` to the release notes of ``commit`` (git notes, so main gets no extra commits)."""
    directory = _clone_dir(settings)
    with _locked(directory):
        _append_note(settings, _sync(settings, directory), commit, text)


def _append_note(settings: Settings, repo: Path, commit: str, text: str) -> None:
    import tenacity

    def attempt() -> None:
        _fetch_notes(settings, repo)
        try:
            _git(repo, "notes", "--ref", NOTES_REF, "append", "-m", text, commit, env=_identity(settings))
            _git(repo, "push", "--quiet", "--porcelain", "origin", f"{NOTES_REF}:{NOTES_REF}")
        except GitFailed as e:
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
    with _locked(directory):
        repo = _sync(settings, directory)
        try:
            found = _git(repo, "log", "-1", "--format=%H", "--", path).strip()
            return found or _git(repo, "rev-parse", "HEAD")
        except GitFailed as e:
            raise _fail("reading the history of", e, settings) from None


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
        # The branch and the notes in one fetch: one round trip to the remote, not two.
        repo = _sync(settings, directory, notes=True)
        return _noted(settings, repo, "HEAD", path, limit)


def _noted(settings: Settings, repo: Path, at: str, path: str, limit: int) -> list[Noted]:
    sep, end = "\x1f", "\x1e"
    try:
        out = _git(
            repo, "log", f"-{limit}", f"--notes={NOTES_REF}", f"--format=%H{sep}%cI{sep}%s{sep}%N{end}",
            at, "--", path,
        )  # fmt: skip
    except GitFailed as e:
        raise _fail("reading the history of", e, settings) from None
    found: list[Noted] = []
    for record in out.split(end):
        parts = record.strip("\n").split(sep)
        if len(parts) == 4:
            notes = tuple(line for line in parts[3].splitlines() if line.strip())
            found.append(Noted(parts[0], parts[1], parts[2], notes))
    return found


@dataclass(frozen=True)
class Head:
    """The remote branch's tip as our clone now has it: commit, its tree, and the release notes' tip."""

    commit: str
    tree: str
    notes: str | None


def head(settings: Settings) -> Head:
    """The remote's tip with one ``git ls-remote``; our clone is fetched only when it is behind.

    The no-op check's view of git: when nothing moved (the usual case) this is one round trip and no
    fetch, and :func:`noted_at` then reads the release notes from the clone without another.
    """
    directory = _clone_dir(settings)
    branch = settings.gitops.branch
    with _locked(directory):
        where = directory if (directory / ".git").exists() else directory.parent
        try:
            out = _git(where, "ls-remote", settings.gitops.remote, f"refs/heads/{branch}", NOTES_REF)
        except GitFailed as e:
            raise _fail("reading the tip of", e, settings) from None
        remote = {ref: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines())}
        tip, notes = remote.get(f"refs/heads/{branch}"), remote.get(NOTES_REF)
        if tip is None:
            raise GitOpsError(
                f"{scrub(settings.gitops.remote)} has no branch {branch}", "Check [gitops] branch"
            )
        if _local(directory, f"refs/remotes/origin/{branch}") != tip or _local(directory, NOTES_REF) != notes:
            _sync(settings, directory, notes=True)
        try:
            tree = _git(directory, "rev-parse", f"{tip}^{{tree}}")
        except GitFailed as e:
            raise _fail("reading the tip of", e, settings) from None
    return Head(tip, tree, notes)


def _local(directory: Path, ref: str) -> str | None:
    if not (directory / ".git").exists():
        return None
    try:
        return _git(directory, "rev-parse", "--verify", "--quiet", ref) or None
    except GitFailed:
        return None


def noted_at(settings: Settings, commit: str, path: str, limit: int = 50) -> list[Noted]:
    """:func:`noted_log` from ``commit`` down, read from our clone as it is (after :func:`head`): no fetch."""
    directory = _clone_dir(settings)
    with _locked(directory):
        return _noted(settings, directory, commit, path, limit)


def parent_of(settings: Settings, commit: str) -> str | None:
    """The first parent of ``commit`` in our clone (None for a root commit or one the clone lacks)."""
    return _local(_clone_dir(settings), f"{commit}^")


def tree_of(settings: Settings, commit: str) -> str | None:
    """The tree of ``commit`` in our clone (None when the clone lacks it)."""
    return _local(_clone_dir(settings), f"{commit}^{{tree}}")
