"""Lint rule on images (``unpinned-image``), and what the other rules know about the images we run.

An image without a tag, or with :latest, may differ from node to node; a base's placeholder image is fine
unpinned but must be pinned by every overlay. The reference parsing and the knowledge of database images
(which ones hold data, where the official postgres image keeps it by major version) are here once for
:mod:`.storage`. Uses :mod:`..index`; registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Issue
from ..index import Index

# Images whose data must outlive the pod; a Delete reclaim policy under them loses that data.
DATABASE_IMAGES = ("postgres", "mysql", "mariadb", "mongo")


def image_parts(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def is_database(image: str) -> bool:
    repository = image_parts(image)[0].rsplit("/", 1)[-1]
    return any(db in repository for db in DATABASE_IMAGES)


def is_official_postgres(image: str) -> bool:
    """The official image's layout (docker.io/library/postgres and its mirrors or rebuilds)."""
    repository = image_parts(image)[0]
    return "postgres" in repository.rsplit("/", 1)[-1] and "bitnami" not in repository


def postgres_major(image: str) -> int | None:
    tag = image_parts(image)[1] or ""
    match = re.match(r"\d+", tag)
    return int(match.group()) if match else None


def unpinned_images(index: Index) -> Iterator[Issue]:
    """No tag, or :latest, means each node may run a different image; a digest or a tag pins it."""
    for template in index.templates:
        for container in template.containers(init=True):
            image = str(container.get("image", ""))
            repository, tag, digest = image_parts(image)
            if digest or (tag and tag != "latest"):
                continue
            cname, ref = container.get("name"), template.owner.ref
            if image in index.placeholder_images:
                if index.overlay:
                    yield Issue(
                        ref,
                        f"{ref}: container {cname} still runs the placeholder image {image!r}: this overlay "
                        f"does not pin it. Add an `images:` entry (name: {image}, newName, newTag or digest) "
                        "to the overlay's kustomization.yaml",
                    )
                continue
            yield Issue(
                ref,
                f"{ref}: container {cname} image {image!r} is not pinned ("
                + ("tag :latest" if tag else "no tag, so :latest")
                + f"); every node may pull a different version, and a restart can upgrade it. Pin a tag "
                f"(e.g. {repository}:<version>) or a digest",
            )
