"""gkecache: the first command looks the cluster up through gke and keeps it; later ones import no Google
library.

Against the Google stand-in on loopback (``google_stub``): real google-auth and google-cloud-container
calls for the first lookup, then only the file in ``.pipeline/cache/gke/``.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config, gkecache
from pipeline.access import ClusterAccess

from .conftest import GoogleStub  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "pipeline.toml", root / "pipeline.toml")
    return root


@pytest.fixture
def adc(google_stub: GoogleStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "adc.json"
    subject = tmp_path / "subject-token"
    subject.write_text("a-subject-token")
    # Workload Identity Federation, as in CI: google-auth posts to the file's token_url (the stand-in).
    info = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{google_stub.url}/token",
        "credential_source": {"file": str(subject)},
    }
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "campus-staging")  # else google-auth asks Resource Manager
    return path


def _settings(stub: GoogleStub, root: Path) -> config.Settings:
    return config.load(root, {"PIPELINE_GKE_ENDPOINT": stub.url})


def test_the_first_lookup_is_kept_and_the_next_reads_it(
    google_stub: GoogleStub, adc: Path, project: Path
) -> None:
    settings = _settings(google_stub, project)
    staging = settings.environment("staging")
    assert gkecache.access(settings, staging) is None
    first = gkecache.environment_access(settings, staging)
    assert isinstance(first, ClusterAccess) and len(google_stub.lookups) == 1
    files = list((project / ".pipeline" / "cache" / "gke").iterdir())
    assert [f.name for f in files] == ["campus-staging.asia-south1-a.staging.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    again = gkecache.environment_access(settings, staging)
    assert isinstance(again, ClusterAccess)
    assert (
        (again.server, again.ca_pem)
        == (first.server, first.ca_pem)
        == ("https://127.0.0.2", google_stub.ca_pem)
    )
    assert again.tokens.token() == first.tokens.token()
    assert len(google_stub.lookups) == 1 and google_stub.refreshes == 1
    assert "token-" not in repr(again)


def test_a_refused_cached_token_gives_way_to_google_auth(
    google_stub: GoogleStub, adc: Path, project: Path
) -> None:
    settings = _settings(google_stub, project)
    staging = settings.environment("staging")
    gkecache.environment_access(settings, staging)
    cached = gkecache.access(settings, staging)
    assert cached is not None and cached.tokens.token() == "token-1"
    cached.tokens.invalidate()  # what the API server's 401 does
    assert cached.tokens.token() == "token-2" and google_stub.refreshes == 2
    assert gkecache.access(settings, staging) is None  # the refused entry is gone


def test_changed_credentials_or_endpoint_or_a_short_token_are_not_read(
    google_stub: GoogleStub, adc: Path, project: Path
) -> None:
    settings = _settings(google_stub, project)
    staging = settings.environment("staging")
    gkecache.environment_access(settings, staging)
    assert gkecache.access(settings, staging) is not None
    other = config.load(project, {"PIPELINE_GKE_ENDPOINT": google_stub.url + "/"})
    assert gkecache.access(other, staging) is None
    adc.write_text(adc.read_text() + "\n")
    assert gkecache.access(settings, staging) is None
    google_stub.token_lifetime = 200  # under the five-minute margin: never kept
    gkecache.environment_access(settings, staging)
    assert gkecache.access(settings, staging) is None


def test_a_cached_read_imports_no_google_library(google_stub: GoogleStub, adc: Path, project: Path) -> None:
    settings = _settings(google_stub, project)
    gkecache.environment_access(settings, settings.environment("staging"))
    code = (
        "import sys; from pathlib import Path; from pipeline import config, gkecache; "
        f"s = config.load(Path({str(project)!r}), {{'PIPELINE_GKE_ENDPOINT': {google_stub.url!r}}}); "
        "a = gkecache.environment_access(s, s.environment('staging')); a.tokens.token(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'google'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
