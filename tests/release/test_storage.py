"""pipeline.storage against the real client library and gcp-storage-emulator on loopback, authenticated
as in GitHub Actions (an external_account file whose STS endpoint is the Google stand-in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import StorageError
from pipeline.storage import Bucket

from .conftest import GoogleStub  # type: ignore[import-not-found]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    from sandbox.home import free_port

    port = free_port()
    serve = ["--host", "127.0.0.1", "--port", str(port), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "--data-dir", str(tmp_path), "start", *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_bucket_round_trip_through_the_client_library(
    emulator: str, google_stub: GoogleStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = tmp_path / "subject-token"
    subject.write_text("a-github-oidc-token")
    adc = {
        "type": "external_account",
        # No project number in the audience: google-auth would look the project up at Google.
        "audience": "//iam.googleapis.com/locations/global/workloadIdentityPools/ci/providers/github",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{google_stub.url}/token",
        "credential_source": {"file": str(subject)},
    }
    (tmp_path / "adc.json").write_text(json.dumps(adc))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    bucket = Bucket("campus-test-db-backups", "sandbox", emulator)
    assert bucket.list("staging/") == []
    bucket.ensure()
    bucket.ensure()  # a second time: exists, nothing to do
    data = tmp_path / "a.dump"
    data.write_bytes(os.urandom(300_000))
    bucket.upload("staging/a.dump", data, {"id": "a", "sha256": "x"})
    (found,) = bucket.list("staging/")
    assert (found.name, found.size, found.metadata["id"]) == ("staging/a.dump", 300_000, "a")
    bucket.download("staging/a.dump", tmp_path / "b.dump")
    assert (tmp_path / "b.dump").read_bytes() == data.read_bytes()
    bucket.delete("staging/a.dump")
    assert bucket.list("staging/") == []
    with pytest.raises(StorageError, match="does not exist"):
        bucket.download("staging/a.dump", tmp_path / "c.dump")
    bucket.close()
