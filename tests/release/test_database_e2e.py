"""The database is never lost (issue 13), on the sandbox: backups, gated migrations, restore, faults.

One module-scoped project (a clone of this checkout with its own GitOps remote and image repository) on a
sandbox of its own (node addresses 127.0.0.102/103), released with the CLI as a user does. In order: the
first release runs the migrations as a Job; rows written through ``POST /api/notes`` survive a backup, a
``DROP TABLE`` typed into ``kubectl exec ... psql`` and a restore; a corrupt backup is refused before
anything is touched; a release that changes only the backend image takes no backup and runs no Job; the
database pod deleted during a write load and its container killed lose no committed row; a release whose
migration fails exits 1 while the old backend keeps answering, and its rollback restores the pre-release
backup, which the history names; ``sandbox.down``/``up`` keeps every row. Nothing of ``pipeline/`` is
patched; faults go through the cluster's API and the Docker engine, as an operator's would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import config, gke, kube

from .conftest import ROOT, Clusters, git, running_sandbox, seeded_clone  # type: ignore[import-not-found]
from .test_release_e2e import (  # type: ignore[import-not-found]
    NODE_PORT,
    Poller,
    http_get,
    http_post_json,
    wait_for,
)

pytestmark = pytest.mark.e2e

NAMESPACE = "campus"
KUBECTL = next((p for p in ("/usr/lib/google-cloud-sdk/bin/kubectl.1.31",) if Path(p).exists()), "kubectl")
AUTHOR = ("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid")
PSQL = 'exec psql -qtA -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'


@dataclass
class Project:
    clone: Path
    environ: dict[str, str]
    settings: config.Settings
    clusters: Clusters

    @property
    def ip(self) -> str:
        return str(self.clusters.ready["kube"]["clusters"]["staging"]["node_ip"])

    def invoke(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
            env={**self.environ, "PIPELINE_ROOT": str(self.clone)},
            cwd=self.clone,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--context", "staging", "-n", NAMESPACE, *args],
            env=self.environ,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def psql(self, sql: str) -> str:
        """SQL typed into ``kubectl exec -i deploy/db-core-deployment -- psql``, as during an incident."""
        done = self.kubectl("exec", "-i", "deploy/db-core-deployment", "--", "sh", "-c", PSQL, stdin=sql)
        assert done.returncode == 0, f"psql: {done.stderr}"
        return done.stdout

    def access(self) -> gke.ClusterAccess:
        return self.clusters.access("staging")

    def db_pod(self) -> dict[str, Any]:
        with kube.connect(self.access()) as k:
            pods, _ = k.list_objects("v1", "Pod", NAMESPACE, label_selector="app=db-core")
        (pod,) = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return pod

    def commit(self, files: dict[str, str], message: str) -> None:
        for name, text in files.items():
            path = self.clone / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", *files, cwd=self.clone)
        git(*AUTHOR, "commit", "-qm", message, cwd=self.clone)

    def ids(self) -> set[int]:
        return {int(line) for line in self.psql("SELECT id FROM notes;").split()}

    def history(self) -> list[dict[str, Any]]:
        done = self.invoke("history", "--env", "staging", "--json")
        assert done.returncode == 0, done.stderr
        records: list[dict[str, Any]] = json.loads(done.stdout)
        return records


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from sandbox.home import free_port

    with running_sandbox(
        tmp_path_factory.mktemp("sandbox-db"),
        "127.0.0.102,127.0.0.103",
        SANDBOX_STORAGE_PORT=str(free_port()),
    ) as clusters:
        clone, _, environ = seeded_clone(
            tmp_path_factory.mktemp("db-e2e"),
            clusters,
            PIPELINE_IMAGE_REPOSITORY=f"release-test/db-{uuid.uuid4().hex[:8]}",
        )
        with pytest.MonkeyPatch.context() as patch:
            # The tests look at the cluster through the pipeline's client, with the sandbox's credentials.
            patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", environ["GOOGLE_APPLICATION_CREDENTIALS"])
            yield Project(clone, environ, config.load(clone, environ), clusters)


def stages(output: str) -> dict[str, str]:
    """The stage table's rows, stage name -> the rest of its first line."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 3 and cells[0] and cells[0] not in found and not cells[0].startswith("stage"):
            found[cells[0]] = " | ".join(cells[1:])
    return found


def release(project: Project) -> tuple[subprocess.CompletedProcess[str], dict[str, str], float]:
    start = time.monotonic()
    done = project.invoke("release", "--env", "staging")
    return done, stages(done.stdout + done.stderr), time.monotonic() - start


def test_first_release_runs_the_migrations_as_a_job(project: Project) -> None:
    done, table, _ = release(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert table["backup"].startswith("skipped"), table
    assert table["migrate"].startswith("ok"), table
    applied = project.psql("SELECT id FROM gorp_migrations ORDER BY id;").split()
    assert applied == ["0001_notes.sql", "0002_notes_created_at.sql"]


def test_kubectl_exec_and_cp_pass_stdin_and_exit_codes(project: Project, tmp_path: Path) -> None:
    failed = project.kubectl(
        "exec", "deploy/db-core-deployment", "--", "sh", "-c", "echo out; echo err >&2; exit 7"
    )
    assert failed.returncode == 7, failed
    assert failed.stdout == "out\n" and "err" in failed.stderr
    echoed = project.kubectl("exec", "-i", "deploy/db-core-deployment", "--", "cat", stdin="through stdin\n")
    assert (echoed.returncode, echoed.stdout) == (0, "through stdin\n")
    pod = project.db_pod()["metadata"]["name"]
    (tmp_path / "up.txt").write_text("copied in\n")
    assert project.kubectl("cp", str(tmp_path / "up.txt"), f"{pod}:/tmp/up.txt").returncode == 0
    copied = project.kubectl("cp", f"{pod}:/tmp/up.txt", str(tmp_path / "down.txt"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "down.txt").read_text() == "copied in\n"


def port_forward(project: Project, target: str, ports: str) -> subprocess.Popen[bytes]:
    """``kubectl port-forward`` as a user runs it, in the background."""
    return subprocess.Popen(
        [KUBECTL, "--context", "staging", "-n", NAMESPACE, "port-forward", target, ports],
        env=project.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kubectl_port_forward_reaches_the_backend_and_postgresql(project: Project) -> None:
    from sandbox.home import free_port

    web, db = free_port(), free_port()
    forward = port_forward(project, "deploy/backend-core-deployment", f"{web}:8080")
    forward_db = port_forward(project, "deploy/db-core-deployment", f"{db}:5432")
    try:
        wait_for("the forwarded backend", lambda: http_get("127.0.0.1", web, "/healthz")[0] == 200, 30)
        for _ in range(3):  # one SPDY connection, a stream pair per TCP connection
            status, body = http_get("127.0.0.1", web, "/version")
            assert status == 200 and "commit" in json.loads(body), body
        psql = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(db),
                "-U",
                "postgres",
                "-d",
                "puppylove",
                "-tAc",
                "SELECT 1",
            ],
            env={**project.environ, "PGPASSWORD": project.environ["CAMPUS_POSTGRES_PASSWORD"]},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (psql.returncode, psql.stdout.strip()) == (0, "1"), psql.stderr
    finally:
        for proc in (forward, forward_db):
            proc.terminate()
            proc.wait(10)


def test_backup_then_drop_then_restore_brings_every_row_back(project: Project) -> None:
    texts = [f"note {i} {uuid.uuid4().hex[:6]}" for i in range(25)]
    for text in texts:
        status, body = http_post_json(project.ip, NODE_PORT, "/api/notes", {"text": text})
        assert status == 201, body
    made = project.invoke("db.backup", "--env", "staging", "--json")
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    assert backup["size"] > 0 and len(backup["sha256"]) == 64

    project.psql("DROP TABLE notes;")
    assert http_get(project.ip, NODE_PORT, "/api/notes")[0] == 503

    restored = project.invoke("db.restore", "--env", "staging", "--backup", backup["id"])
    assert restored.returncode == 0, restored.stderr
    status, body = http_get(project.ip, NODE_PORT, "/api/notes")
    assert status == 200, body
    assert [n["text"] for n in json.loads(body)][-len(texts) :] == texts

    listed = project.invoke("db.backups", "--env", "staging")
    assert listed.returncode == 0, listed.stderr
    assert any(
        backup["id"] in line and f"sha256:{backup['sha256']}" in line for line in listed.stdout.splitlines()
    )


def test_restore_refuses_a_corrupt_backup_and_prod_without_approval(project: Project) -> None:
    from google.cloud import storage

    listed = json.loads(project.invoke("db.backups", "--env", "staging", "--json").stdout)
    good = listed[0]
    # The same record with other bytes: what a damaged object in the bucket looks like.
    client = storage.Client(
        project="sandbox",
        credentials=_anonymous(),
        client_options={"api_endpoint": project.environ["PIPELINE_STORAGE_ENDPOINT"]},
    )
    name = f"staging/{good['id'][:-4]}dead.dump"
    blob = client.bucket(project.settings.database.bucket_for("staging")).blob(name)
    blob.metadata = {**{k: str(v) for k, v in good.items() if k != "object"}, "id": good["id"][:-4] + "dead"}
    blob.upload_from_string(b"not a dump")
    before = project.ids()
    refused = project.invoke("db.restore", "--env", "staging", "--backup", good["id"][:-4] + "dead")
    assert refused.returncode == 1
    assert "corrupt" in refused.stderr and "nothing was restored" in refused.stderr
    assert project.ids() == before
    blob.delete()
    client.close()

    prod = project.invoke("db.restore", "--env", "prod", "--backup", good["id"])
    assert prod.returncode == 1 and "approver" in prod.stderr


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def test_a_release_of_only_a_new_backend_image_takes_no_backup(project: Project) -> None:
    project.commit(
        {"backend/README.md": (project.clone / "backend/README.md").read_text() + "\nA change.\n"}, "docs"
    )
    done, table, seconds = release(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert table["backup"].startswith("skipped") and "unchanged" in table["backup"], table
    assert table["migrate"].startswith("skipped"), table
    print(f"image-only release: {seconds:.1f} s; stages {table}")


class Writer(threading.Thread):
    """POST /api/notes as fast as the service takes them; the ids of the 201s are committed rows."""

    def __init__(self, ip: str) -> None:
        super().__init__(daemon=True)
        self.ip = ip
        self.committed: list[int] = []
        self.failures = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, body = http_post_json(self.ip, NODE_PORT, "/api/notes", {"text": "under load"})
            except OSError:
                status, body = 0, ""
            if status == 201:
                self.committed.append(int(json.loads(body)["id"]))
            else:
                self.failures += 1
                self.done.wait(0.05)

    def stop(self) -> list[int]:
        self.done.set()
        self.join(timeout=15)
        return self.committed


def _db_back(project: Project, old_uid: str) -> bool:
    pod = project.db_pod()
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
    return pod["metadata"]["uid"] != old_uid and ready


def test_the_database_pod_deleted_during_load_loses_no_committed_row(project: Project) -> None:
    writer = Writer(project.ip)
    writer.start()
    wait_for("some writes", lambda: len(writer.committed) > 20, 30)
    old = project.db_pod()
    with kube.connect(project.access()) as k:
        assert k.delete("v1", "Pod", old["metadata"]["name"], NAMESPACE)
    wait_for("a new database pod", lambda: _db_back(project, old["metadata"]["uid"]), 120)
    count = len(writer.committed)
    wait_for("writes after the restart", lambda: len(writer.committed) > count + 20, 60)
    committed = writer.stop()
    missing = set(committed) - project.ids()
    assert not missing, f"{len(missing)} committed rows lost: {sorted(missing)[:10]}"
    print(f"pod deleted under load: {len(committed)} rows committed, {writer.failures} refused, 0 lost")


def test_a_killed_database_container_loses_no_committed_row(project: Project) -> None:
    import docker

    before = project.ids()
    pod = project.db_pod()
    client = docker.from_env()
    (container,) = client.containers.list(
        filters={
            "label": [
                f"io.kubernetes.pod.uid={pod['metadata']['uid']}",
                "io.kubernetes.container.name=db-core",
            ]
        }
    )
    container.kill()
    wait_for(
        "PostgreSQL back after SIGKILL",
        lambda: http_get(project.ip, NODE_PORT, "/healthz")[0] == 200 and bool(project.ids() >= before),
        120,
    )
    assert project.ids() >= before


def test_a_failed_migration_restores_the_backup_while_the_old_backend_answers(project: Project) -> None:
    schema = project.psql(r"SELECT column_name FROM information_schema.columns WHERE table_name='notes';")
    rows = project.ids()
    project.commit(
        {
            "backend/migrations/0003_notes_tag.sql": (
                "-- +migrate Up\nALTER TABLE notes ADD COLUMN tag TEXT;\n"
                "-- +migrate Down\nALTER TABLE notes DROP COLUMN tag;\n"
            ),
            "backend/migrations/0004_broken.sql": (
                "-- +migrate Up\nUPDATE notes SET tag = (SELECT 1/0)::text;\n-- +migrate Down\nSELECT 1;\n"
            ),
        },
        "migrations: tag notes (the second one divides by zero)",
    )
    poller = Poller(project.ip, NODE_PORT)
    poller.start()
    try:
        done, table, _ = release(project)
    finally:
        answers = poller.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert table["backup"].startswith("ok") and table["migrate"].startswith("failed"), table
    assert table["restore"].startswith("ok"), table
    assert answers and all(a == 200 for a in answers), [a for a in answers if a != 200][:5]
    after = project.psql(r"SELECT column_name FROM information_schema.columns WHERE table_name='notes';")
    assert sorted(after.split()) == sorted(schema.split())
    assert project.ids() == rows
    assert project.psql("SELECT count(*) FROM gorp_migrations;").strip() == "2"
    last = project.history()[0]
    backups = json.loads(project.invoke("db.backups", "--env", "staging", "--json").stdout)
    assert last["result"] == "rolled-back", last
    assert f"restored backup {backups[0]['id']}" in last["reason"], last
    git(*AUTHOR, "revert", "--no-edit", "HEAD", cwd=project.clone)


def test_sandbox_down_and_up_keep_every_row_and_every_backup(project: Project) -> None:
    from sandbox import control
    from sandbox.home import Home

    rows = project.ids()
    backups = json.loads(project.invoke("db.backups", "--env", "staging", "--json").stdout)
    home = Home(project.clusters.home)
    control.down(home)
    control.up(home, ROOT)
    wait_for("the backend ready again", lambda: http_get(project.ip, NODE_PORT, "/healthz")[0] == 200, 180)
    assert project.ids() == rows
    again = json.loads(project.invoke("db.backups", "--env", "staging", "--json").stdout)
    assert [b["id"] for b in again] == [b["id"] for b in backups]
