"""Lint rule on credentials: ``plaintext-secret``.

A credential written into a ConfigMap, a container's env or a Secret's data is in git and readable by
anyone who can read the object. A key counts as a credential by its words (PASSWORD, TOKEN, ...), unless
its last word says it only points at one (..._FILE, ..._PATH). Uses :mod:`..index` and
:func:`.names.key_words`; registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..external import EXTERNAL_SECRETS_FILE
from ..findings import Issue
from ..index import Index, items, mapping
from .names import key_words

# Words that make an environment or config key a credential. "FILE"/"PATH"/"NAME" keys point at one.
_CREDENTIAL_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
)
_CREDENTIAL_SUFFIXES = ("PASSWORD", "SECRET", "TOKEN", "APIKEY")
_POINTER_WORDS = frozenset({"FILE", "PATH", "NAME", "REF", "DIR"})


def _looks_like_credential(key: str) -> bool:
    words = key_words(key)
    if not words or words[-1] in _POINTER_WORDS:
        return False
    return any(w in _CREDENTIAL_WORDS or w.endswith(_CREDENTIAL_SUFFIXES) for w in words)


def plaintext_secrets(index: Index) -> Iterator[Issue]:
    """Credentials written into manifests are in git and readable by anyone who can read the object."""
    fix = (
        "Move it to a Secret the pipeline creates from the environment at deploy time (declared in "
        f"{EXTERNAL_SECRETS_FILE}) and read it with secretKeyRef/secretRef"
    )
    for cm in index.of_kind("ConfigMap"):
        for key, value in mapping(cm.body.get("data")).items():
            if value not in (None, "") and _looks_like_credential(str(key)):
                yield Issue(
                    cm.ref,
                    f"{cm.ref}: data.{key} holds a credential in plain text (in git, readable by all). {fix}",
                )
    for template in index.templates:
        for container in template.containers(init=True):
            for var in items(container.get("env")):
                name = str(var.get("name", ""))
                if var.get("value") not in (None, "") and _looks_like_credential(name):
                    yield Issue(
                        template.owner.ref,
                        f"{template.owner.ref}: container {container.get('name')} env {name} has a literal "
                        f"value (in git, readable by all). {fix}",
                    )
    for secret in index.of_kind("Secret"):
        if secret.body.get("data") or secret.body.get("stringData"):
            yield Issue(
                secret.ref,
                f"{secret.ref} carries its values in the manifests; unless it is generated from a file kept "
                "out of git, base64 is not encryption. Create it at deploy time instead",
                "warning",
            )
