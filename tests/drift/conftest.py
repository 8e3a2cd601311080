"""A sandbox with clusters for the drift tests, built from tests/release/conftest.py's helpers.

Module-scoped with node addresses of its own (127.0.0.52-53), so that it is gone before tests/release
starts its session-wide sandbox on 127.0.0.42-43 when both directories run in one session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.release.conftest import ROOT, Clusters, Images, build_images, running_sandbox

__all__ = ["ROOT", "Clusters", "Images"]


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox-drift"), "127.0.0.52,127.0.0.53") as made:
        yield made


@pytest.fixture(scope="module")
def images(clusters: Clusters, tmp_path_factory: pytest.TempPathFactory) -> Images:
    env = clusters.env
    return build_images(
        env["PIPELINE_REGISTRY"],
        env["DOCKERHUB_USERNAME"],
        env["DOCKERHUB_TOKEN"],
        tmp_path_factory.mktemp("img"),
    )


def kubectl_env(clusters: Clusters) -> dict[str, str]:
    """What kubectl needs to reach the sandbox: its kubeconfig (whose exec plugin is this Python)."""
    return {**os.environ, "KUBECONFIG": clusters.env["KUBECONFIG"]}
