"""Release policy that actionlint cannot know, read from the workflows' YAML.

Releases queue and never cancel each other; prod runs only behind the protected ``production`` environment
and after staging; the OIDC token (``id-token: write``) is granted only to jobs that exchange it (with
Google, or with GitHub Pages to publish the dashboard); nothing runs on ``pull_request_target``; secrets
reach single steps as environment variables, never a whole job, a ``with:`` input or a script's text; bump
commits (overlays only) start no release. The dashboard is built after both releases, even failed ones,
with read-only access and no secret, and is published only where the repository opts in. The
drift check runs for every environment every 15 minutes, repairs staging on its own and prod only when a
repository variable says so, behind the protected ``production`` environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean true.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def all_workflows() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, load(p.name)) for p in sorted(WORKFLOWS.glob("*.yml"))]


def triggers(doc: dict[str, Any]) -> set[str]:
    on = doc["on"]
    if isinstance(on, str):
        return {on}
    return set(on)


def is_auth(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("google-github-actions/auth@")


def uses_auth(job: dict[str, Any]) -> bool:
    return any(is_auth(s) for s in job.get("steps", []))


def deploys_pages(job: dict[str, Any]) -> bool:
    return any(str(s.get("uses", "")).startswith("actions/deploy-pages@") for s in job.get("steps", []))


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    return load("release.yml")


def test_no_pull_request_target() -> None:
    for name, doc in all_workflows():
        assert "pull_request_target" not in triggers(doc), name


def test_ci_runs_on_push_and_pull_request_and_only_reads() -> None:
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= triggers(ci)
    assert ci["permissions"] == {"contents": "read"}
    for job in ci["jobs"].values():
        assert "permissions" not in job  # nothing more than the workflow's read-only token


def test_release_triggers_skip_bump_commits(release: dict[str, Any]) -> None:
    push = release["on"]["push"]
    assert push["branches"] == ["main"]
    assert "overlays/**" in push["paths-ignore"]
    dispatch = release["on"]["workflow_dispatch"]["inputs"]
    assert dispatch["env"]["type"] == "choice" and set(dispatch["env"]["options"]) == {"staging", "prod"}
    assert dispatch["image"]["required"] is False


def test_release_concurrency_queues_per_environment(release: dict[str, Any]) -> None:
    groups = {}
    for name in ("staging", "prod"):
        concurrency = release["jobs"][name]["concurrency"]
        assert concurrency["cancel-in-progress"] is False, name
        groups[name] = concurrency["group"]
    assert groups == {"staging": "release-staging", "prod": "release-prod"}
    assert "concurrency" not in release  # a workflow-level group would make prod wait behind staging runs


def test_prod_is_behind_the_protected_environment_and_after_staging(release: dict[str, Any]) -> None:
    staging, prod = release["jobs"]["staging"], release["jobs"]["prod"]
    assert staging["environment"] == "staging"
    environment = prod["environment"]
    assert (environment if isinstance(environment, str) else environment["name"]) == "production"
    needs = prod["needs"]
    assert (needs if isinstance(needs, list) else [needs]) == ["staging"]
    run = " ".join(str(s.get("run", "")) for s in prod["steps"])
    assert "invoke promote --env prod --from staging --approved-by" in run
    assert "invoke release --env staging" not in run


def test_id_token_only_where_google_auth_runs() -> None:
    for name, doc in all_workflows():
        assert "id-token" not in (doc.get("permissions") or {}), name
        for job_name, job in doc["jobs"].items():
            granted = (job.get("permissions") or {}).get("id-token") == "write"
            assert granted == (uses_auth(job) or deploys_pages(job)), f"{name}: job {job_name}"


def test_release_jobs_ask_for_no_more_than_they_use(release: dict[str, Any]) -> None:
    assert release["permissions"] == {}
    assert release["jobs"]["staging"]["permissions"] == {"contents": "write", "id-token": "write"}
    assert release["jobs"]["prod"]["permissions"] == {
        "contents": "write",
        "id-token": "write",
        "actions": "read",  # the run's deployment reviews: who approved
    }


def test_auth_uses_workload_identity_federation(release: dict[str, Any]) -> None:
    # Every job that reaches the clusters; `pages` only publishes the dashboard and talks to no cloud.
    assert set(release["jobs"]) == {"staging", "prod", "dashboard", "pages"}
    for job in (release["jobs"][name] for name in ("staging", "prod", "dashboard")):
        (auth,) = [s for s in job["steps"] if is_auth(s)]
        assert auth["with"] == {
            "workload_identity_provider": "${{ vars.GCP_WIF_PROVIDER }}",
            "service_account": "${{ vars.GCP_SERVICE_ACCOUNT }}",
            "create_credentials_file": True,
        }


SECRET = re.compile(r"\$\{\{\s*secrets\.")


def test_secrets_reach_single_steps_as_environment_variables() -> None:
    for name, doc in all_workflows():
        assert not SECRET.search(yaml.safe_dump(doc.get("env", {}))), name
        for job_name, job in doc["jobs"].items():
            assert not SECRET.search(yaml.safe_dump(job.get("env", {}))), f"{name}: job {job_name} env"
            for step in job.get("steps", []):
                where = f"{name}: {job_name}: {step.get('name') or step.get('uses')}"
                assert not SECRET.search(str(step.get("run", ""))), f"{where}: secret in a script"
                assert not SECRET.search(yaml.safe_dump(step.get("with", {}))), f"{where}: secret as input"


def test_actions_are_pinned_to_a_version() -> None:
    for name, doc in all_workflows():
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    ref = step["uses"].rpartition("@")[2]
                    assert re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref), f"{name}: {step['uses']}"


def test_dashboard_follows_both_releases_even_failed_ones_and_only_reads(release: dict[str, Any]) -> None:
    job = release["jobs"]["dashboard"]
    assert job["needs"] == ["staging", "prod"]
    assert "!cancelled()" in job["if"]  # a failed release is when the dashboard is read most
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert "environment" not in job  # no environment: none of the release secrets can reach it
    assert not SECRET.search(yaml.safe_dump(job))
    (auth,) = [s for s in job["steps"] if is_auth(s)]
    assert auth.get("continue-on-error") is True  # no cluster access still makes a page
    (report,) = [s for s in job["steps"] if "invoke report" in str(s.get("run", ""))]
    assert 'invoke report --out "$RUNNER_TEMP/dashboard"' in report["run"]
    (artifact,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert artifact["with"]["path"] == "${{ runner.temp }}/dashboard"
    assert artifact["with"]["if-no-files-found"] == "error"
    (pages,) = [
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@")
    ]
    assert pages["if"] == "vars.PUBLISH_DASHBOARD == 'true'"
    assert pages["with"]["path"] == artifact["with"]["path"]


def test_pages_publishes_only_where_the_repository_opts_in(release: dict[str, Any]) -> None:
    job = release["jobs"]["pages"]
    assert job["needs"] == "dashboard"
    assert "vars.PUBLISH_DASHBOARD == 'true'" in job["if"]
    assert "needs.dashboard.outputs.pages == 'success'" in job["if"]
    assert job["permissions"] == {"pages": "write", "id-token": "write"}
    assert job["environment"]["name"] == "github-pages"
    assert job["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert [str(s["uses"]).rpartition("@")[0] for s in job["steps"]] == ["actions/deploy-pages"]


# --- drift.yml: the scheduled check ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drift() -> dict[str, Any]:
    return load("drift.yml")


def runs(job: dict[str, Any]) -> str:
    return " ".join(str(s.get("run", "")) for s in job["steps"])


def test_drift_runs_every_15_minutes_and_on_demand(drift: dict[str, Any]) -> None:
    assert triggers(drift) == {"schedule", "workflow_dispatch"}
    assert drift["on"]["schedule"] == [{"cron": "*/15 * * * *"}]
    assert "concurrency" not in drift  # one group per environment, in the jobs


def test_drift_checks_every_environment(drift: dict[str, Any]) -> None:
    checked = {
        env
        for job in drift["jobs"].values()
        for env in ("staging", "prod")
        if f"invoke drift --env {env}" in runs(job)
    }
    assert checked == {"staging", "prod"}
    for job in drift["jobs"].values():
        assert "|| true" not in runs(job) and "continue-on-error" not in job  # drift fails the job


def test_staging_repairs_itself_and_prod_only_reports(drift: dict[str, Any]) -> None:
    jobs = drift["jobs"]
    assert "invoke drift --env staging --repair" in runs(jobs["staging"])
    assert jobs["staging"]["environment"] == "staging"
    (check,) = [s["run"] for s in jobs["prod"]["steps"] if "invoke drift" in str(s.get("run", ""))]
    assert check.strip() == "invoke drift --env prod"  # no --repair
    assert "environment" not in jobs["prod"]  # production's reviewers would hold every check
    repair = jobs["prod-repair"]
    assert "invoke drift --env prod --repair --approved-by" in runs(repair)
    assert repair["needs"] == "prod"
    assert "vars.DRIFT_REPAIR_PROD == 'true'" in repair["if"]
    assert "needs.prod.outputs.drift == 'true'" in repair["if"] and "!cancelled()" in repair["if"]
    environment = repair["environment"]
    assert (environment if isinstance(environment, str) else environment["name"]) == "production"


def test_drift_jobs_queue_and_never_share_the_release_groups(
    drift: dict[str, Any], release: dict[str, Any]
) -> None:
    release_groups = {job["concurrency"]["group"] for job in release["jobs"].values() if "concurrency" in job}
    groups = []
    for name, job in drift["jobs"].items():
        assert job["concurrency"]["cancel-in-progress"] is False, name
        groups.append(job["concurrency"]["group"])
    # A queued job replaces a queued one of the same group: sharing would cancel a waiting release.
    assert not set(groups) & release_groups
    assert len(set(groups)) == len(groups)


def test_drift_permissions_and_authentication(drift: dict[str, Any]) -> None:
    assert drift["permissions"] == {}
    jobs = drift["jobs"]
    assert jobs["staging"]["permissions"] == {"contents": "write", "id-token": "write"}
    assert jobs["prod"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["prod-repair"]["permissions"] == {"contents": "write", "id-token": "write"}
    for job in jobs.values():
        (auth,) = [s for s in job["steps"] if is_auth(s)]
        assert auth["with"] == {
            "workload_identity_provider": "${{ vars.GCP_WIF_PROVIDER }}",
            "service_account": "${{ vars.GCP_SERVICE_ACCOUNT }}",
            "create_credentials_file": True,
        }


def test_the_webhook_url_reaches_the_pipeline_steps_as_a_secret() -> None:
    for name in ("drift.yml", "release.yml"):
        for job_name, job in load(name)["jobs"].items():
            for step in job["steps"]:
                # The commands that notify; the dashboard job's `invoke report` has no secret by design.
                if re.search(r"invoke (release|promote|rollback|drift)\b", str(step.get("run", ""))):
                    env = step.get("env") or {}
                    assert env.get("PIPELINE_WEBHOOK_URL") == "${{ secrets.PIPELINE_WEBHOOK_URL }}", (
                        f"{name}: {job_name}: {step.get('name')}"
                    )
