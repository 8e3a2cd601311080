"""The application's Secret: built at deploy time from environment variables, never from git.

``pipeline.toml``'s ``[secret]`` names its keys and the variables holding their values; ``apply.py`` adds
the Secret this makes to the set it applies. Values are never printed, logged, or put in an exception:
a missing variable is named, its value never is.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from .base import Obj
from .config import Settings
from .errors import SecretEnvMissing


@dataclass(frozen=True)
class SecretSpec:
    """The application's Secret, made at deploy time from environment variables (never from git)."""

    name: str
    # Secret key -> the environment variable holding its value, e.g. POSTGRES_PASSWORD ->
    # CAMPUS_POSTGRES_PASSWORD.
    keys: Mapping[str, str]
    # Empty: the namespace most of the overlay's objects are in.
    namespace: str = ""
    type: str = "Opaque"

    def build(self, environ: Mapping[str, str], namespace: str) -> Obj:
        """The Secret object; :class:`SecretEnvMissing` naming every unset variable (never a value)."""
        missing = [var for var in self.keys.values() if not environ.get(var)]
        if missing:
            raise SecretEnvMissing(
                f"the Secret {namespace}/{self.name} needs {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not set",
                "Export them before releasing (in GitHub Actions, from repository or environment secrets)",
            )
        data = {
            key: base64.b64encode(environ[var].encode()).decode("ascii") for key, var in self.keys.items()
        }
        # `data` rather than `stringData`: the server stores and returns `data`, so a re-apply with the
        # same values compares equal and is a no-op.
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": namespace},
            "type": self.type,
            "data": data,
        }


def from_settings(settings: Settings) -> SecretSpec:
    return SecretSpec(settings.secret.name, dict(settings.secret.keys), settings.secret.namespace)
