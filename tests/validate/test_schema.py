"""pipeline.validate.schema: the schemas of GKE's kinds that ship with the pipeline, and how strict they are.

The golden cases (tests/validate/cases/gke-crds*) check objects against them; these tests check the files
themselves: that each is found and installed with the package, and that unknown fields are refused.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import jsonschema
import pytest

from pipeline.validate import schema

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "pipeline" / "validate" / schema.CRD_SCHEMAS


def test_gke_kinds_have_a_bundled_schema() -> None:
    assert set(schema.bundled_schemas()) == {
        ("networking.gke.io/v1", "ManagedCertificate"),
        ("cloud.google.com/v1", "BackendConfig"),
        ("networking.gke.io/v1beta1", "FrontendConfig"),
    }


def test_every_schema_file_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["pipeline.validate"]
    files = sorted(CRDS.glob("*.json"))
    assert len(files) == len(schema.bundled_schemas())
    for path in files:
        relative = path.relative_to(CRDS.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not installed"


@pytest.mark.parametrize("key", sorted(schema.bundled_schemas()), ids=lambda k: k[1])
def test_bundled_schemas_are_valid_draft4(key: tuple[str, str]) -> None:
    jsonschema.Draft4Validator.check_schema(schema.bundled_schemas()[key])


def test_strict_closes_objects_with_properties_only() -> None:
    strict = schema.strict(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        }
                    },
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    )
    validator = jsonschema.Draft4Validator(strict)
    assert validator.is_valid(
        {"metadata": {"anything": 1}, "extra": {"free": True}, "labels": {"a": "b"}, "spec": {"items": []}}
    )
    assert not validator.is_valid({"other": 1})
    assert not validator.is_valid({"spec": {"itemz": []}})
    assert not validator.is_valid({"spec": {"items": [{"nam": "x"}]}})
    assert not validator.is_valid({"labels": {"a": 1}})
