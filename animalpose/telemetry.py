"""The process environment MLflow and Prefect read before they start: telemetry off, a short-outage client.

Both libraries decide whether to send usage telemetry when they are first imported (``import mlflow``
starts MLflow's telemetry client, ``import prefect`` its SDK analytics), so :func:`telemetry_off` is
called by our code before that happens: :meth:`animalpose.tracking.Tracker.start`, the CLI's root
command and the ``flows`` package, the three places through which MLflow and Prefect are first reached.
Importing the library changes nothing in the environment.
"""

from __future__ import annotations

import os

TELEMETRY_OFF = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
"""Set whatever the environment says: this project never sends telemetry (DESIGN, conventions)."""

MLFLOW_CLIENT_DEFAULTS = {
    # an unreachable tracking server costs seconds, not minutes (animalpose.tracking: outages)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
"""Set only where the user has not set them (their values win)."""


def telemetry_off() -> None:
    """Turn MLflow's and Prefect's telemetry off and give the MLflow client its defaults; idempotent."""
    os.environ.update(TELEMETRY_OFF)
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
