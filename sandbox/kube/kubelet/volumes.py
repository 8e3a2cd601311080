"""A pod's volumes on the node: what to prepare before its containers start, and how each one mounts.

- claims are the Docker volumes the PVC controller names (made on first use by the runtime, never
  removed here); a ``subPath`` of one is bound from the volume's folder on the host;
- emptyDirs are world-writable folders under ``<home>/kube/kubelet/<cluster>/pods/<uid>/volumes/``
  (``medium: Memory`` is a tmpfs);
- configMap/secret/projected/downwardAPI volumes are files written there from the
  :class:`~sandbox.kube.resolved.ResolvedPod`, replaced atomically when they change, mounted read-only;
- hostPath volumes bind the host's folder.

Used by the pod worker (``worker.py``: :meth:`PodVolumes.prepare` each round) and ``config.py``
(:meth:`PodVolumes.mounts` for a container); the runtime makes and locates claim volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.kube.resolved import ResolvedPod

from .cri import MountSpec

if TYPE_CHECKING:
    from .runtime import DockerRuntime

_FILE_KINDS = ("configMap", "secret", "projected", "downwardAPI")


class PodVolumes:
    """The volumes of one pod, with their files under ``pod_dir``."""

    def __init__(self, runtime: DockerRuntime, pod_dir: Path, namespace: str) -> None:
        self.runtime, self.pod_dir, self.namespace = runtime, pod_dir, namespace

    def prepare(self, pod: dict[str, Any], resolved: ResolvedPod) -> dict[str, str | None]:
        """Volume name -> error message (None when ready); writes configMap/secret files, makes emptyDirs.

        A message is the ``FailedMount`` event's; a container mounting that volume waits.
        """
        errors: dict[str, str | None] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            errors[name] = None
            if "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                volume = resolved.volumes.get(claim)
                if volume is None:
                    errors[name] = resolved.volume_errors.get(name) or (
                        f'persistentvolumeclaim "{claim}" is not bound to a volume yet'
                    )
                else:
                    self.runtime.ensure_volume(volume, claim, self.namespace)
            elif "emptyDir" in vol and (vol["emptyDir"] or {}).get("medium") != "Memory":
                path = self.pod_dir / "volumes" / name
                if not path.exists():
                    path.mkdir(parents=True)
                    path.chmod(0o777)  # emptyDir is world-writable, whatever user the container runs as
            elif any(kind in vol for kind in _FILE_KINDS):
                errors[name] = self._prepare_files(vol, resolved)
        return errors

    def _prepare_files(self, vol: dict[str, Any], resolved: ResolvedPod) -> str | None:
        name = vol["name"]
        kind = next(k for k in _FILE_KINDS if k in vol)
        source = vol[kind] or {}
        files = resolved.volume_files.get(name)
        if name in resolved.volume_errors:
            return resolved.volume_errors[name]
        if files is None and not source.get("optional") and kind in ("configMap", "secret"):
            return resolved.volume_errors.get(name) or (
                f'MountVolume.SetUp failed for volume "{name}" : {kind.lower()} '
                f'"{source.get("name") or source.get("secretName")}" not found'
            )
        mode = int(source.get("defaultMode") or 0o644)
        write_files(self.pod_dir / "volumes" / name, files or {}, mode)
        return None

    def mounts(self, pod: dict[str, Any], resolved: ResolvedPod, spec: dict[str, Any]) -> list[MountSpec]:
        """The container's ``volumeMounts``; ValueError/KeyError/OSError when one cannot be made."""
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        mounts: list[MountSpec] = []
        for vm in spec.get("volumeMounts") or []:
            vol = volumes.get(vm["name"])
            if vol is None:
                raise ValueError(
                    f'spec.containers[{spec["name"]}].volumeMounts: volume "{vm["name"]}" not found'
                )
            mounts.append(self._mount(vol, vm, resolved))
        return mounts

    def _mount(self, vol: dict[str, Any], vm: dict[str, Any], resolved: ResolvedPod) -> MountSpec:
        target, read_only, sub = vm["mountPath"], bool(vm.get("readOnly")), vm.get("subPath") or ""
        if "persistentVolumeClaim" in vol:
            volume = resolved.volumes[vol["persistentVolumeClaim"]["claimName"]]
            read_only = read_only or bool(vol["persistentVolumeClaim"].get("readOnly"))
            if sub:
                # Docker 20.10 cannot mount part of a volume; bind its folder on the host instead.
                base = self.runtime.volume_path(volume)
                (base / sub).mkdir(parents=True, exist_ok=True)
                return MountSpec(target, str(base / sub), type="bind", read_only=read_only)
            # Kubernetes never copies the image's files into a claim, so neither does Docker here.
            return MountSpec(target, volume, type="volume", read_only=read_only, no_copy=True)
        if "emptyDir" in vol and (vol["emptyDir"] or {}).get("medium") == "Memory":
            return MountSpec(target, None, type="tmpfs", tmpfs_mode=0o1777)
        if "hostPath" in vol:
            host = Path(vol["hostPath"]["path"]) / sub
            if (vol["hostPath"].get("type") or "") in ("DirectoryOrCreate", ""):
                host.mkdir(parents=True, exist_ok=True)
            return MountSpec(target, str(host), type="bind", read_only=read_only)
        source = self.pod_dir / "volumes" / vm["name"]
        source.mkdir(parents=True, exist_ok=True)
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        files_kind = any(k in vol for k in _FILE_KINDS)
        return MountSpec(target, str(source), type="bind", read_only=read_only or files_kind)


def write_files(root: Path, files: dict[str, bytes], mode: int) -> None:
    """Make ``root`` hold exactly ``files`` (relative path -> content) with ``mode``, never outside it."""
    root.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    for rel, data in files.items():
        target = (root / rel).resolve()
        if root.resolve() not in target.parents:
            continue  # the API validates paths; never write outside the volume
        wanted.add(target)
        if target.exists() and target.read_bytes() == data and (target.stat().st_mode & 0o777) == mode:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        tmp.replace(target)  # atomic, so a reader never sees half a file
    for existing in root.rglob("*"):
        if existing.is_file() and existing.resolve() not in wanted:
            existing.unlink()
