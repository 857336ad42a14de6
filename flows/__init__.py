"""Prefect flows over the library (see DESIGN.md). Every flow module imports Prefect, and most reach MLflow,
so the package turns their telemetry off first (:func:`animalpose.telemetry.telemetry_off`): this is the
flows' entry, whichever module a worker, a deployment or ``python -m`` loads."""

from animalpose.telemetry import telemetry_off

telemetry_off()
