"""The kubelet's container runtime: the only module of the node side that talks to Docker.

As dockershim did, it maps the kubelet's few verbs onto the engine: the cluster's bridge network, the
pause image, the pod sandbox (pause) container, app containers, image pulls with the registry's
credentials, exec for probes, logs, and the Docker volumes of claims. Everything it hands back is one of
the small frozen types below (:class:`Listed`, :class:`Instance`, :class:`Image`), never a docker-py
object, and the failures the kubelet reports to the user come back as :class:`RuntimeFailure` with the
engine's own message; anything else from the engine is a bug or a transient fault and keeps its type.
The records and the label names are in ``cri.py``.

Neighbours: :class:`~.kubelet.Kubelet` makes one :class:`DockerRuntime`; the pod worker (``worker.py``),
its sandbox (``podsandbox.py``), image manager (``images.py``), volumes (``volumes.py``) and exec probes
(``probes.py``) call it. ``docker`` itself is imported lazily, so importing the kubelet stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError

from .cri import (
    LABEL_CLUSTER,
    LABEL_CONTAINER_NAME,
    LABEL_HASH,
    LABEL_HOME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerConfig,
    Image,
    Instance,
    Listed,
)
from .images import registry_host, split_image

if TYPE_CHECKING:
    import docker
    from docker import DockerClient as DockerClient  # for the facade's signature, without importing docker

PAUSE_IMAGE = "sandbox.local/pause:busybox-1"
# The pause container only has to hold the namespaces and exit promptly on SIGTERM.
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"


class RuntimeFailure(SandboxError):
    """The engine refused a create, start, exec or pull; ``str()`` is its message, as the kubelet shows it."""


def home_hash(home: Path) -> str:
    """A short stable id of a sandbox home: two sandboxes on one engine never touch each other's objects."""
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:10]


def engine() -> docker.DockerClient:
    """The Docker engine the kubelets (and the image builder) use: the environment's, as `docker` finds it."""
    import docker

    return docker.from_env()


def remove_volumes(home: Path) -> None:
    """Delete the claim volumes the kubelets of ``home`` made (``sandbox.down --purge``): the data goes."""
    for volume in engine().volumes.list(filters={"label": f"{LABEL_HOME}={home_hash(home)}"}):
        volume.remove(force=True)


def remove_all(docker_client: docker.DockerClient, home: Path) -> None:
    """Remove every container and network any kubelet of this home made (after a crash, for ``down``)."""
    selector = f"{LABEL_HOME}={home_hash(home)}"
    _remove_labelled(docker_client, [selector])


def _remove_labelled(docker_client: docker.DockerClient, labels: list[str]) -> None:
    import docker.errors

    for info in docker_client.api.containers(all=True, filters={"label": labels}):
        try:
            docker_client.api.remove_container(info["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            # A pod worker may be removing the same container right now: the engine says 409; it goes anyway.
            if e.status_code != 409:
                raise
    for net in docker_client.api.networks(filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_network(net["Id"])


def docker_error(e: Exception) -> str:
    explanation = getattr(e, "explanation", None)
    text = explanation.decode() if isinstance(explanation, bytes) else explanation
    return str(text or e).strip()


def docker_time(value: str | None) -> tuple[str, float]:
    """Docker's nanosecond RFC 3339 time as the API's second-precision form and as epoch seconds."""
    if not value or value.startswith("0001-"):
        return "", 0.0
    trimmed = re.sub(r"\.(\d{1,6})\d*", r".\1", value.replace("Z", "+00:00"))
    moment = datetime.fromisoformat(trimmed)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), moment.timestamp()


# ContainerConfig fields passed only when set, so the engine's and the image's defaults apply otherwise.
_OPTIONAL = (
    "cap_drop",
    "cap_add",
    "security_opt",
    "entrypoint",
    "command",
    "user",
    "group_add",
    "mem_limit",
    "nano_cpus",
)


def _create_kwargs(config: ContainerConfig) -> dict[str, Any]:
    """docker-py's ``containers.create`` keywords; optional ones only when set."""
    from docker.types import Mount

    out: dict[str, Any] = {
        "environment": config.environment,
        "network_mode": f"container:{config.sandbox_id}",
        "mounts": [
            Mount(
                m.target,
                m.source,
                type=m.type,
                read_only=m.read_only,
                no_copy=m.no_copy,
                tmpfs_mode=m.tmpfs_mode,
            )
            for m in config.mounts
        ],
        "working_dir": config.working_dir,
        "tty": config.tty,
        "stdin_open": config.stdin_open,
        "read_only": config.read_only,
        "privileged": config.privileged,
    }
    for name in _OPTIONAL:
        value = getattr(config, name)
        if value is not None:
            out[name] = value
    return out


def _instance(info: dict[str, Any]) -> Instance:
    state = info["State"]
    started, _ = docker_time(state.get("StartedAt"))
    finished, finished_epoch = docker_time(state.get("FinishedAt"))
    return Instance(
        id=info["Id"],
        image=info["Image"],
        running=bool(state.get("Running")),
        spec_hash=info["Config"]["Labels"].get(LABEL_HASH),
        started_at=started,
        finished_at=finished,
        finished_epoch=finished_epoch,
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
    )


def image_ref(attrs: dict[str, Any]) -> str:
    """The kubelet's imageID: ``docker-pullable://repo@sha256:…`` when pulled, else ``docker://<id>``."""
    digests = attrs.get("RepoDigests") or []
    if digests:
        return f"docker-pullable://{digests[0]}"
    return f"docker://{attrs.get('Id', '')}"


def _image(attrs: dict[str, Any]) -> Image:
    user = (attrs.get("Config") or {}).get("User") or ""
    return Image(id=str(attrs.get("Id", "")), ref=image_ref(attrs), size=attrs.get("Size", 0), user=user)


# --- the runtime --------------------------------------------------------------------------------------


class DockerRuntime:
    """One kubelet's view of the engine: the objects of one home and cluster, on the cluster's network.

    ``registry_auth``: registry host -> ``{"username", "password"}``, read at each pull (tests add to it).
    """

    def __init__(
        self,
        docker: docker.DockerClient,
        registry_auth: dict[str, dict[str, str]],
        home_id: str,
        cluster: str,
    ) -> None:
        self.docker = docker
        self.registry_auth = registry_auth
        self.home_id = home_id
        self.cluster = cluster
        self.network_name = f"sandbox-{home_id}-{cluster}"
        self._lock = threading.Lock()  # the network and the pause image are made once, by one worker
        self._network_ready = False

    # Listing and removing ----------------------------------------------------------------------------

    def _list(self, labels: list[str]) -> list[Listed]:
        found = self.docker.api.containers(all=True, filters={"label": labels})
        return [Listed(c["Id"], c["Labels"], c["State"] == "running") for c in found]

    def pod_containers(self, uid: str) -> list[Listed]:
        """Every container (pause and app, any instance) of the pod with this uid."""
        return self._list([f"{LABEL_HOME}={self.home_id}", f"{LABEL_POD_UID}={uid}"])

    def named_containers(self, namespace: str, name: str, container: str | None = None) -> list[Listed]:
        """The containers of the pod with this name in this cluster (of one container when given)."""
        labels = [
            f"{LABEL_HOME}={self.home_id}",
            f"{LABEL_CLUSTER}={self.cluster}",
            f"{LABEL_POD_NAMESPACE}={namespace}",
            f"{LABEL_POD_NAME}={name}",
        ]
        if container is not None:
            labels.append(f"{LABEL_CONTAINER_NAME}={container}")
        return self._list(labels)

    def remove(self, cid: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.docker.api.remove_container(cid, force=True, v=True)

    def remove_by_name(self, name: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            info = self.docker.api.inspect_container(name)
            self.remove(info["Id"])

    def remove_cluster(self) -> None:
        """Every container and the network of this kubelet; Docker volumes of claims stay."""
        _remove_labelled(self.docker, [f"{LABEL_HOME}={self.home_id}", f"{LABEL_CLUSTER}={self.cluster}"])
        self._network_ready = False

    def stop(self, cid: str, timeout: int, *, quiet: bool = False) -> None:
        """The image's stop signal (SIGTERM), SIGKILL after ``timeout``; ``quiet`` ignores engine errors."""
        import docker.errors

        ignored: tuple[type[Exception], ...] = (docker.errors.NotFound,)
        if quiet:
            ignored = (docker.errors.NotFound, docker.errors.APIError)
        with contextlib.suppress(*ignored):
            self.docker.api.stop(cid, timeout=timeout)

    def inspect(self, cid: str, *, missing_ok: bool = True) -> Instance | None:
        """The container's state; None when it is gone (an error unless ``missing_ok``)."""
        import docker.errors

        try:
            return _instance(self.docker.api.inspect_container(cid))
        except docker.errors.NotFound:
            if not missing_ok:
                raise
            return None

    def logs(self, cid: str, tail: int) -> str:
        raw = self.docker.api.logs(cid, stdout=True, stderr=True, tail=tail if tail >= 0 else "all")
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    # The pod sandbox ---------------------------------------------------------------------------------

    def ensure_network(self) -> str:
        """The cluster's Docker network, created with a fixed subnet on first use."""
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        with self._lock:
            if self._network_ready:
                return self.network_name
            existing = [
                n
                for n in self.docker.api.networks(names=[self.network_name])
                if n["Name"] == self.network_name
            ]
            if not existing:
                labels = {LABEL_HOME: self.home_id, LABEL_CLUSTER: self.cluster}
                # Let Docker choose a free range (it knows the host's routes), then pin it: connecting a
                # container with a chosen IP needs a user-configured subnet.
                probe = self.docker.api.create_network(
                    f"{self.network_name}-probe", driver="bridge", labels=labels
                )
                try:
                    config = self.docker.api.inspect_network(probe["Id"])["IPAM"]["Config"][0]
                finally:
                    self.docker.api.remove_network(probe["Id"])
                pool = IPAMPool(subnet=config["Subnet"], gateway=config.get("Gateway"))
                try:
                    self.docker.api.create_network(
                        self.network_name,
                        driver="bridge",
                        labels=labels,
                        ipam=IPAMConfig(pool_configs=[pool]),
                    )
                except docker.errors.APIError as e:
                    if "already exists" not in docker_error(e):
                        raise
            self._network_ready = True
            return self.network_name

    def ensure_pause_image(self) -> str:
        """The pause image, built once from the host's static busybox."""
        from sandbox.kube.pgimage import RootFS, build_image, image_recipe, static_busybox

        with self._lock:
            recipe = hashlib.sha256(
                f"{PAUSE_SCRIPT}\n{static_busybox().stat().st_size}".encode()
            ).hexdigest()[:16]
            if image_recipe(self.docker, PAUSE_IMAGE) == recipe:
                return PAUSE_IMAGE
            rootfs = RootFS()
            rootfs.add_host_file(static_busybox(), "/bin/busybox")
            rootfs.add_symlink("/bin/sh", "busybox")
            rootfs.add_symlink("/bin/sleep", "busybox")
            build_image(self.docker, PAUSE_IMAGE, rootfs, ['CMD ["/bin/sh"]'], recipe)
            return PAUSE_IMAGE

    def run_sandbox(
        self, name: str, hostname: str, labels: dict[str, str], aliases: tuple[str, ...]
    ) -> tuple[str, str]:
        """Create and start a pause container on the cluster's network; returns its id and the pod IP."""
        network = self.ensure_network()
        image = self.ensure_pause_image()
        self.remove_by_name(name)
        api = self.docker.api
        endpoint = api.create_endpoint_config(aliases=list(aliases) or None)
        created = api.create_container(
            image,
            command=["/bin/sh", "-c", PAUSE_SCRIPT],
            name=name,
            hostname=hostname,
            labels=labels,
            host_config=api.create_host_config(network_mode=network, init=False),
            networking_config=api.create_networking_config({network: endpoint}),
            stop_signal="SIGTERM",
        )
        api.start(created["Id"])
        info = api.inspect_container(created["Id"])
        return created["Id"], info["NetworkSettings"]["Networks"][network]["IPAddress"]

    def sandbox_address(self, cid: str) -> tuple[str | None, list[str]]:
        """A running pause container's pod IP and network aliases (Docker adds its short id to them)."""
        info = self.docker.api.inspect_container(cid)
        net = info["NetworkSettings"]["Networks"].get(self.network_name) or {}
        return net.get("IPAddress") or None, list(net.get("Aliases") or [])

    def reattach(self, cid: str, aliases: tuple[str, ...], ip: str | None) -> None:
        """Aliases are fixed at connect time in Docker, so re-connect the pause container with the same IP."""
        self.docker.api.disconnect_container_from_network(cid, self.network_name, force=True)
        self.docker.api.connect_container_to_network(
            cid, self.network_name, aliases=list(aliases) or None, ipv4_address=ip
        )

    # App containers ----------------------------------------------------------------------------------

    def create(self, image_id: str, name: str, labels: dict[str, str], config: ContainerConfig) -> str:
        """Create (not start) a container; :class:`RuntimeFailure` when the engine refuses."""
        import docker.errors

        try:
            return str(
                self.docker.containers.create(image_id, name=name, labels=labels, **_create_kwargs(config)).id
            )
        except docker.errors.APIError as e:
            raise RuntimeFailure(docker_error(e)) from e

    def start(self, cid: str) -> None:
        import docker.errors

        try:
            self.docker.api.start(cid)
        except docker.errors.APIError as e:
            raise RuntimeFailure(docker_error(e)) from e

    def exec(self, cid: str, command: list[str]) -> tuple[int | None, bytes]:
        """Run ``command`` in the container; its exit code and merged output."""
        import docker.errors

        try:
            exec_id = self.docker.api.exec_create(cid, command, stdout=True, stderr=True)["Id"]
            output = self.docker.api.exec_start(exec_id)
            code = self.docker.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as e:
            raise RuntimeFailure(docker_error(e)) from e
        return code, output if isinstance(output, bytes) else str(output).encode()

    # Images ------------------------------------------------------------------------------------------

    def find_image(self, reference: str) -> Image | None:
        import docker.errors

        try:
            return _image(self.docker.images.get(reference).attrs)
        except docker.errors.ImageNotFound:
            return None

    def image(self, reference: str) -> Image:
        """An image that must be present (just pulled, or the one a container was made from)."""
        return _image(self.docker.images.get(reference).attrs)

    def pull(self, image: str) -> str | None:
        """Pull with the registry's credentials; returns the error message, or None when it worked."""
        import docker.errors

        host = registry_host(image)
        auth = self.registry_auth.get(host)
        if auth is None and host == "docker.io":
            auth = self.registry_auth.get("index.docker.io") or self.registry_auth.get(
                "https://index.docker.io/v1/"
            )
        repo, tag, digest = split_image(image)
        reference = digest or tag or "latest"
        try:
            for line in self.docker.api.pull(repo, tag=reference, stream=True, decode=True, auth_config=auth):
                if isinstance(line, dict) and line.get("error"):
                    return str(line["error"]).strip()
        except docker.errors.APIError as e:
            return docker_error(e)
        except docker.errors.DockerException as e:
            return str(e)
        return None

    # Volumes -----------------------------------------------------------------------------------------

    def volume_path(self, volume: str) -> Path:
        """Where a Docker volume lives on the host (to bind a sub-folder of it)."""
        return Path(self.docker.api.inspect_volume(volume)["Mountpoint"])

    def ensure_volume(self, volume: str, claim: str, namespace: str) -> None:
        """A claim's Docker volume, made as a fresh GKE persistent disk is: ext4, ``lost+found`` at its root.

        That folder is why a database must keep its data in a subdirectory of the mount on GKE; the sandbox
        reproduces it so the same mistake fails here too.
        """
        import docker.errors

        try:
            self.docker.api.inspect_volume(volume)
            return
        except docker.errors.NotFound:
            pass
        labels = {
            LABEL_HOME: self.home_id,
            LABEL_CLUSTER: self.cluster,
            "sandbox.kube/claim": f"{namespace}/{claim}",
        }
        self.docker.api.create_volume(volume, labels=labels)
        image = self.ensure_pause_image()
        helper = self.docker.api.create_container(
            image,
            command=["/bin/busybox", "mkdir", "-m", "700", "/disk/lost+found"],
            labels={LABEL_HOME: self.home_id, LABEL_CLUSTER: self.cluster},
            host_config=self.docker.api.create_host_config(binds={volume: {"bind": "/disk", "mode": "rw"}}),
        )
        try:
            self.docker.api.start(helper["Id"])
            self.docker.api.wait(helper["Id"], timeout=30)
        finally:
            self.docker.api.remove_container(helper["Id"], force=True, v=True)
