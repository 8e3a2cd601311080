"""The schema of ``pipeline.toml`` and of the environment variables that override it (msgspec).

``config.py`` reads the file with ``tomllib`` and hands the tables here. :func:`check_section` converts a
value into one of the ``Struct`` types below (strict types, ranges and patterns, unknown keys refused) and
turns the first mistake into one :class:`~pipeline.errors.ConfigError` line that names the file, the key
path, what is wrong and what to write instead::

    pipeline.toml: release.rollout_timeout must be a number of seconds > 0 (at most a day), got
    'five minutes'. Write e.g. `rollout_timeout = 300`.

:func:`check_environ` checks the ``PIPELINE_*`` and registry variables the same way, with the same types.
Every field is optional here (``UNSET``): the defaults, and why they were chosen, live once, on the
dataclasses of ``config.py``, which are built from what was set. A key that the dataclasses gain must be
added here too (``tests/pipeline/test_configschema.py`` compares both). msgspec was chosen over pydantic
because every task imports it and it costs a few milliseconds.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .errors import ConfigError

__all__ = ["UNSET", "FileTable", "check_environ", "check_name", "check_section", "set_fields"]

T = TypeVar("T")


def _text(pattern: str, description: str, example: str) -> Meta:
    """How a string type is checked (an anchored ``pattern``) and described in messages."""
    return Meta(pattern=pattern, description=description, examples=[example])


# One line of printable text: values end up in commit messages, kubeconfigs and HTTP headers.
_LINE = r"[^\x00-\x1f\x7f]"
Text = Annotated[str, _text(rf"^\S(?:{_LINE}*\S)?$", "a non-empty line of text", "campus-pipeline")]
OptionalText = Annotated[str, _text(rf"^(?:\S(?:{_LINE}*\S)?)?$", "one line of text (or empty)", "")]
Name = Annotated[
    str,
    _text(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", "a name of letters, digits, '.', '_' and '-'", "backend"),
]
Repository = Annotated[
    str,
    _text(
        r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
        'an image repository such as "namespace/name" (lower case, no registry host, no tag)',
        "campus/backend",
    ),
]
Host = Annotated[
    str,
    _text(
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
        r"(?::[0-9]{1,5})?$",
        "a registry host[:port] such as docker.io or 127.0.0.1:5000",
        "docker.io",
    ),
]
RelativePath = Annotated[
    str,
    _text(
        r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))[^\x00-\x1f\x7f]+$",
        "a path relative to the project root, without '..'",
        "backend",
    ),
]
FilePath = Annotated[str, _text(r"^[^\x00-\x1f\x7f]+$", "a file path", "/etc/ssl/certs/ca.pem")]
Branch = Annotated[
    str,
    _text(r"^(?![-/.])(?!.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]+$", "a git branch name", "main"),
]
Remote = Annotated[str, _text(r"^(?:\S+)?$", "a git URL or path without spaces (or empty for origin)", "")]
Email = Annotated[
    str, _text(r"^[^@\s<>]+@[^@\s<>]+$", "an e-mail address", "pipeline@users.noreply.github.com")
]
Url = Annotated[str, _text(r"^(?:https?://[^\s/]+(?:/\S*)?)?$", "an http(s):// URL (or empty)", "")]
# GKE's own rules: projects 6-30 characters (the sandbox's "sandbox" fits), clusters up to 40.
Project = Annotated[
    str, _text(r"^(?:[a-z][a-z0-9-]{4,28}[a-z0-9])?$", "a GCP project id (or empty)", "campus-staging")
]
Location = Annotated[
    str, _text(r"^(?:[a-z0-9]+(?:-[a-z0-9]+)*)?$", "a GCP zone or region (or empty)", "asia-south1-a")
]
Cluster = Annotated[
    str, _text(r"^(?:[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?)?$", "a GKE cluster name (or empty)", "staging")
]
EnvName = Annotated[
    str, _text(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$", "a lower-case name (letters, digits, '-')", "staging")
]
DnsLabel = Annotated[
    str,
    _text(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$", "a Kubernetes name (lower case, digits, '-')", "campus"),
]
DnsSubdomain = Annotated[
    str,
    _text(
        r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$",
        "a Kubernetes object name (lower case, digits, '-', '.')",
        "backend-core-secrets",
    ),
]
SecretKey = Annotated[
    str, _text(r"^[-._a-zA-Z0-9]{1,253}$", "a Secret key (letters, digits, '-', '_', '.')", "ADMIN_PASS")
]
EnvVar = Annotated[
    str, _text(r"^[A-Za-z_][A-Za-z0-9_]*$", "an environment variable name", "CAMPUS_ADMIN_PASS")
]
HttpPath = Annotated[
    str, _text(r"^/[^\s\x00-\x1f\x7f]*$", "a URL path starting with / and without spaces", "/healthz")
]
WebhookUrl = Annotated[str, _text(r"^https?://[^\s/]+(?:/\S*)?$", "an http(s):// URL", "")]
WebhookFormat = Annotated[str, _text(r"(?i)^(?:slack|json)$", "slack or json", "slack")]
Seconds = Annotated[float, Meta(gt=0, le=86400, description="a number of seconds > 0 (at most a day)")]
Port = Annotated[int, Meta(ge=1, le=65535, description="a port number from 1 to 65535", examples=[443])]
Status = Annotated[int, Meta(ge=100, le=599, description="an HTTP status from 100 to 599", examples=[200])]
Attempts = Annotated[int, Meta(ge=1, le=50, description="a whole number from 1 to 50", examples=[6])]
Flag = Annotated[bool, Meta(description="true or false", examples=[False])]


def _ex(*examples: object) -> Meta:
    return Meta(examples=list(examples))


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A TOML table: unknown keys are mistakes (a typo would otherwise silently keep the default)."""


class ImageTable(_Table):
    repository: Repository | UnsetType = UNSET
    kustomize_name: Name | UnsetType = UNSET
    context: RelativePath | UnsetType = UNSET
    dockerfile: Annotated[RelativePath, _ex("Dockerfile")] | UnsetType = UNSET
    prebuild: Annotated[list[Text], _ex(["sh", "build.sh"])] | UnsetType = UNSET


class RegistryTable(_Table):
    host: Host | UnsetType = UNSET


class GitOpsTable(_Table):
    remote: Remote | UnsetType = UNSET
    branch: Branch | UnsetType = UNSET
    author_name: Text | UnsetType = UNSET
    author_email: Email | UnsetType = UNSET
    push_attempts: Attempts | UnsetType = UNSET
    cache_dir: Annotated[RelativePath, _ex(".pipeline/gitops")] | UnsetType = UNSET


class CheckTable(_Table):
    name: Annotated[Text, _ex("greeting")] | UnsetType = UNSET
    path: HttpPath | UnsetType = UNSET
    expect_status: Status | UnsetType = UNSET
    expect_body: Annotated[Text, _ex("Hello")] | UnsetType = UNSET
    expect_json: (
        Annotated[dict[str, Any], Meta(description="a table", examples=[{"status": "ok"}])] | UnsetType
    ) = UNSET


class EnvironmentTable(_Table):
    overlay: Annotated[RelativePath, _ex("overlays/staging")] | UnsetType = UNSET
    protected: Flag | UnsetType = UNSET
    gke_project: Project | UnsetType = UNSET
    gke_location: Location | UnsetType = UNSET
    gke_cluster: Cluster | UnsetType = UNSET
    kube_context: Annotated[OptionalText, _ex("staging")] | UnsetType = UNSET
    # Checked one by one (check_checks), so that a message can say which check is wrong.
    smoke: (
        Annotated[list[dict[str, Any]], Meta(description="an array of tables ([[...smoke]] entries)")]
        | UnsetType
    ) = UNSET


class SecretTable(_Table):
    name: DnsSubdomain | UnsetType = UNSET
    namespace: DnsLabel | UnsetType = UNSET
    # Checked entry by entry (check_mapping), so that a message can name the key.
    keys: (
        Annotated[dict[str, Any], Meta(description="a table of Secret key = environment variable name")]
        | UnsetType
    ) = UNSET


class ReleaseTable(_Table):
    field_manager: Annotated[Name, _ex("campus-pipeline")] | UnsetType = UNSET
    rollout_timeout: Annotated[Seconds, _ex(300)] | UnsetType = UNSET
    smoke_deadline: Annotated[Seconds, _ex(60)] | UnsetType = UNSET
    lock_wait: Annotated[Seconds, _ex(600)] | UnsetType = UNSET
    lock_namespace: DnsLabel | UnsetType = UNSET
    gke_endpoint: Url | UnsetType = UNSET
    ingress_ca_bundle: Annotated[OptionalText, _ex("")] | UnsetType = UNSET
    ingress_port: Port | UnsetType = UNSET


class DatabaseTable(_Table):
    deployment: DnsSubdomain | UnsetType = UNSET
    container: DnsLabel | UnsetType = UNSET
    backend_deployment: DnsSubdomain | UnsetType = UNSET
    bucket: (
        Annotated[
            str,
            _text(
                r"^[a-z0-9{][-a-z0-9_.{}]{1,220}[a-z0-9}]$",
                "a bucket name ({env}: the environment's)",
                "campus-{env}-db-backups",
            ),
        ]
        | UnsetType
    ) = UNSET
    keep: (
        Annotated[int, Meta(ge=1, le=10000, description="a whole number of backups >= 1", examples=[20])]
        | UnsetType
    ) = UNSET
    migrations: RelativePath | UnsetType = UNSET
    migrate_timeout: Annotated[Seconds, _ex(300)] | UnsetType = UNSET
    storage_endpoint: Url | UnsetType = UNSET


class FileTable(_Table):
    """The whole file: its sections."""

    image: ImageTable | UnsetType = UNSET
    registry: RegistryTable | UnsetType = UNSET
    gitops: GitOpsTable | UnsetType = UNSET
    # Checked name by name (EnvironmentTable), so that a message can say which environment is wrong.
    environments: (
        Annotated[dict[str, Any], Meta(description="a table of [environments.NAME] tables")] | UnsetType
    ) = UNSET
    secret: SecretTable | UnsetType = UNSET
    release: ReleaseTable | UnsetType = UNSET
    database: DatabaseTable | UnsetType = UNSET


# Keys people put in the file that belong elsewhere: where they go instead. Their values are never shown.
_MISPLACED = {
    ("registry", "username"): "Credentials never go in the committed file: set DOCKERHUB_USERNAME instead",
    ("registry", "token"): "Credentials never go in the committed file: set DOCKERHUB_TOKEN instead",
    ("registry", "password"): "Credentials never go in the committed file: set DOCKERHUB_TOKEN instead",
}


class Overrides(msgspec.Struct, frozen=True, kw_only=True):
    """The environment variables that override the file (README "Configuration"), typed like the file."""

    PIPELINE_REGISTRY: Host | UnsetType = UNSET
    PIPELINE_IMAGE_REPOSITORY: Repository | UnsetType = UNSET
    PIPELINE_GITOPS_REMOTE: Remote | UnsetType = UNSET
    PIPELINE_GKE_ENDPOINT: Url | UnsetType = UNSET
    PIPELINE_GKE_PROJECT: Project | UnsetType = UNSET
    PIPELINE_GKE_LOCATION: Location | UnsetType = UNSET
    PIPELINE_INGRESS_CA_BUNDLE: FilePath | UnsetType = UNSET
    PIPELINE_INGRESS_PORT: Port | UnsetType = UNSET
    PIPELINE_STORAGE_ENDPOINT: Url | UnsetType = UNSET
    DOCKERHUB_USERNAME: Text | UnsetType = UNSET
    DOCKERHUB_TOKEN: Text | UnsetType = UNSET
    # Read by notify.py after a release: checked here so that a typo stops the release before it starts.
    PIPELINE_WEBHOOK_URL: WebhookUrl | UnsetType = UNSET
    PIPELINE_WEBHOOK_FORMAT: WebhookFormat | UnsetType = UNSET


# Never echoed in a message: the value is a credential.
SECRET_VARIABLES = frozenset({"DOCKERHUB_TOKEN", "PIPELINE_WEBHOOK_URL"})


def set_fields(table: msgspec.Struct | UnsetType) -> dict[str, Any]:
    """The fields that were given (the rest keep the dataclasses' defaults); none for an absent table."""
    if isinstance(table, UnsetType):
        return {}
    return {k: v for k, v in msgspec.structs.asdict(table).items() if v is not UNSET}


def check_section(file: str, where: tuple[str | int, ...], raw: object, table: type[T]) -> T:
    """``raw`` (a TOML value at ``where``) as ``table``; the first mistake as one ConfigError line."""
    try:
        return msgspec.convert(raw, table, strict=True)
    except msgspec.ValidationError as e:
        raise _explain(str(e), file, where, raw, table) from None


def check_name(file: str, where: tuple[str | int, ...], key: str, kind: Any) -> str:
    """A table key that is itself a value (an environment's name, a Secret key)."""
    try:
        return msgspec.convert(key, kind, strict=True)  # type: ignore[no-any-return]
    except msgspec.ValidationError:
        description, examples = _describe(kind)
        hint = f"Rename it, e.g. to {examples[0]}" if examples else "Rename it"
        raise ConfigError(f"{file}: {_dotted((*where, key))}: {key!r} is not {description}", hint) from None


def check_environ(environ: Mapping[str, str]) -> Overrides:
    """The overriding variables that are set (empty counts as unset), checked like the file's values."""
    given = {
        name: environ[name] for name in Overrides.__struct_fields__ if environ.get(name, "").strip() != ""
    }
    try:
        # Not strict: every value arrives as text, and "8443" is meant as a port.
        return msgspec.convert(given, Overrides, strict=False)
    except msgspec.ValidationError as e:
        raise _explain(str(e), "", (), given, Overrides) from None


# --- turning msgspec's message into ours --------------------------------------------------------------------

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<key>key` in `)?(?P<path>\$[^`]*)`)?$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_KINDS = {
    "float": "a number",
    "int": "a whole number",
    "str": "a string",
    "bool": "true or false",
    "object": "a table",
    "array": "an array",
    "null": "nothing",
}


def _segments(path: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for name, index in _SEGMENT.findall(path.removeprefix("$")):
        out.append(name if name else (int(index) if index.isdigit() else "..."))
    return tuple(out)


def _dotted(path: tuple[str | int, ...]) -> str:
    """``environments.staging.smoke #2: path``: TOML has no indexes, so array entries are counted from 1."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f" #{part + 1}:"
        else:
            text += ("." if text and not text.endswith(":") else " " if text else "") + part
    return text.rstrip(":")


def _unwrap(kind: Any) -> tuple[Any, list[Meta]]:
    """The type without ``| UnsetType`` and ``Annotated``, and the Meta objects it carried."""
    metas: list[Meta] = []
    while True:
        args = typing.get_args(kind)
        if typing.get_origin(kind) is Annotated:
            kind, metas = args[0], [*metas, *(m for m in args[1:] if isinstance(m, Meta))]
        elif args and UnsetType in args:
            rest = [a for a in args if a is not UnsetType]
            kind = rest[0]
        else:
            return kind, metas


def _field_type(table: Any, path: tuple[str | int, ...]) -> Any:
    kind: Any = table
    for part in path:
        kind, _ = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(part, str):
            kind = typing.get_type_hints(kind, include_extras=True).get(part, Any)
        elif typing.get_args(kind):
            kind = typing.get_args(kind)[-1]  # list[T] -> T, dict[K, V] -> V
        else:
            return Any
    return kind


def _describe(kind: Any) -> tuple[str, list[Any]]:
    base, metas = _unwrap(kind)
    description = next((m.description for m in reversed(metas) if m.description), None)
    examples = next((m.examples for m in reversed(metas) if m.examples is not None), [])
    if description is None:
        name = getattr(typing.get_origin(base) or base, "__name__", "")
        description = {"list": "an array", "dict": "a table"}.get(name, _KINDS.get(name, "a value"))
    return description, list(examples)


def _value_at(raw: object, path: tuple[str | int, ...]) -> object:
    for part in path:
        if isinstance(raw, Mapping) and isinstance(part, str):
            raw = raw.get(part)
        elif isinstance(raw, list) and isinstance(part, int) and part < len(raw):
            raw = raw[part]
        else:
            return None
    return raw


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    # Strings as Python shows them ('five minutes'), the rest as TOML writes it (true, [1, 2]).
    text = repr(value) if isinstance(value, str) else _toml(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _toml(value: object) -> str:
    """``value`` as it is written in TOML (for the "write instead" hint)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def _explain(message: str, file: str, where: tuple[str | int, ...], raw: object, table: Any) -> ConfigError:
    match = _AT.match(message)
    assert match is not None  # the pattern matches any text
    what, path = match["what"], _segments(match["path"] or "$")
    full = (*where, *path)
    if what.startswith("Object contains unknown field"):
        return _unknown(file, full, what.split("`")[1], _field_type(table, path))
    wrapped = _field_type(table, path)
    kind, _ = _unwrap(wrapped)
    name = str(full[-1]) if full else ""
    value = _value_at(raw, path)
    if not file:  # an environment variable
        description, examples = _describe(wrapped)
        shown = "(value hidden)" if name in SECRET_VARIABLES else _shown(value)
        hint = "Fix it or unset it"
        if examples and examples[0] != "" and name not in SECRET_VARIABLES:
            hint = f"Set it to e.g. {examples[0]!r}, or unset it"
        return ConfigError(f"environment variable {name} must be {description}, got {shown}", hint)
    where_text = _dotted(full) or "the file"
    if (isinstance(kind, type) and issubclass(kind, msgspec.Struct)) or typing.get_origin(kind) is dict:
        return ConfigError(
            f"{file}: {where_text} must be a table, got {_shown(value)}",
            "Write it as a table: its keys under a [header] line",
        )
    description, examples = _describe(wrapped)
    hint = "See README, section Configuration"
    if examples and name and not isinstance(full[-1], int):
        hint = f"Write e.g. `{name} = {_toml(examples[0])}`"
    return ConfigError(f"{file}: {where_text} must be {description}, got {_shown(value)}", hint)


def _unknown(file: str, path: tuple[str | int, ...], key: str, table: Any) -> ConfigError:
    base, _ = _unwrap(table)
    known = sorted(getattr(base, "__struct_fields__", ()))
    if not path:
        known = sorted(FileTable.__struct_fields__)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"Did you mean [{close[0]}]?" if close else f"Sections are: {', '.join(known)}"
        return ConfigError(f"{file}: unknown section [{key}]", hint)
    misplaced = _MISPLACED.get((str(path[-1]), key))
    if misplaced:
        return ConfigError(f"{file}: {_dotted((*path, key))} does not belong here", misplaced)
    close = difflib.get_close_matches(key, known, n=1)
    table_name = _dotted(path)
    hint = f"Did you mean {close[0]}?" if close else f"Keys of {table_name}: {', '.join(known)}"
    return ConfigError(f"{file}: unknown key {_dotted((*path, key))}", hint)
