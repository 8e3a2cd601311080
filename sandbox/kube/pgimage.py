"""Images built offline from the host's own files: ``postgres:15-bookworm`` and the kubelet's pause image.

No base image can be pulled here, so images are assembled ``FROM scratch``: a root filesystem is put
together in memory from files of the host's Debian packages (``postgresql-15`` and the shared libraries
its binaries need, ``busybox-static`` for a shell), written as a tar and built with one ``ADD`` so the
ownership recorded in the tar survives (``COPY`` would make every file root's). Images carry a label with
a hash of what went into them, so a changed recipe rebuilds while an unchanged one is reused at once.

Neighbours: the daemon calls :func:`ensure_image` at ``sandbox.up`` before the kubelet (``kubelet.py``)
starts pods; pods name the image exactly as the overlays do and use ``imagePullPolicy: IfNotPresent``, so
it is never pulled. The kubelet builds its pause image with :class:`RootFS` and :func:`build_image` too.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

RECIPE_LABEL = "sandbox.kube/recipe"


class ImageBuildError(RuntimeError):
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


def _unused(_: Any) -> None:  # placeholder removed when the postgres recipe lands
    return None
