"""Render stage: turn a kustomize directory into the list of Kubernetes objects it stands for.

This is the pipeline's only border with kustomize. It runs ``kustomize build`` (or ``kubectl kustomize``
where no standalone kustomize is installed), parses the YAML it prints and translates its failures into
:class:`~pipeline.errors.RenderError` with one line a user can act on. Its neighbours: ``validate``
checks what we render here before anything is committed, ``overlays`` edits the kustomizations we read,
and ``apply`` sends the rendered text to a cluster.

Besides rendering, it knows how a kustomization is laid out on disk (:func:`kustomization_dirs`), which
``validate`` uses to tell an overlay from a base and to find files kept next to a kustomization.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import RenderError

log = logging.getLogger(__name__)

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Fields of a kustomization that may name other kustomization directories (`bases` is the old name).
_NESTING_FIELDS = ("resources", "components", "bases")
# Generous: kustomize renders in well under a second; this only catches a hung process.
_TIMEOUT_SECONDS = 120

# kubectl prints its error as a klog line: E1124 23:16:58.173902 5978 run.go:72] "command failed" err="…".
_KLOG_ERR = re.compile(r'err="((?:[^"\\]|\\.)*)"')
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Rendered:
    """What kustomize printed for one directory: the manifests and the warnings it wrote to stderr."""

    directory: Path
    text: str
    warnings: tuple[str, ...] = ()

    @property
    def objects(self) -> list[dict[str, Any]]:
        return parse_objects(self.text, self.directory)


@functools.cache
def find_kustomize(search_path: str | None = None) -> tuple[str, ...]:
    """The command that renders a directory: ``kustomize build`` if on PATH, else ``kubectl kustomize``.

    Looked up once per search path (``None``: the process's PATH), since every render needs it.
    """
    standalone = shutil.which("kustomize", path=search_path)
    if standalone:
        return (standalone, "build")
    kubectl = shutil.which("kubectl", path=search_path)
    if kubectl:
        return (kubectl, "kustomize")
    raise RenderError("no kustomize found on PATH", "Install kubectl or kustomize")


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, or ``None`` if it is not a kustomize directory."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _yaml_error(path: Path, e: yaml.YAMLError) -> RenderError:
    """A RenderError naming the file and line of a YAML syntax error."""
    mark = (e.problem_mark or e.context_mark) if isinstance(e, yaml.MarkedYAMLError) else None
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    problem = e.problem or e.context if isinstance(e, yaml.MarkedYAMLError) else str(e)
    problem = " ".join(str(problem or "malformed YAML").split())
    return RenderError(f"{where}: malformed YAML ({problem})", "Fix the indentation or quoting on that line")


def _load_yaml(path: Path, *, stream: bool = False) -> Any:
    """Parse a YAML file (all documents if ``stream``); a syntax error names the file and line."""
    try:
        text = path.read_text()
        return (
            list(yaml.load_all(text, Loader=_YAML_LOADER)) if stream else yaml.load(text, Loader=_YAML_LOADER)
        )
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None


def _local_entries(directory: Path, kustomization: Any) -> list[Path]:
    if not isinstance(kustomization, dict):
        return []
    entries: list[Path] = []
    for field in _NESTING_FIELDS:
        listed = kustomization.get(field)
        for entry in listed if isinstance(listed, list) else ():
            # Remote bases (URLs, git@…) cannot be inspected offline; kustomize itself fetches them.
            if isinstance(entry, str) and "://" not in entry and not entry.startswith("git@"):
                entries.append((directory / entry).resolve())
    return entries


def kustomization_dirs(directory: Path) -> list[Path]:
    """``directory`` and every local kustomization it builds on, depth first, each once.

    A kustomization with more than one directory here is an overlay (it refers to another
    kustomization); one with just itself is a base. Raises RenderError naming the file and line of a
    kustomization whose YAML is malformed.
    """
    seen: list[Path] = []

    def visit(current: Path) -> None:
        current = current.resolve()
        if current in seen:
            return
        path = kustomization_file(current)
        if path is None:
            return
        seen.append(current)
        for entry in _local_entries(current, _load_yaml(path)):
            if entry.is_dir():
                visit(entry)

    visit(directory)
    return seen


def _diagnose(directory: Path) -> None:
    """Raise a precise RenderError if a kustomization or a resource file in the tree is malformed YAML.

    kustomize says "yaml: line 2: did not find expected key" without naming the kustomization it was
    reading; we re-read them (and the resource files they list) to name the file.
    """
    for current in kustomization_dirs(directory):
        path = kustomization_file(current)
        assert path is not None  # kustomization_dirs only returns directories that have one
        for entry in _local_entries(current, _load_yaml(path)):
            if entry.is_file():
                try:
                    _load_yaml(entry, stream=True)
                except (OSError, UnicodeDecodeError):
                    continue


def _kustomize_error(stderr: str) -> str:
    """kustomize's own first error line, unwrapped from kubectl's log format."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("#")]
    for line in lines:
        match = _KLOG_ERR.search(line)
        if match:
            try:
                message = str(json.loads(f'"{match.group(1)}"'))
            except json.JSONDecodeError:
                message = match.group(1)
            break
        if line.startswith("Error:"):
            message = line.removeprefix("Error:").strip()
            break
    else:
        message = lines[0] if lines else "kustomize exited with an error and printed nothing"
    # kustomize tries each resource as a file, then as a directory, and glues both failures together;
    # the second ("must build at directory") only repeats the first.
    message = message.split(": must build at directory:")[0].rstrip("'")
    return message.splitlines()[0] if message else message


def kustomize_build(directory: Path) -> Rendered:
    """Run kustomize on ``directory``; the rendered text plus any warnings kustomize printed."""
    directory = Path(directory)
    kfile = kustomization_file(directory)
    if kfile is None:
        raise RenderError(
            f"rendering {directory}: no kustomization.yaml there",
            "Pass a kustomize directory such as overlays/staging",
        )
    command = [*find_kustomize(), str(directory)]
    # kubectl reads no cluster for `kustomize`; keep its locale stable so messages parse the same way.
    env = {**os.environ, "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=_TIMEOUT_SECONDS, env=env
        )
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"rendering {directory}: kustomize did not finish in {_TIMEOUT_SECONDS}s",
            f"Run `{' '.join(command)}` by hand to see where it hangs (a remote base?)",
        ) from None
    except OSError as e:
        raise RenderError(
            f"rendering {directory}: cannot run {command[0]} ({e})", "Install kubectl or kustomize"
        ) from None
    warnings = tuple(
        line.lstrip("# ").strip()
        for line in proc.stderr.splitlines()
        if line.lstrip().startswith("# Warning") or line.lstrip().startswith("Warning")
    )
    if proc.returncode != 0:
        _diagnose(directory)
        raise RenderError(
            f"rendering {directory} ({kfile.name}): {_kustomize_error(proc.stderr)}",
            f"Fix it and check with `{' '.join(command)}`",
        )
    for warning in warnings:
        log.info("kustomize %s: %s", directory, warning)
    return Rendered(directory=directory, text=proc.stdout, warnings=warnings)


def parse_objects(text: str, source: Path | str = "<kustomize output>") -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream, skipping empty documents."""
    try:
        documents = list(yaml.load_all(text, Loader=_YAML_LOADER))
    except yaml.YAMLError as e:
        raise RenderError(
            f"parsing the output of kustomize for {source}: {e}", "Report this as a bug"
        ) from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise RenderError(
                f"parsing the output of kustomize for {source}: a document is a {type(document).__name__}, "
                "not an object",
                "Check the resource files for stray text",
            )
        objects.append(document)
    return objects


def render_text(directory: Path) -> str:
    """The manifests ``directory`` renders to, as kustomize prints them (what ``apply`` sends)."""
    return kustomize_build(directory).text


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``directory`` renders to, in kustomize's order."""
    return kustomize_build(directory).objects
