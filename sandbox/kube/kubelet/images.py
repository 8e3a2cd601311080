"""Image references and the kubelet's image manager: whether to pull, the pull back-off, its reasons.

:func:`ensure_image` is the kubelet's ``EnsureImageExists``: it honours ``imagePullPolicy`` (defaulted as
Kubernetes does), pulls through the runtime, and on failure leaves the container waiting with
``ErrImagePull`` and then ``ImagePullBackOff`` while the back-off runs, with the kubelet's events
(Pulling, Pulled, Failed, BackOff, ErrImageNeverPull). Used by ``containers.py`` before a container is
created; ``runtime.py`` uses the reference helpers to pull with the right registry's credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import go_duration

if TYPE_CHECKING:
    from .record import ContainerRecord, Recorder
    from .runtime import DockerRuntime


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repository, tag, digest); the repository keeps its registry host."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag, digest or None
    return ref, None, digest or None


def registry_host(image: str) -> str:
    """The registry an image reference points at (``docker.io`` when the first part is not a host)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: ``Always`` for ``:latest`` or no tag, ``IfNotPresent`` otherwise."""
    _, tag, digest = split_image(image)
    if digest:
        return "IfNotPresent"
    return "Always" if tag in (None, "latest") else "IfNotPresent"


def ensure_image(
    runtime: DockerRuntime, rec: ContainerRecord, recorder: Recorder, publish: Callable[[], None]
) -> str | None:
    """The image id to run, pulling as ``imagePullPolicy`` says; None while waiting (``rec.waiting`` set).

    ``publish`` is called before a pull, so the status says ``ContainerCreating`` while it lasts.
    """
    image = rec.spec.get("image") or ""
    policy = rec.spec.get("imagePullPolicy") or default_pull_policy(image)
    present = runtime.find_image(image)
    if policy == "Never" and present is None:
        message = f'Container image "{image}" is not present with pull policy of Never'
        rec.waiting = ("ErrImageNeverPull", message)
        recorder.event_once(f"never:{rec.name}", "ErrImageNeverPull", message, "Warning", rec.field_path)
        return None
    if present is not None and policy != "Always":
        recorder.event(
            "Pulled", f'Container image "{image}" already present on machine', "Normal", rec.field_path
        )
        rec.image_id = present.ref
        return present.id
    assert rec.pull_backoff is not None
    now = time.time()
    if rec.pull_backoff.in_backoff_since_update(now):
        rec.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
        if rec.pull_event_for != rec.pull_backoff.last_update:
            rec.pull_event_for = rec.pull_backoff.last_update or 0.0
            recorder.event("BackOff", f'Back-off pulling image "{image}"', "Normal", rec.field_path)
            recorder.event("Failed", "Error: ImagePullBackOff", "Warning", rec.field_path)
        return None
    recorder.event("Pulling", f'Pulling image "{image}"', "Normal", rec.field_path)
    rec.waiting = ("ContainerCreating", "")
    publish()
    began = time.monotonic()
    error = runtime.pull(image)
    if error is not None:
        rec.pull_backoff.next(time.time())
        rec.waiting = ("ErrImagePull", error)
        recorder.event("Failed", f'Failed to pull image "{image}": {error}', "Warning", rec.field_path)
        recorder.event("Failed", "Error: ErrImagePull", "Warning", rec.field_path)
        return None
    took = go_duration(time.monotonic() - began)
    pulled = runtime.image(image)
    recorder.event(
        "Pulled",
        f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
        f"Image size: {pulled.size} bytes.",
        "Normal",
        rec.field_path,
    )
    rec.image_id = pulled.ref
    return pulled.id
