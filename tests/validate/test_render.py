"""pipeline.render against real kustomize runs (kubectl kustomize or kustomize, whichever is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import RenderError
from pipeline.render import find_kustomize, kustomization_dirs, kustomize_build, render, render_text

ROOT = Path(__file__).resolve().parents[2]


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  MODE: release\n"


def test_render_returns_the_objects_in_kustomize_order() -> None:
    objects = render(ROOT / "overlays" / "prod")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "backend-core-deployment") in kinds
    assert ("PodDisruptionBudget", "backend-core-pdb") in kinds
    backend = next(o for o in objects if o["metadata"]["name"] == "backend-core-deployment")
    assert backend["spec"]["replicas"] == 2
    assert backend["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "docker.io/campus/backend:"
    )


def test_render_text_is_what_kustomize_prints(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources:\n  - cm.yaml\n", "cm.yaml": CONFIGMAP})
    text = render_text(tmp_path)
    assert text.startswith("apiVersion: v1\n")
    assert "MODE: release" in text


def test_malformed_kustomization_names_the_file_and_line(tmp_path: Path) -> None:
    # The blog's failure mode: indentation lost, so a key lands inside the list above it.
    write(
        tmp_path,
        {"kustomization.yaml": "resources:\n  - cm.yaml\n namespace: campus\n", "cm.yaml": CONFIGMAP},
    )
    with pytest.raises(RenderError) as caught:
        render(tmp_path)
    message = str(caught.value)
    assert f"{tmp_path / 'kustomization.yaml'}:3" in message
    assert "\n" not in message


def test_malformed_kustomization_of_a_base_names_the_base(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources:\n  - cm.yaml\n namePrefix: x-\n",
            "base/cm.yaml": CONFIGMAP,
            "overlay/kustomization.yaml": "resources:\n  - ../base\n",
        },
    )
    with pytest.raises(RenderError, match=r"base/kustomization\.yaml:3: malformed YAML"):
        render(tmp_path / "overlay")


def test_malformed_resource_names_the_resource_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources:\n  - cm.yaml\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: 1\n",
        },
    )
    with pytest.raises(RenderError, match=r"cm\.yaml:\d+: malformed YAML"):
        render(tmp_path)


def test_a_kustomize_failure_carries_its_first_error_line(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources:\n  - missing.yaml\n"})
    with pytest.raises(RenderError) as caught:
        render(tmp_path)
    message = str(caught.value)
    assert "kustomization.yaml" in message
    assert "missing.yaml" in message
    assert "must build at directory" not in message  # kustomize's repeated second attempt is cut
    assert "\n" not in message


def test_a_directory_without_kustomization_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"no kustomization\.yaml"):
        render(tmp_path)


def test_missing_kustomize_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="Install kubectl or kustomize"):
        find_kustomize(str(tmp_path))


def test_kustomize_warnings_are_returned_not_printed(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"kustomization.yaml": "commonLabels:\n  a: b\nresources:\n  - cm.yaml\n", "cm.yaml": CONFIGMAP},
    )
    rendered = kustomize_build(tmp_path)
    assert any("commonLabels" in w for w in rendered.warnings)
    assert rendered.objects[0]["metadata"]["labels"] == {"a": "b"}


def test_the_project_overlays_render_without_warnings() -> None:
    for overlay in ("staging", "prod"):
        assert kustomize_build(ROOT / "overlays" / overlay).warnings == ()


def test_kustomization_dirs_follow_local_bases() -> None:
    assert kustomization_dirs(ROOT / "overlays" / "staging") == [
        (ROOT / "overlays" / "staging").resolve(),
        (ROOT / "manifests").resolve(),
    ]
    assert kustomization_dirs(ROOT / "manifests") == [(ROOT / "manifests").resolve()]
