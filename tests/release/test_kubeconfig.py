"""A broken kubeconfig behind an environment's `kube_context`: one line naming the file, never a traceback.

Measured on main: a YAML error, a string for a file, a directory, or a server that is not a URL each ended
in a traceback, and a failing exec plugin printed the client's own log line before the error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import kube
from pipeline.access import KubeContext
from pipeline.errors import KubeError


def config(server: str = "https://127.0.0.1:9", user: dict[str, object] | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user or {"token": "t"}}],
            "contexts": [{"name": "staging", "context": {"cluster": "c", "user": "u"}}],
        }
    )


PLUGIN = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "false"}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("garbage: [\n", "not a valid kubeconfig (ParserError)"),
        ("just a string\n", "not a valid kubeconfig"),
        ("", "file is empty"),
        ("apiVersion: v1\nkind: Config\n", "Expected object with name staging"),
        (config(server="not a url"), "the cluster's server 'not a url' is not an https:// URL"),
        (config(user={"client-certificate": "/nope.crt", "client-key": "/nope.key"}), "/nope.crt"),
        (config(user=PLUGIN), "the credential plugin failed (exec: process returned 1)"),
        (None, "cannot read it (Is a directory)"),
    ],
)
def test_broken_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    with pytest.raises(KubeError) as caught:
        kube.connect(KubeContext("staging", str(path)))
    message = str(caught.value)
    assert message.startswith(f"loading kubeconfig context staging from {path}: "), message
    assert expected in message and "\n" not in message, message
    assert capsys.readouterr().err == ""
