"""Overlay stage: pin the backend image in ``overlays/<env>/kustomization.yaml``.

The edit is surgical: ruamel.yaml's round-trip parser tells where the ``images:`` entry's values sit, and
only those characters are rewritten, so a tag bump is a one-line diff and every comment, quote style and
indentation of the file stays as the team wrote it (Flux's image setters work the same way). The result
is parsed again and checked before it is written. Neighbours: ``gitops.publish`` calls :func:`pin` inside
its own clone; ``release.py`` builds the :class:`Pin` from a ``build.Image``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from .errors import OverlayError

KUSTOMIZATION = "kustomization.yaml"


@dataclass(frozen=True)
class Pin:
    """One kustomize ``images:`` entry: which placeholder is replaced by which reference."""

    name: str
    new_name: str
    tag: str
    digest: str | None = None

    @property
    def ref(self) -> str:
        base = f"{self.new_name}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base


@dataclass(frozen=True)
class Bump:
    file: str  # relative to the repository root
    old: Pin | None
    new: Pin


def kustomization(overlay: Path) -> Path:
    path = overlay / KUSTOMIZATION if overlay.is_dir() or not overlay.suffix else overlay
    if not path.is_file():
        raise OverlayError(f"no {KUSTOMIZATION} in {overlay}", "Check the environment's overlay path")
    return path


def _parse(text: str, where: Path) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise OverlayError(
            f"{where}: malformed YAML{line} ({e.problem})", "Fix the file and try again"
        ) from None


def _images(doc: Any, where: Path) -> CommentedSeq | None:
    if doc is None:
        return None
    if not isinstance(doc, CommentedMap):
        raise OverlayError(f"{where}: not a kustomization (top level is not a mapping)", "Fix the file")
    images = doc.get("images")
    if images is not None and not isinstance(images, CommentedSeq):
        raise OverlayError(f"{where}: `images:` must be a list", "Fix the file")
    return images


def _entry(images: CommentedSeq | None, name: str, where: Path) -> CommentedMap | None:
    found = [item for item in images or () if isinstance(item, CommentedMap) and item.get("name") == name]
    if len(found) > 1:
        # kustomize applies one of them and keeps the other: a bump would edit one and leave a stale pin.
        lines = " and ".join(str(item.lc.line + 1) for item in found[:2])
        raise OverlayError(
            f"{where}: two `images:` entries for {name} (lines {lines})",
            "Keep one entry and delete the other",
        )
    return found[0] if found else None


def read_pin(path: Path, name: str) -> Pin | None:
    """The current pin for ``name`` in a kustomization file, or None when it has none."""
    entry = _entry(
        _images(
            _parse(
                path.read_text(),
                path,
            ),
            path,
        ),
        name,
        path,
    )
    if entry is None or "newTag" not in entry:
        return None
    return Pin(name, str(entry.get("newName", name)), str(entry["newTag"]), _opt(entry.get("digest")))


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _scalar(value: str, like: str) -> str:
    """``value`` written as the old token was (quoted or plain), quoted anyway when YAML would retype it."""
    if like[:1] in ("'", '"'):
        return f"{like[0]}{value}{like[0]}"
    parsed = YAML(typ="safe").load(io.StringIO(f"k: {value}"))
    return value if parsed == {"k": value} else f'"{value}"'


def _token_end(line: str, col: int) -> int:
    """Where the scalar starting at ``col`` ends, leaving any trailing comment in place."""
    if line[col : col + 1] in ("'", '"'):
        return line.index(line[col], col + 1) + 1
    comment = re.search(r"\s#", line[col:])
    end = col + comment.start() if comment else len(line.rstrip("\r\n"))
    return len(line[:end].rstrip())


def _replace(lines: list[str], entry: CommentedMap, key: str, value: str) -> None:
    row, col = entry.lc.value(key)
    line = lines[row]
    end = _token_end(line, col)
    lines[row] = line[:col] + _scalar(value, line[col:end]) + line[end:]


def _insert_after(lines: list[str], entry: CommentedMap, after: str, key: str, value: str) -> None:
    row, col = entry.lc.key(after)
    newline = "\n" if lines[row].endswith("\n") else ""
    if not newline:
        lines[row] += "\n"
    lines.insert(row + 1, f"{' ' * col}{key}: {_scalar(value, '')}\n")


def _delete(lines: list[str], entry: CommentedMap, key: str) -> None:
    row, _ = entry.lc.key(key)
    del lines[row]


def _append_entry(text: str, doc: Any, pin: Pin) -> str:
    """Add a whole ``images:`` entry (a first pin), indented like the entries already there."""
    fields = [f"newName: {pin.new_name}", f"newTag: {_scalar(pin.tag, '')}"]
    if pin.digest:
        fields.append(f"digest: {pin.digest}")
    if not text.endswith("\n"):
        text += "\n"
    images = doc.get("images") if doc is not None else None
    if not images:
        block = [f"- name: {pin.name}", *(f"  {f}" for f in fields)]
        if images is None:
            return text + "images:\n" + "".join(f"{b}\n" for b in block)
        row = doc.lc.key("images")[0]
        lines = text.splitlines(keepends=True)
        lines[row] = lines[row].replace("[]", "").rstrip() + "\n"
        lines[row + 1 : row + 1] = [f"{b}\n" for b in block]
        return "".join(lines)
    lines = text.splitlines(keepends=True)
    row, col = images.lc.item(len(images) - 1)
    dash = lines[row].rfind("-", 0, col)
    end = row + 1
    # The last entry goes on while lines are more indented than its dash (or blank).
    while end < len(lines) and (lines[end].startswith(" " * (dash + 1)) or not lines[end].strip()):
        end += 1
    block = [f"{' ' * dash}- name: {pin.name}", *(f"{' ' * col}{f}" for f in fields)]
    lines[end:end] = [f"{b}\n" for b in block]
    return "".join(lines)


def render_pin(text: str, where: Path, pin: Pin) -> str:
    """``text`` with ``pin`` applied; unchanged text when the pin is already there."""
    doc = _parse(text, where)
    entry = _entry(_images(doc, where), pin.name, where)
    if entry is None:
        return _append_entry(text, doc, pin)
    lines = text.splitlines(keepends=True)
    # Bottom-up, so that inserting or deleting a line leaves the positions still to edit valid.
    edits: list[tuple[int, str]] = []
    if str(entry.get("newName", pin.name)) != pin.new_name:
        edits.append((entry.lc.key("newName")[0] if "newName" in entry else -1, "newName"))
    if "newTag" not in entry or str(entry["newTag"]) != pin.tag:
        edits.append((entry.lc.key("newTag")[0] if "newTag" in entry else -1, "newTag"))
    if _opt(entry.get("digest")) != pin.digest:
        edits.append((entry.lc.key("digest")[0] if "digest" in entry else -1, "digest"))
    for _, key in sorted(edits, reverse=True):
        value = {"newName": pin.new_name, "newTag": pin.tag, "digest": pin.digest}[key]
        if key in entry and value is not None:
            _replace(lines, entry, key, value)
        elif key in entry:
            _delete(lines, entry, key)
        elif value is not None:
            after = {"newName": "name", "newTag": "newName" if "newName" in entry else "name"}.get(
                key, "newTag"
            )
            _insert_after(lines, entry, after if after in entry else "name", key, value)
    return "".join(lines)


def pin(path: Path, new: Pin, relative_to: Path) -> Bump | None:
    """Write ``new`` into the kustomization at ``path``; None when it was already pinned so."""
    text = path.read_text()
    old = read_pin(path, new.name)
    if old == new:
        return None
    result = render_pin(text, path, new)
    check = _entry(_images(_parse(result, path), path), new.name, path)
    got = (
        None
        if check is None
        else Pin(
            new.name, str(check.get("newName", new.name)), str(check.get("newTag")), _opt(check.get("digest"))
        )
    )
    if got != new:
        raise OverlayError(f"{path}: could not pin {new.ref} without rewriting the file", "Edit it by hand")
    path.write_text(result)
    return Bump(str(path.relative_to(relative_to)), old, new)
