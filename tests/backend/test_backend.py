"""Tests for backend/, the gin service the pipeline ships: its Go unit tests, the built binary over HTTP
(routes, /version's commit, readiness with and without a database, SIGTERM), and, where a PostgreSQL
server can be started locally, the notes API against a real database that restarts under it.

The binary is built by backend/build.sh into a temporary directory (BACKEND_OUTPUT), never into
backend/bin/, which an image build elsewhere in the suite may be copying at the same moment.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

BACKEND = Path(__file__).resolve().parents[2] / "backend"
COMMIT = "abc1234def5678abc1234def5678abc1234def56"
GOCODE = Path("/usr/share/gocode/src/github.com")
# Never printed by the backend; the tests grep its log for it.
PASSWORD = "canary-Pa55word-not-for-logs"


def _go_missing() -> str | None:
    if shutil.which("go") is None:
        return "`go` is not installed (apt-get install golang-go)"
    for pkg, deb in (
        ("gin-gonic/gin", "golang-github-gin-gonic-gin-dev"),
        ("lib/pq", "golang-github-lib-pq-dev"),
    ):
        if not (GOCODE / pkg).is_dir():
            return f"{GOCODE / pkg} is missing (apt-get install {deb})"
    return None


needs_go = pytest.mark.skipif(_go_missing() is not None, reason=_go_missing() or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def status(url: str) -> int:
    """The HTTP status of GET url, or 0 when nothing answers."""
    try:
        return requests.get(url, timeout=3).status_code
    except requests.ConnectionError:
        return 0


@dataclass
class Backend:
    """One running backend process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=5)

    def post(self, path: str, body: object) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, as the kubelet sends it, and the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (why := _go_missing()) is not None:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("backend-bin") / "backend"
    env = {**os.environ, "SOURCE_COMMIT": COMMIT, "BACKEND_OUTPUT": str(out)}
    done = subprocess.run(["sh", "build.sh"], cwd=BACKEND, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"build.sh failed:\n{done.stdout}{done.stderr}"
    assert out.is_file()
    return out


@contextmanager
def running(binary: Path, log: Path, **env: str) -> Iterator[Backend]:
    """Start the binary on a free port with exactly `env` (plus PATH) and wait until it listens."""
    port = free_port()
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [str(binary)],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PORT": str(port),
                "GIN_MODE": "release",
                **env,
            },
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    backend = Backend(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(
            f"the backend to listen on :{port}",
            lambda: proc.poll() is not None or status(backend.url + "/livez") == 200,
        )
        assert proc.poll() is None, f"backend exited with {proc.returncode}:\n{backend.output()}"
        yield backend
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@needs_go
def test_go_unit_tests() -> None:
    done = subprocess.run(["sh", "build.sh", "test"], cwd=BACKEND, capture_output=True, text=True)
    assert done.returncode == 0, f"go vet / go test failed:\n{done.stdout}{done.stderr}"


def test_build_is_idempotent(binary: Path) -> None:
    before = binary.stat().st_mtime_ns
    env = {**os.environ, "SOURCE_COMMIT": COMMIT, "BACKEND_OUTPUT": str(binary)}
    done = subprocess.run(["sh", "build.sh"], cwd=BACKEND, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert binary.stat().st_mtime_ns == before


def test_routes_and_clean_sigterm(binary: Path, tmp_path: Path) -> None:
    with running(binary, tmp_path / "backend.log") as backend:
        root = backend.get("/")
        assert (root.status_code, root.text) == (200, "Hello from the other side!")
        assert root.headers["Content-Type"].startswith("text/plain")

        version = backend.get("/version")
        assert version.status_code == 200
        assert version.json()["commit"] == COMMIT
        assert version.json()["version"]

        assert backend.get("/livez").status_code == 200
        health = backend.get("/healthz")
        assert health.status_code == 200, "no POSTGRES_HOST means no database to wait for"
        assert backend.get("/api/notes").status_code == 503

        assert backend.terminate() == 0
    assert "stopped cleanly" in backend.output()


def test_readiness_fails_while_database_is_unreachable(binary: Path, tmp_path: Path) -> None:
    closed = free_port()
    env = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(closed), "POSTGRES_PASSWORD": PASSWORD}
    with running(binary, tmp_path / "backend.log", **env) as backend:
        health = backend.get("/healthz")
        assert health.status_code == 503
        assert "database not ready" in health.text
        assert backend.get("/livez").status_code == 200, "liveness must not depend on the database"
        assert backend.post("/api/notes", {"text": "lost"}).status_code == 503
        assert backend.terminate() == 0
    assert PASSWORD not in backend.output()


def test_shutdown_delay_fails_readiness_but_keeps_serving(binary: Path, tmp_path: Path) -> None:
    with running(binary, tmp_path / "backend.log", SHUTDOWN_DELAY="2s") as backend:
        backend.proc.send_signal(signal.SIGTERM)
        wait_until(
            "/healthz to answer 503 after SIGTERM", lambda: status(backend.url + "/healthz") == 503, 1.5
        )
        assert backend.get("/").status_code == 200
        assert backend.proc.wait(15) == 0


def test_crash_on_start(binary: Path) -> None:
    done = subprocess.run(
        [str(binary)], env={"CRASH_ON_START": "1"}, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 3
    assert "CRASH_ON_START" in done.stderr


# --- against a real PostgreSQL ----------------------------------------------------------------------------


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster, run as an unprivileged user when we are root."""

    bin: Path
    root: Path
    port: int
    as_user: list[str]

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self.run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "30",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "server.log"),
            "-o",
            opts,
        )
        assert done.returncode == 0, f"pg_ctl start: {done.stdout}{done.stderr}"

    def stop(self) -> None:
        done = self.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.root / "data"))
        assert done.returncode == 0, f"pg_ctl stop: {done.stdout}{done.stderr}"


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """An initialised (not yet started) cluster with password auth over TCP."""
    pg_bin = _postgres_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser` to start PostgreSQL as another user")
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        if owner is None:
            pytest.skip("running as root and neither a `postgres` nor a `nobody` user exists for PostgreSQL")
        as_user = ["runuser", "-u", owner.pw_name, "--"]
    # Not under pytest's tmp_path: its parents are 0700 root, which the server's user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="campus-backend-pg-"))
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        pwfile = root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pg = Postgres(pg_bin, root, free_port(), as_user)
        done = pg.run(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        )
        if done.returncode != 0:
            pytest.skip(f"cannot initialise a PostgreSQL cluster here: {done.stderr.strip()[-300:]}")
        yield pg
        pg.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(root / "data"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_notes_survive_database_and_backend_restarts(
    binary: Path, postgres: Postgres, tmp_path: Path
) -> None:
    env = {
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(postgres.port),
        "POSTGRES_DB": "campus",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": PASSWORD,
    }
    log = tmp_path / "backend.log"
    with running(binary, log, **env) as backend:
        # The database is late: the backend must wait for it, not exit.
        assert backend.get("/healthz").status_code == 503
        postgres.start()
        created = postgres.run(
            "createdb", "-h", str(postgres.root), "-p", str(postgres.port), "-U", "postgres", "campus"
        )
        assert created.returncode == 0, created.stderr
        wait_until(
            "/healthz to turn 200 once PostgreSQL is up", lambda: status(backend.url + "/healthz") == 200
        )

        for text in ("first", "second, with ünïcode"):
            answer = backend.post("/api/notes", {"text": text})
            assert answer.status_code == 201, answer.text
            assert answer.json()["text"] == text
        assert backend.post("/api/notes", {"text": " "}).status_code == 400

        postgres.stop()
        wait_until(
            "/healthz to turn 503 with PostgreSQL down", lambda: status(backend.url + "/healthz") == 503
        )
        assert backend.get("/livez").status_code == 200
        assert backend.get("/api/notes").status_code == 503

        postgres.start()
        wait_until(
            "/healthz to recover after PostgreSQL restarted", lambda: status(backend.url + "/healthz") == 200
        )
        assert [n["text"] for n in backend.get("/api/notes").json()] == ["first", "second, with ünïcode"]
        assert backend.post("/api/notes", {"text": "third"}).status_code == 201
        assert backend.terminate() == 0

    with running(binary, log, **env) as again:
        wait_until("a new backend to be ready", lambda: status(again.url + "/healthz") == 200)
        notes = again.get("/api/notes").json()
        assert [n["text"] for n in notes] == ["first", "second, with ünïcode", "third"]
        assert [n["id"] for n in notes] == sorted(n["id"] for n in notes)
        assert again.terminate() == 0
    assert PASSWORD not in log.read_text(errors="replace")
