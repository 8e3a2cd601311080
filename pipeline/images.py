"""Image references: what an image is called, how its tag and digest are checked, and what a tag says.

One place for the grammar that several stages share: ``build.py`` tags what it builds with
:func:`source_tag`; ``release.py`` parses ``--image`` with :func:`parse` and learns the source commit
from a tag with :func:`commit_of_tag`; ``overlays.py`` pins an :class:`Image` as a kustomize ``images:``
entry; the smoke stage checks that ``/version`` serves :func:`commit_of_tag`. No client library here.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from .errors import ConfigError

# Docker's own grammar for a tag (distribution/reference).
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# distribution/reference's name: an optional registry host[:port], then lower-case path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
)
REPOSITORY = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*")
# The tags this pipeline builds: sha-<7 to 40 hex digits of the source commit>, -dirty when uncommitted.
SOURCE_TAG = re.compile(r"sha-([0-9a-f]{7,40})(-dirty)?")


@dataclass(frozen=True)
class Image:
    repository: str  # registry host included: docker.io/campus/backend
    tag: str
    digest: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """The reference Kubernetes runs: immutable once a digest is known."""
        return f"{self.ref}@{self.digest}" if self.digest else self.ref

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Image:
        return cls(**json.loads(text))


def check_tag(tag: str) -> str:
    if not TAG.fullmatch(tag):
        raise ConfigError(
            f"{tag!r} is not a valid Docker tag",
            "Use letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'",
        )
    return tag


def check_repository(repository: str, given: str = "") -> str:
    """``repository`` (registry host included) in Docker's grammar; ``given`` is what the user wrote."""
    if len(repository) > 255 or not REPOSITORY.fullmatch(repository):
        raise ConfigError(
            f"{(given or repository)[:100]!r} does not name a valid image repository",
            "Give it as [registry[:port]/]namespace/name:tag, the name in lower case",
        )
    return repository


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ConfigError(f"{digest!r} is not an image digest", "Give it as sha256:<64 hex digits>")
    return digest


def source_tag(commit: str, dirty: bool) -> str:
    """``sha-<7 hex>``, marked when built from uncommitted changes so it is never mistaken for the commit."""
    return f"sha-{commit[:7]}" + ("-dirty" if dirty else "")


def commit_of_tag(tag: str) -> str | None:
    """The (short) source commit a ``sha-`` tag names, or None for any other tag."""
    match = SOURCE_TAG.fullmatch(tag)
    return match.group(1) if match else None


def parse(ref: str, *, default_repository: str, registry_host: str) -> Image:
    """``[registry/]repo:tag[@sha256:…]``, or a bare tag of ``default_repository``."""
    ref = ref.strip()
    name, _, digest = ref.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        repository, _, tag = name.rpartition(":")
    else:
        repository, tag = (default_repository, name) if "/" not in name else (name, "")
    if not tag:
        raise ConfigError(f"--image {ref!r} has no tag", "Give it as repository:tag[@sha256:...]")
    first = repository.split("/")[0]
    # "team/backend" is Docker Hub shorthand; a first part with a dot or a port is a registry host.
    if "/" in repository and "." not in first and ":" not in first:
        repository = f"{registry_host}/{repository}"
    check_repository(repository, f"--image {ref}")
    check_tag(tag)
    return Image(repository, tag, check_digest(digest) if digest else None)
