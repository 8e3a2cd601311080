"""Command layer (`invoke --list`): read options, call one function of `pipeline/`, print the outcome.

Wiring only; the logic lives in `pipeline/` (and the cloud stand-in in `sandbox/`). Expected failures
print one line and exit 1; anything else keeps its traceback. Heavy imports happen inside the tasks so
that `invoke --list` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from dbtasks import MAJOR_UPGRADE_HELP, major_upgrade
from dbtasks import db as db_tasks
from pipeline.options import WAIT_HELP, wait_seconds
from sandbox.tasks import sandbox as sandbox_tasks
from taskargs import variadic

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.base import Progress
    from pipeline.config import Settings
    from pipeline.driftreport import DriftReport
    from pipeline.notify import Message
    from pipeline.report import ReleaseReport

ROOT = Path(__file__).resolve().parent

variadic("validate", "--path")


@contextmanager
def _errors() -> Iterator[None]:
    from pipeline.errors import PipelineError
    from sandbox import SandboxError

    try:
        yield
    except (PipelineError, SandboxError) as e:
        if os.environ.get("GITHUB_ACTIONS") == "true":
            from pipeline.report import annotation

            print(annotation("error", type(e).__name__, str(e)))
        raise Exit(f"error: {e}", code=1) from None


def _settings(c: Context) -> Settings:
    from pipeline import config

    # PIPELINE_ROOT lets one install of the pipeline drive another checkout (and the tests use it).
    return config.load(Path(os.environ.get("PIPELINE_ROOT") or ROOT))


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _progress(title: str) -> Iterator[Progress]:
    """A spinner with the latest line at a terminal; plain lines in CI logs."""
    console = _console()
    if not console.is_terminal:
        # One line per event, however long: CI logs are searched line by line.
        yield lambda line: console.print(f"  {line}", markup=False, style="dim", soft_wrap=True)
        return
    with console.status(title) as status:
        yield lambda line: status.update(f"{title}: {line[:100]}")


@task(
    help={
        "push": "push the image to the registry (PIPELINE_REGISTRY, default docker.io)",
        "allow-dirty": "build even with uncommitted changes in the build context (tag gets -dirty)",
        "force": "rebuild and push even when the registry already has the tag",
        "json": "print the result as JSON on stdout",
    }
)
def build(
    c: Context, push: bool = False, allow_dirty: bool = False, force: bool = False, json_: bool = False
) -> None:
    """Build the backend image from the source commit (tag sha-<7 hex>) and optionally push it."""
    from pipeline import building  # not pipeline.release: a build needs none of the chain's imports

    with _errors():
        settings = _settings(c)
        with _progress("building") as progress:
            result = building.build(
                settings, push=push, allow_dirty=allow_dirty, force=force, progress=progress
            )
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as f:
            f.write(f"image={result.image.ref}\ndigest={result.image.digest or ''}\n")
    if json_:
        print(json.dumps({"image": result.image.__dict__, "built": result.built, "pushed": result.pushed}))
        return
    image = result.image
    if result.skipped:
        print(f"{image.pinned}  ({result.skipped}: skipped build and push)")
    elif result.pushed:
        print(f"{image.pinned}  (built and pushed)")
    else:
        print(f"{image.ref}  (built locally; not pushed)")


def _confirm(env: str) -> str | None:
    """An interactive approval at a terminal; None when there is no terminal to ask at."""
    if not sys.stdin.isatty():
        return None
    import getpass

    answer = input(f"{env} is protected. Type {env!r} to approve this change: ").strip()
    if answer != env:
        raise Exit("error: not approved; nothing was changed.", code=1)
    return f"{getpass.getuser()} (interactive)"


@task(
    help={
        "env": "environment whose overlay to change (staging, prod)",
        "tag": "image tag to pin, e.g. sha-1a2b3c4",
        "digest": "image digest to pin with it (sha256:...)",
        "approved-by": "approver's name; required for protected environments such as prod",
    }
)
def bump(c: Context, env: str, tag: str, digest: str | None = None, approved_by: str | None = None) -> None:
    """Pin an image tag (and digest) in overlays/ENV and push the commit to the GitOps remote."""
    from pipeline import release

    with _errors():
        settings = _settings(c)
        if approved_by is None and settings.environment(env).protected:
            approved_by = _confirm(env)
        result = release.bump(settings, env, tag, digest=digest, approved_by=approved_by)
    if result.commit is None:
        print(f"{env}: already pins {tag}; nothing to commit")
    else:
        assert result.bump is not None
        print(f"{env}: {result.bump.file} now pins {result.bump.new.ref} (commit {result.commit[:12]})")


@task(iterable=["path"], help={"path": "kustomize directory to check (default: every environment's overlay)"})
def validate(c: Context, path: list[str]) -> None:
    """Render overlays with kustomize, check them against Kubernetes schemas offline, and lint them."""
    from pipeline import validate as validate_stage

    with _errors():
        settings = _settings(c)
        targets = [Path(p) for p in path] or [
            settings.root / e.overlay for e in settings.environments.values()
        ]
        report = validate_stage.validate(targets, placeholder_images=[settings.image.kustomize_name])
    for finding in report.findings:
        # The message names the object and field itself.
        print(f"{finding.severity}: {finding.target}: {finding.message} [{finding.rule}]")
    summary = f"{report.objects_checked} objects in {len(targets)} target(s): {len(report.errors)} error(s)"
    if report.errors:
        raise Exit(f"validate: {summary}", code=1)
    print(f"validate: {summary}")


def _github(report: ReleaseReport) -> None:
    """In GitHub Actions: the job summary, step outputs, and an annotation when it failed."""
    from pipeline import report as fmt

    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(fmt.markdown(report))
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as f:
            f.writelines(f"{k}={v}\n" for k, v in fmt.outputs(report).items())
    if os.environ.get("GITHUB_ACTIONS") == "true" and not report.ok:
        print(fmt.annotation("error", f"{report.kind} {report.env} failed", report.reason or report.result))


def _notify(message: Message) -> None:
    """Post to PIPELINE_WEBHOOK_URL when it is set; a failure is a warning, never the command's failure."""
    from pipeline import notify
    from pipeline.report import annotation

    warning = notify.notify(message)
    if warning:
        _console().print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(annotation("warning", "notification", warning))


def _finish(report: ReleaseReport, json_: bool) -> None:
    """The stage table (stderr), the JSON result (stdout with --json), GitHub's outputs; exit 1 on failure."""
    from rich.table import Table

    from pipeline import notify
    from pipeline import report as fmt

    console = _console()
    table = Table(title=fmt.headline(report), title_justify="left", show_edge=False)
    for column in ("stage", "status", "time", "detail"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "failed": "bold red", "skipped": "dim"}
    for name, status, seconds, detail in fmt.stage_rows(report):
        table.add_row(name, f"[{styles[status]}]{status}[/]", seconds, detail)
    if report.diagnosis:
        console.print(report.diagnosis, markup=False, highlight=False)
    console.print(table)
    for url in report.urls:
        console.print(f"  reachable at {url}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if json_:
        print(json.dumps(report.to_dict(), default=str))
    _github(report)
    _notify(notify.from_release(report))
    if not report.ok:
        raise Exit(f"error: {report.kind} {report.env} {report.result}: {report.reason}", code=1)


def _approver(settings: Settings, env: str, approved_by: str | None) -> str | None:
    if approved_by is None and settings.environment(env).protected:
        return _confirm(env)
    return approved_by


@task(
    help={
        "env": "environment to release to (staging, prod)",
        "image": "deploy this existing image (repository:tag[@digest]) instead of building from the source",
        "approved-by": "approver's name; required for protected environments",
        "force": "release a digest even though it failed in this environment before",
        "json": "print the machine-readable result on stdout",
        **WAIT_HELP,
        **MAJOR_UPGRADE_HELP,
    }
)
def release(
    c: Context,
    env: str = "staging",
    image: str | None = None,
    approved_by: str | None = None,
    force: bool = False,
    json_: bool = False,
    wait: str | None = None,
    no_wait: bool = False,
    allow_major_upgrade: bool = False,
) -> None:
    """Build, pin, apply, wait for the rollout and smoke-test one environment; roll back on failure."""
    from pipeline import release as chain

    with _errors():
        seconds = wait_seconds(wait, no_wait)
        settings = major_upgrade(_settings(c), allow_major_upgrade)
        approver = _approver(settings, env, approved_by)
        with _progress(f"releasing to {env}") as progress:
            report = chain.release(
                settings, env, image_ref=image, approved_by=approver, force=force, progress=progress,
                wait=seconds,
            )  # fmt: skip
    _finish(report, json_)


@task(
    help={
        "env": "environment to promote to",
        "from": "environment whose released digest is promoted",
        "approved-by": "approver's name (CI: only from a job bound to a protected environment)",
        "expect-digest": "refuse unless the source environment still pins this digest",
        "json": "print the machine-readable result on stdout",
        **WAIT_HELP,
    }
)
def promote(
    c: Context,
    env: str = "prod",
    from_: str = "staging",
    approved_by: str | None = None,
    expect_digest: str | None = None,
    json_: bool = False,
    wait: str | None = None,
    no_wait: bool = False,
) -> None:
    """Deploy to prod the exact digest that passed staging, behind an approval."""
    from pipeline import release as chain

    with _errors():
        seconds = wait_seconds(wait, no_wait)
        settings = _settings(c)
        approver = _approver(settings, env, approved_by)
        with _progress(f"promoting {from_} to {env}") as progress:
            report = chain.promote(
                settings, env, from_env=from_, approved_by=approver, expect_digest=expect_digest,
                progress=progress, wait=seconds,
            )  # fmt: skip
    _finish(report, json_)


@task(
    help={
        "env": "environment to roll back",
        "to": "release to go back to: a tag, a digest or an overlay commit (default: the previous good one)",
        "approved-by": "approver's name; required for protected environments",
        "json": "print the machine-readable result on stdout",
        **WAIT_HELP,
    }
)
def rollback(
    c: Context,
    env: str,
    to: str | None = None,
    approved_by: str | None = None,
    json_: bool = False,
    wait: str | None = None,
    no_wait: bool = False,
) -> None:
    """Go back to the previous good release through git and the same verified deploy."""
    from pipeline import release as chain

    with _errors():
        seconds = wait_seconds(wait, no_wait)
        settings = _settings(c)
        approver = _approver(settings, env, approved_by)
        with _progress(f"rolling back {env}") as progress:
            report = chain.rollback(
                settings, env, to=to, approved_by=approver, progress=progress, wait=seconds
            )
    _finish(report, json_)


@task(help={"env": "environment", "image": "plan with this image instead of the one the overlay pins"})
def plan(c: Context, env: str, image: str | None = None) -> None:
    """Show what a release would change: the rendered overlay against the live objects, secrets redacted."""
    from pipeline import release as chain

    with _errors():
        result = chain.plan(_settings(c), env, image_ref=image)
    changed = [d for d in result.diffs if d.action != "unchanged"]
    print(f"plan for {result.env} with {result.image}: {len(changed)} of {len(result.diffs)} objects change")
    for diff in result.diffs:
        if diff.action == "unchanged":
            continue
        print(f"\n{diff.action}: {diff.ref}{'  (' + diff.note + ')' if diff.note else ''}")
        for key, state in diff.secret_keys:
            print(f"    {key}: {state} (value hidden)")
        if diff.diff:
            print(diff.diff.rstrip())


def _finish_drift(report: DriftReport, json_: bool) -> None:
    """The findings (stdout, or stderr with --json), GitHub's summary and outputs, the webhook; exit 0/3/1."""
    from pipeline import driftreport, notify
    from pipeline.report import annotation

    text = "\n".join(driftreport.lines(report))
    if json_:
        _console().print(text, markup=False, highlight=False, soft_wrap=True)
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(text)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(driftreport.markdown(report))
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as f:
            f.write(f"drift={str(report.found).lower()}\nresult={report.result}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true" and report.found:
        print(annotation("error", f"drift in {report.env}", driftreport.headline(report)))
    if report.found:
        _notify(notify.from_drift(report))
    if report.repair is not None:
        _notify(notify.from_release(report.repair))
    if report.exit_code:
        # 3: drift was found (and, with --repair, put back); 1: the repair failed.
        raise Exit(code=report.exit_code)


@task(
    help={
        "env": "environment to check (staging, prod)",
        "repair": "re-apply the last good release through the verified deploy when drift is found",
        "approved-by": "approver's name; a repair of a protected environment needs one",
        "json": "print the machine-readable report on stdout",
        **WAIT_HELP,
    }
)
def drift(
    c: Context,
    env: str,
    repair: bool = False,
    approved_by: str | None = None,
    json_: bool = False,
    wait: str | None = None,
    no_wait: bool = False,
) -> None:
    """Compare the live objects with the last good release; exit 3 on drift, --repair puts it back."""
    from pipeline import release as chain

    with _errors():
        seconds = wait_seconds(wait, no_wait)
        settings = _settings(c)
        approver = _approver(settings, env, approved_by) if repair else None
        with _progress(f"checking {env} for drift") as progress:
            report = chain.drift(
                settings, env, repair_drift=repair, approved_by=approver, progress=progress, wait=seconds
            )
    _finish_drift(report, json_)


@task(
    help={
        "env": "environment",
        "limit": "how many records",
        "stats": "the delivery metrics (DORA) over the window instead of the list",
        "days": "the metrics' window in days, ending now",
        "json": "print JSON on stdout (the records, or with --stats the metrics)",
    }
)
def history(
    c: Context, env: str, limit: str = "20", stats: bool = False, days: str = "30", json_: bool = False
) -> None:
    """List the environment's releases recorded in git: who, which digest, approval, result, timings."""
    from pipeline import history as records
    from pipeline import options

    with _errors():
        count, window = options.count(limit, "--limit"), options.days(days)
        settings = _settings(c)
        if stats:
            _stats(settings, env, window, json_)
            return
        entries = records.read(settings, env, count)
    if json_:
        print(json.dumps([{**e.__dict__, "stages": dict(e.stages)} for e in entries]))
        return
    if not entries:
        print(f"{env}: no releases recorded yet")
    for e in entries:
        total = sum(e.stages.values())
        approval = f" approved by {e.approved_by}" if e.approved_by else ""
        print(f"{e.at}  {e.result:<11} {e.kind:<8} {e.image}@{(e.digest or '')[:19]}  by {e.actor}{approval}")
        print(f"    source {e.source_commit[:12]}  overlay commit {e.commit[:12]}  {total:.1f}s  {e.reason}")


def _stats(settings: Settings, env: str, days: float, json_: bool) -> None:
    from pipeline.dashboard import stats

    found = stats.environment_metrics(settings, env, days=days)
    if json_:
        print(json.dumps(found.to_dict()))
        return
    for line in stats.lines(found):
        print(line)


@task(
    iterable=["env"],
    help={
        "out": "directory to write the site to (index.html and style.css)",
        "env": "environment to show (repeatable; default: all)",
        "days": "the delivery metrics' window in days, ending now",
        "offline": "do not ask the clusters for their live state",
    },
)
def report(c: Context, env: list[str], out: str = "report", days: str = "30", offline: bool = False) -> None:
    """Write the release dashboard: a static HTML page of every environment's state, history and metrics."""
    from pipeline import options
    from pipeline.dashboard import site

    with _errors():
        window = options.days(days)
        page = site.build(_settings(c), Path(out), env, days=window, ask_cluster=not offline)
    print(page.resolve())


ns = Collection(
    build, bump, validate, release, promote, rollback, plan, drift, history, report, sandbox_tasks, db_tasks
)
# The sandbox's tasks find the project (where the sandbox keeps .sandbox/) through invoke's config.
ns.configure({"project_root": str(ROOT)})
