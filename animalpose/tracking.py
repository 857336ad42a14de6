"""MLflow tracking for every stage, built so that a tracking outage never costs a training run.

A :class:`Tracker` is one MLflow run (or a no-op when tracking is off). It logs the flattened
configuration as parameters, the git commit and data fingerprints as tags, metrics by step,
per-joint tables, figures, files (checkpoints) and registers models. Child trackers are nested
runs (e.g. one per adaptation round).

Where the store lives: an explicit URI (``tracking.uri`` in the config) wins, then the
``MLFLOW_TRACKING_URI`` environment variable, else a local SQLite database at the absolute path
``<data dir>/mlflow.db`` with artifacts under ``<data dir>/mlartifacts``; the data directory is
``$ANIMALPOSE_HOME`` or ``<repository>/data``. Telemetry is off: :meth:`Tracker.start` calls
:func:`animalpose.telemetry.telemetry_off` before it imports MLflow (importing this module changes
nothing). The git commit and data fingerprints come from :mod:`animalpose.provenance`.

Outages: every call is guarded. The first failure prints one warning naming the URI and the error;
the tracker then turns itself (and its children) off and the caller carries on. HTTP retries and
timeouts default to 0 retries / 5 s (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_TIMEOUT``; values already set in the environment are kept), so an
unreachable server costs seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from animalpose.paths import data_home
from animalpose.provenance import git_commit
from animalpose.registry import CHAMPION
from animalpose.telemetry import telemetry_off

log = logging.getLogger(__name__)

# The experiment tag that opens MLflow 3's UI in its model-training view (runs, charts, compare)
# instead of its GenAI view (traces, assistant); the UI reads it from the experiment's tags.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def project_data_dir() -> Path:
    """``$ANIMALPOSE_HOME`` or ``<repository>/data`` (see :func:`animalpose.paths.data_home`); absolute."""
    return data_home()


def local_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store live beside its database (``<db dir>/mlartifacts/<experiment>``).

    Without this MLflow puts them in ``./mlruns`` of whatever folder the process runs in. Servers
    (http URIs) choose their own artifact root: None.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts" / experiment).as_uri()


def default_tracking_uri() -> str:
    """``sqlite:///<absolute data dir>/mlflow.db``."""
    return f"sqlite:///{project_data_dir() / 'mlflow.db'}"


def resolve_uri(uri: str | None = None) -> str:
    """The URI actually used: explicit, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def metric_key(name: str) -> str:
    """An MLflow-legal metric name: ``val/pck@0.05`` → ``val/pck_at_0.05``; other odd characters → ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name.replace("@", "_at_"))


class _Shared:
    """State shared by a tracker and its children: on after the first failure, everything stops."""

    def __init__(self, uri: str):
        self.uri = uri
        self.failed = False
        self.warned = False


class Tracker:
    """One MLflow run; every method is safe to call when tracking is off or the backend is down.

    Args:
        experiment: experiment name (created when missing).
        run_name: the run's display name.
        uri: tracking URI (see :func:`resolve_uri`).
        enabled: False gives a tracker that does nothing (e.g. non-zero DDP ranks).
        tags: extra run tags; the git commit is always added as ``git.commit``.
        system_metrics: sample CPU / memory / GPU usage with psutil every ``system_interval`` s.
        resume_run_id: reopen this existing run instead of creating one (``--resume``). A run id this
            store does not hold (resume state written against another store) starts a new run, says so
            at WARNING and sets :attr:`resume_missed`, so the caller can log what the new run lacks.
    """

    def __init__(self, experiment: str = "animalpose", run_name: str | None = None, *, uri: str | None = None,
                 enabled: bool = True, tags: Mapping[str, str] | None = None, system_metrics: bool = True,
                 system_interval: float = 10.0, resume_run_id: str | None = None, _parent: Tracker | None = None):
        self.experiment = experiment
        self.run_name = run_name
        self.uri = _parent.uri if _parent else resolve_uri(uri)
        self.enabled = enabled and (_parent is None or _parent.active)
        self.tags = dict(tags or {})
        self.system_metrics = system_metrics
        self.system_interval = system_interval
        self.run_id: str | None = None
        self.resume_run_id = resume_run_id
        self.experiment_id: str | None = None
        self.resume_missed = False
        self._parent = _parent
        self._shared = _parent._shared if _parent else _Shared(self.uri)
        self._client = None
        self._monitor = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True while the run is open and the backend has not failed."""
        return self.enabled and self.run_id is not None and not self._shared.failed

    def start(self) -> Tracker:
        """Create the run (and experiment); on failure, warn once and carry on untracked. Idempotent, so
        ``with tracker.child(...) as run:`` (already started) opens one run, not two."""
        if not self.enabled or self._shared.failed or self.run_id is not None:
            return self
        self._guard(self._start)
        return self

    def _start(self) -> None:
        telemetry_off()  # before MLflow's first import, which decides on its telemetry
        from mlflow import MlflowClient

        if self.uri.startswith("sqlite:///"):
            Path(self.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self._client = self._parent._client if self._parent else MlflowClient(tracking_uri=self.uri)
        if self.resume_run_id:
            run = self._find_run(self.resume_run_id)
            if run is not None:
                self.experiment_id, self.run_id = run.info.experiment_id, run.info.run_id
                self._client.update_run(self.run_id, status="RUNNING")
                self._start_monitor()
                return
            self.resume_missed = True
            log.warning("MLflow run %s is not in the store at %s (resume state from another store?): "
                        "starting a new run %r there", self.resume_run_id, self.uri, self.run_name)
        if self._parent is not None:
            self.experiment_id = self._parent.experiment_id
        else:
            exp = self._client.get_experiment_by_name(self.experiment)
            if exp is None:
                location = local_artifact_location(self.uri, self.experiment)
                self.experiment_id = self._client.create_experiment(self.experiment, artifact_location=location,
                                                                    tags=dict([EXPERIMENT_KIND]))
            else:
                self.experiment_id = exp.experiment_id
                if EXPERIMENT_KIND[0] not in exp.tags:  # made by an older version or by hand
                    self._client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
        tags = {"git.commit": git_commit(), "mlflow.source.name": " ".join(sys.argv[:1]) or "python",
                **self.tags}
        if self._parent is not None:
            tags["mlflow.parentRunId"] = self._parent.run_id
        run = self._client.create_run(self.experiment_id, tags=tags, run_name=self.run_name)
        self.run_id = run.info.run_id
        self._start_monitor()

    def _find_run(self, run_id: str):
        """The run ``run_id`` of this store, None when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None

    def _start_monitor(self) -> None:
        if self.system_metrics:
            try:
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                self._monitor = SystemMetricsMonitor(self.run_id, sampling_interval=self.system_interval,
                                                     tracking_uri=self.uri)
                self._monitor.start()
            except Exception:  # system metrics are a nicety; never fail a run over them
                self._monitor = None

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        if self._monitor is not None:
            try:
                self._monitor.finish()
            except Exception:
                pass
            self._monitor = None
        if self.active:
            self._guard(lambda: self._client.set_terminated(self.run_id, status=status))

    def close_if_running(self, run_id: str, status: str = "KILLED") -> bool:
        """Mark an earlier run still shown as RUNNING as ``status``: its process died without closing it
        (a kill, a power cut). Returns True when the run was changed. Call on a started tracker."""
        if not self.active or run_id == self.run_id:
            return False

        def close() -> bool:
            if self._client.get_run(run_id).info.status != "RUNNING":
                return False
            self._client.set_tag(run_id, "animalpose.closed_by", self.run_id)
            self._client.set_terminated(run_id, status=status)
            return True

        return bool(self._guard(close))

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end("FINISHED" if exc_type is None else ("KILLED" if exc_type is KeyboardInterrupt else "FAILED"))

    def child(self, run_name: str, tags: Mapping[str, str] | None = None) -> Tracker:
        """A nested run under this one (started)."""
        return Tracker(self.experiment, run_name, tags=tags, system_metrics=False, _parent=self,
                       enabled=self.active).start()

    def adopt(self, run_id: str | None) -> None:
        """Nest the existing run ``run_id`` (e.g. one ``engine.train`` created) under this run, as a child
        run of the UI; nothing when either is missing or tracking is off."""
        if run_id and self.active:
            self._guard(lambda: self._client.set_tag(run_id, "mlflow.parentRunId", self.run_id))

    # -- guarded calls -----------------------------------------------------------------------------

    def _guard(self, fn, *args, **kwargs) -> Any:
        if not self.enabled or self._shared.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self._shared.failed = True
            if not self._shared.warned:
                self._shared.warned = True
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                print(f"warning: MLflow tracking at {self._shared.uri} failed ({type(exc).__name__}: "
                      f"{first[:200]}); continuing without tracking", file=sys.stderr, flush=True)
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters (values stringified, truncated to MLflow's 6000-character limit)."""
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]

        def send():
            for i in range(0, len(items), 100):
                self._client.log_batch(self.run_id, params=items[i:i + 100])

        self._guard(send)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        self._guard(lambda: self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Finite numeric metrics at ``step`` (NaN / inf skipped; names made legal by :func:`metric_key`)."""
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(k), float(v), now, int(step or 0)) for k, v in metrics.items()
                 if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")]
        if items:
            self._guard(lambda: self._client.log_batch(self.run_id, metrics=items))

    def log_dict(self, data: Any, artifact_file: str) -> None:
        if self.active:
            self._guard(lambda: self._client.log_dict(self.run_id, data, artifact_file))

    def log_table(self, rows: Mapping[str, Mapping[str, float]] | Mapping[str, float], artifact_file: str,
                  key: str = "joint") -> None:
        """A per-joint table: ``{joint: value}`` or ``{joint: {column: value}}``, shown in the MLflow UI."""
        if not self.active:
            return
        columns: dict[str, list] = {key: list(rows)}
        for name, row in rows.items():
            row = row if isinstance(row, Mapping) else {"value": row}
            for col, v in row.items():
                columns.setdefault(col, [None] * len(rows))[list(rows).index(name)] = (
                    None if v is None or v != v else float(v))
        self._guard(lambda: self._client.log_table(self.run_id, data=columns, artifact_file=artifact_file))

    def log_figure(self, figure, artifact_file: str) -> None:
        if self.active:
            self._guard(lambda: self._client.log_figure(self.run_id, figure, artifact_file))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.active:
            self._guard(lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def register_model(self, artifact_path: str, name: str, tags: Mapping[str, str] | None = None,
                       description: str | None = None) -> str | None:
        """Register the logged artifact folder/file ``artifact_path`` of this run as a new version of ``name``.

        ``description``: the version's text in the registry (its scores and the data they were measured
        on). The first version of a model that has no ``champion`` alias yet gets it, so
        ``models:/<name>@champion`` resolves from the first registration on; later versions leave the
        alias where a person put it.

        Returns the version number as a string, or None when tracking is off or failed.
        """
        if not self.active:
            return None

        def register():
            from mlflow.exceptions import MlflowException

            try:
                self._client.create_registered_model(name)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                    raise
            run = self._client.get_run(self.run_id)
            source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
            mv = self._client.create_model_version(name, source=source, run_id=self.run_id,
                                                   tags=dict(tags or {}), description=description,
                                                   await_creation_for=0)
            if CHAMPION not in self._client.get_registered_model(name).aliases:
                self._client.set_registered_model_alias(name, CHAMPION, mv.version)
            return str(mv.version)

        return self._guard(register)

