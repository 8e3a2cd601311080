"""Golden cases for the overlay editor: input, pin and expected bytes per folder of overlay_cases/."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from pipeline import overlays
from pipeline.errors import OverlayError

CASES = Path(__file__).parent / "overlay_cases"


def _pin(case: Path) -> overlays.Pin:
    data = json.loads((case / "case.json").read_text())
    return overlays.Pin("backend", data["new_name"], data["tag"], data["digest"])


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir()))
def test_golden(case: str, tmp_path: Path) -> None:
    source = CASES / case
    path = tmp_path / "kustomization.yaml"
    path.write_text((source / "input.yaml").read_text())
    bump = overlays.pin(path, _pin(source), tmp_path)
    assert bump is not None and bump.new == _pin(source)
    assert path.read_text() == (source / "expected.yaml").read_text()
    # A second pin with the same image is a no-op: no write, no bump.
    assert overlays.pin(path, _pin(source), tmp_path) is None


def _changed_lines(before: str, after: str) -> int:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))


def test_tag_bump_changes_exactly_one_line() -> None:
    before = (CASES / "tag-bump" / "input.yaml").read_text()
    after = (CASES / "tag-bump" / "expected.yaml").read_text()
    assert _changed_lines(before, after) == 1
    assert [c for c in before.splitlines() if "#" in c] != []  # the case does carry comments


def test_read_pin(tmp_path: Path) -> None:
    path = tmp_path / "kustomization.yaml"
    path.write_text((CASES / "digest-added" / "expected.yaml").read_text())
    pin = overlays.read_pin(path, "backend")
    assert pin is not None
    assert pin.ref.startswith("docker.io/campus/backend:sha-1a2b3c4@sha256:aaaa")
    assert overlays.read_pin(path, "absent") is None


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "kustomization.yaml"
    path.write_text("images:\n  - name: backend\n    newTag: [unclosed\n")
    with pytest.raises(OverlayError, match=r"kustomization.yaml: malformed YAML at line \d"):
        overlays.pin(path, overlays.Pin("backend", "x/y", "sha-1"), tmp_path)
    assert path.read_text() == "images:\n  - name: backend\n    newTag: [unclosed\n"


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "kustomization.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(OverlayError, match="not a kustomization"):
        overlays.pin(path, overlays.Pin("backend", "x/y", "sha-1"), tmp_path)


def test_missing_overlay(tmp_path: Path) -> None:
    with pytest.raises(OverlayError, match=r"no kustomization\.yaml"):
        overlays.kustomization(tmp_path / "nope")


def test_two_entries_for_the_backend_are_refused(tmp_path: Path) -> None:
    # Measured on main: the first entry was edited and the stale second one kept.
    path = tmp_path / "kustomization.yaml"
    entry = "  - name: backend\n    newName: r/backend\n    newTag: sha-1111111\n"
    path.write_text("images:\n" + entry + "  - name: other\n    newTag: x\n" + entry)
    before = path.read_text()
    for attempt in (
        lambda: overlays.read_pin(path, "backend"),
        lambda: overlays.pin(path, overlays.Pin("backend", "r/backend", "sha-2222222"), tmp_path),
    ):
        with pytest.raises(OverlayError) as info:
            attempt()
        assert str(info.value) == (
            f"{path}: two `images:` entries for backend (lines 2 and 7). Keep one entry and delete the other."
        )
    assert path.read_text() == before
