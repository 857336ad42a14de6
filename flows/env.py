"""The environment a flow run in this process wants: telemetry off, quiet logs, a patient ephemeral server.

Shared by ``animalpose demo`` and the benchmarks that run the demo's flow, so both run it the same way.
"""

from __future__ import annotations

import os

from animalpose.telemetry import TELEMETRY_OFF

QUIET = {
    **TELEMETRY_OFF,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # the ephemeral Prefect server can take a while to start on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def quiet_environment() -> None:
    """Set every :data:`QUIET` variable the user has not set (their own values win)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
