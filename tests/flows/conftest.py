"""One Prefect test server per session (it costs ~20 s to start) with its own result store.

Cache records live under a temporary results path, so task caches never leak between test sessions;
tests that need a clean cache use their own output folders (cache keys include the paths).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_LOGGING_LEVEL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    store = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: str(store), PREFECT_LOGGING_LEVEL: "WARNING"}):
        with prefect_test_harness(server_startup_timeout=120):
            yield store


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """A private ANIMALPOSE_HOME, so generated data and default paths land in tmp_path."""
    home = tmp_path / "home"
    monkeypatch.setenv("ANIMALPOSE_HOME", str(home))
    return home


@pytest.fixture
def read_artifact():
    """``read_artifact(key)``: the latest Prefect artifact with ``key`` (None when there is none)."""
    return _read_artifact


def _read_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0] if found else None
