"""Images built offline from the host's own files: ``postgres:15-bookworm`` and the kubelet's pause image.

No base image can be pulled here, so images are assembled ``FROM scratch``: a root filesystem is put
together in memory from files of the host's Debian packages (``postgresql-15`` and the shared libraries
its binaries need, ``busybox-static`` for a shell), written as a tar and built with one ``ADD`` so the
ownership recorded in the tar survives (``COPY`` would make every file root's). Images carry a label with
a hash of what went into them, so a changed recipe rebuilds while an unchanged one is reused at once.

Neighbours: the daemon calls :func:`ensure_image` at ``sandbox.up`` before the kubelet (``kubelet/``)
starts pods; pods name the image exactly as the overlays do and use ``imagePullPolicy: IfNotPresent``, so
it is never pulled. The kubelet builds its pause image with :class:`RootFS` and :func:`build_image` too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SandboxError

if TYPE_CHECKING:
    import docker

LOG = logging.getLogger(__name__)

RECIPE_LABEL = "sandbox.kube/recipe"


class ImageBuildError(SandboxError, RuntimeError):
    """An image could not be assembled from the host's files or built by the engine."""


@dataclass
class _Entry:
    kind: str  # "file", "dir" or "symlink"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class RootFS:
    """A root filesystem assembled in memory; :meth:`tar` adds the parent folders nobody named."""

    entries: dict[str, _Entry] = field(default_factory=dict)

    @staticmethod
    def _key(path: str) -> str:
        return path.strip("/")

    def add_file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self.entries[self._key(path)] = _Entry("file", data, mode, uid, gid)

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.entries[self._key(path)] = _Entry("dir", b"", mode, uid, gid)

    def add_symlink(self, path: str, target: str) -> None:
        self.entries[self._key(path)] = _Entry("symlink", target.encode(), 0o777)

    def add_host_file(self, host_path: Path | str, path: str | None = None) -> None:
        """Copy a host file (its content, following symlinks; its mode) to the same or another path."""
        host = Path(host_path)
        self.add_file(path or str(host), host.read_bytes(), stat.S_IMODE(host.stat().st_mode))

    def add_host_tree(self, host_dir: Path | str, skip: tuple[str, ...] = ()) -> None:
        """Copy a host folder recursively, keeping symlinks as symlinks; names in ``skip`` are left out."""
        root = Path(host_dir)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip]
            self.add_dir(dirpath, stat.S_IMODE(Path(dirpath).stat().st_mode))
            for name in [*filenames, *(d for d in dirnames if Path(dirpath, d).is_symlink())]:
                if name in skip:
                    continue
                full = Path(dirpath, name)
                if full.is_symlink():
                    self.add_symlink(str(full), os.readlink(full))
                else:
                    self.add_host_file(full)

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.entries):
            e = self.entries[key]
            h.update(f"{key}\0{e.kind}\0{e.mode}\0{e.uid}\0{e.gid}\0".encode())
            h.update(hashlib.sha256(e.data).digest())
        return h.hexdigest()

    def tar(self) -> bytes:
        names = set(self.entries)
        for key in list(names):
            parts = key.split("/")
            names.update("/".join(parts[:i]) for i in range(1, len(parts)))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key in sorted(names):
                entry = self.entries.get(key, _Entry("dir", mode=0o755))
                info = tarfile.TarInfo(key)
                info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif entry.kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, entry.data.decode()
                    tar.addfile(info)
                else:
                    info.size = len(entry.data)
                    tar.addfile(info, io.BytesIO(entry.data))
        return buf.getvalue()


def static_busybox() -> Path:
    """The host's statically linked busybox (Debian's ``busybox-static``), which runs in an empty image."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.exists():
            head = candidate.read_bytes()[:8192]
            # A dynamic binary names its loader in PT_INTERP near the start; a static one has none.
            if b"ld-linux" not in head and b"ld-musl" not in head:
                return candidate
    raise ImageBuildError(
        "building an image offline needs a static busybox: install Debian's busybox-static "
        "(scripts/lib.sh lists it)"
    )


def image_recipe(docker_client: docker.DockerClient, name: str) -> str | None:
    """The recipe label of a local image, or None when the image is absent."""
    import docker.errors

    try:
        image = docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    labels: dict[str, str] = image.attrs.get("Config", {}).get("Labels") or {}
    return labels.get(RECIPE_LABEL, "")


def build_image(
    docker_client: docker.DockerClient, name: str, rootfs: RootFS, instructions: list[str], recipe: str
) -> str:
    """Build ``name`` FROM scratch with ``rootfs`` and Dockerfile ``instructions``; returns the image id."""
    import docker.errors

    dockerfile = "\n".join(
        ["FROM scratch", "ADD rootfs.tar /", *instructions, f"LABEL {RECIPE_LABEL}={recipe}"]
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for member, data in (("Dockerfile", dockerfile.encode()), ("rootfs.tar", rootfs.tar())):
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        for line in docker_client.api.build(
            fileobj=context, custom_context=True, tag=name, rm=True, forcerm=True, decode=True
        ):
            if "error" in line:
                raise ImageBuildError(f"building {name}: {line['error'].strip()}")
        image_id: str = docker_client.images.get(name).id
    except docker.errors.APIError as e:
        raise ImageBuildError(f"building {name}: {e.explanation or e}") from e
    return image_id


# --- postgres:15-bookworm -----------------------------------------------------------------------------

PG_IMAGE = "postgres:15-bookworm"
PG_MAJOR = "15"
PG_ROOT = Path(f"/usr/lib/postgresql/{PG_MAJOR}")
PG_SHARE = Path(f"/usr/share/postgresql/{PG_MAJOR}")
POSTGRES_UID = 999  # the official image's postgres user and group
# Bumped when the recipe below changes in a way the inputs' hash cannot see.
RECIPE_VERSION = "1"

# The entrypoint, written for busybox's ash. It follows the official image's documented contract:
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default postgres),
# POSTGRES_DB (default the user), PGDATA, POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, *_FILE variants,
# /docker-entrypoint-initdb.d; root drops to the postgres user; an existing PGDATA is used as it is.
ENTRYPOINT = r"""#!/bin/sh
set -eu

log() { printf '%s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# VAR or the content of the file named by VAR_FILE (for Docker/Kubernetes secrets mounted as files).
from_env_or_file() {
  name=$1 default=${2:-}
  eval "value=\${$name:-}" "file=\${${name}_FILE:-}"
  if [ -n "$value" ] && [ -n "$file" ]; then
    fail "both $name and ${name}_FILE are set (but are exclusive)"
  fi
  if [ -n "$file" ]; then
    value=$(cat "$file")
  elif [ -z "$value" ]; then
    value=$default
  fi
  export "$name=$value"
  unset "${name}_FILE"
}

# A first argument that is an option belongs to postgres (`docker run postgres:15 -c fsync=off`).
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = 0 ]; then
  # As root: make the folders postgres needs its own, then run this script again as postgres.
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" ! -user postgres -exec chown postgres:postgres {} + 2>/dev/null || :
  chmod 700 "$PGDATA" 2>/dev/null || :
  chown postgres:postgres /var/run/postgresql
  chmod 3775 /var/run/postgresql
  if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    find "$POSTGRES_INITDB_WALDIR" ! -user postgres -exec chown postgres:postgres {} + 2>/dev/null || :
    chmod 700 "$POSTGRES_INITDB_WALDIR"
  fi
  export HOME=/var/lib/postgresql
  exec su -p -s /bin/sh postgres -c 'exec "$0" "$@"' "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  from_env_or_file POSTGRES_PASSWORD
  from_env_or_file POSTGRES_USER postgres
  from_env_or_file POSTGRES_DB "$POSTGRES_USER"
  from_env_or_file POSTGRES_INITDB_ARGS
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser (or POSTGRES_PASSWORD_FILE
       to a file holding it), e.g. "-e POSTGRES_PASSWORD=password" on "docker run".

       POSTGRES_HOST_AUTH_METHOD=trust allows every connection without a password instead;
       that is *not* recommended.
EOM
    exit 1
  fi
  mkdir -p "$PGDATA" 2>/dev/null || :
  # initdb refuses a non-empty folder itself (lost+found at a mount's root included), as it should.
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  waldir=""
  if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then waldir="--waldir=$POSTGRES_INITDB_WALDIR"; fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options by contract
  if ! initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $waldir $POSTGRES_INITDB_ARGS; then
    rm -f "$pwfile"
    exit 1
  fi
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

  # A server on the socket only, so nothing outside sees the database before it is complete.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  psql_do() { psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"; }
  # psql interpolates :'db' only in what it reads, not in -c, so the queries come on stdin.
  exists=$(echo "SELECT 1 FROM pg_database WHERE datname = :'db'" |
    psql_do --dbname postgres -tA --set db="$POSTGRES_DB")
  if [ -z "$exists" ]; then
    echo 'CREATE DATABASE :"db";' | psql_do --dbname postgres --set db="$POSTGRES_DB"
    log "created database $POSTGRES_DB"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh) if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
      *.sql) log "running $f"; psql_do --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_do --dbname "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset POSTGRES_PASSWORD
  log "PostgreSQL init process complete; ready for start up."
else
  log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
fi

exec "$@"
"""


def _pg_version() -> str:
    out = subprocess.run(
        [str(PG_ROOT / "bin" / "postgres"), "-V"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[2]


def _recipe() -> str:
    """A cheap fingerprint of the inputs: reading 80 MB of files just to say "unchanged" would be slow."""
    h = hashlib.sha256()
    h.update(RECIPE_VERSION.encode() + ENTRYPOINT.encode())
    for path in (PG_ROOT / "bin" / "postgres", static_busybox()):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _elf_files(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"]


def _shared_libraries(binaries: list[Path]) -> set[str]:
    """Every library the binaries load (``ldd``, one call for all), by the path the loader finds it at."""
    out = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True, check=False).stdout
    found: set[str] = set()
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target.startswith("/"):
                found.add(target)
        elif line.startswith("/") and "(" in line:
            found.add(line.split("(")[0].strip())  # the dynamic loader itself
    return found


def _add_library(rootfs: RootFS, path: str) -> None:
    """Put a library where the loader looks for it; the merged-/usr symlinks make /lib paths work."""
    real = Path(os.path.realpath(path))
    rootfs.add_host_file(real, str(real))
    wanted = Path(os.path.realpath(Path(path).parent)) / Path(path).name
    if wanted != real:
        rootfs.add_symlink(str(wanted), os.path.relpath(real, wanted.parent))


def _locale(rootfs: RootFS, name: str = "en_US.utf8") -> None:
    """The official image's LANG: compiled on the host with localedef into the image's locale folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / name
        proc = subprocess.run(
            ["localedef", "-i", "en_US", "-f", "UTF-8", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode not in (0, 1) or not (target / "LC_CTYPE").exists():
            raise ImageBuildError(f"compiling the {name} locale with localedef failed: {proc.stderr.strip()}")
        for f in target.rglob("*"):
            if f.is_file():
                rootfs.add_file(f"/usr/lib/locale/{name}/{f.relative_to(target)}", f.read_bytes())
    c_utf8 = Path("/usr/lib/locale/C.utf8")
    if c_utf8.is_dir():
        rootfs.add_host_tree(c_utf8)


def postgres_rootfs() -> RootFS:
    """The root filesystem of ``postgres:15-bookworm`` from the host's ``postgresql-15`` package."""
    if not (PG_ROOT / "bin" / "postgres").exists():
        raise ImageBuildError(
            f"{PG_ROOT}/bin/postgres is missing: install Debian's postgresql-15 (scripts/lib.sh lists it)"
        )
    rootfs = RootFS()
    # Debian bookworm's merged /usr, so library paths from ldd (/lib/x86_64-linux-gnu/...) resolve.
    for link, target in (
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
    ):
        rootfs.add_symlink(link, target)
    # LLVM's JIT would add 100 MB for a feature off by default on small queries; postgres runs without it.
    rootfs.add_host_tree(PG_ROOT, skip=("llvmjit.so", "llvmjit_types.bc", "bitcode"))
    rootfs.add_host_tree(PG_SHARE)
    sample = PG_SHARE / "postgresql.conf.sample"
    # As in the official image: initdb copies this sample, so the server listens on every address.
    text = re.sub(
        r"^#?listen_addresses\s*=\s*\S+.*$", "listen_addresses = '*'", sample.read_text(), flags=re.M
    )
    rootfs.add_file(str(sample), text.encode())
    zoneinfo = Path("/usr/share/zoneinfo")
    if zoneinfo.is_dir():
        rootfs.add_host_tree(zoneinfo, skip=("right",))
    _locale(rootfs)

    binaries = _elf_files([*(PG_ROOT / "bin").iterdir(), *(PG_ROOT / "lib").glob("*.so")])
    binaries = [b for b in binaries if b.name != "llvmjit.so"]
    # bash for probes and hooks written `bash -c`, as the official image has it; `locale -a` is how
    # initdb imports the system's collations.
    for tool in (Path("/usr/bin/bash"), Path("/usr/bin/locale")):
        if tool.exists():
            rootfs.add_host_file(tool, str(tool))
            binaries.append(tool)
    for lib in sorted(_shared_libraries(binaries)):
        _add_library(rootfs, lib)

    busybox = static_busybox()
    rootfs.add_host_file(busybox, "/usr/bin/busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if f"usr/bin/{applet}" not in rootfs.entries and applet != "busybox":
            rootfs.add_symlink(f"/usr/bin/{applet}", "busybox")
    for name in os.listdir(PG_ROOT / "bin"):
        # Debian keeps them out of PATH; the official image has them in /usr/bin through its PATH.
        rootfs.add_symlink(f"/usr/bin/{name}", f"../lib/postgresql/{PG_MAJOR}/bin/{name}")

    uid = POSTGRES_UID
    rootfs.add_file(
        "/etc/passwd",
        f"root:x:0:0:root:/root:/bin/sh\npostgres:x:{uid}:{uid}::/var/lib/postgresql:/bin/sh\n".encode(),
    )
    rootfs.add_file("/etc/group", f"root:x:0:\npostgres:x:{uid}:\n".encode())
    rootfs.add_file("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    rootfs.add_file(
        "/etc/os-release", b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    )
    rootfs.add_dir("/root", 0o700)
    rootfs.add_dir("/tmp", 0o1777)
    rootfs.add_dir("/var/run/postgresql", 0o3777, uid, uid)
    rootfs.add_dir("/var/lib/postgresql", 0o755, uid, uid)
    rootfs.add_dir("/var/lib/postgresql/data", 0o1777, uid, uid)
    rootfs.add_dir("/docker-entrypoint-initdb.d")
    rootfs.add_file("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT.encode(), 0o755)
    rootfs.add_symlink("/docker-entrypoint.sh", "usr/local/bin/docker-entrypoint.sh")
    return rootfs


def ensure_image(docker_client: docker.DockerClient, name: str = PG_IMAGE) -> str:
    """Build the postgres image unless the local engine has it from this recipe; returns its name.

    Returns at once when present (one ``inspect``). A present image of the same name but another recipe
    (an older sandbox) is rebuilt; one without the sandbox's label at all (a real ``postgres`` pulled on
    a machine with internet) is kept, since it is the genuine article.
    """
    recipe = _recipe()
    current = image_recipe(docker_client, name)
    if current == recipe or current == "":
        return name
    began = time.monotonic()
    rootfs = postgres_rootfs()
    instructions = [
        f"ENV PATH=/usr/lib/postgresql/{PG_MAJOR}/bin:"
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"ENV PG_MAJOR={PG_MAJOR} PG_VERSION={_pg_version()} LANG=en_US.utf8 PGDATA=/var/lib/postgresql/data",
        'VOLUME ["/var/lib/postgresql/data"]',
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        # Smart shutdown (SIGTERM) waits for every client to leave; the official image stops fast.
        "STOPSIGNAL SIGINT",
        "EXPOSE 5432",
        'CMD ["postgres"]',
    ]
    build_image(docker_client, name, rootfs, instructions, recipe)
    LOG.info("built %s in %.1f s", name, time.monotonic() - began)
    return name
