"""What every flow shares: the MLflow parent run, the run link, the markdown artifact, stage failures.

Flows stay thin: they call the library and use these helpers to report. Nothing here trains or
generates anything.

- :func:`parent_tracker` opens the one MLflow parent run of a flow run (tagged with the Prefect
  flow-run id); stages open nested runs with ``tracker.child(name)``.
- :func:`stage` wraps a stage in MLflow: on an exception the stage's nested run and the parent run
  get the tags ``failed_stage`` and ``error`` (the message the Prefect UI also shows), then the
  exception propagates so Prefect marks the task and the flow failed.
- :func:`publish` writes the flow run's markdown artifact (results table plus MLflow run link).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, CachePolicy
from prefect.utilities.hashing import hash_objects

from animalpose.tracking import Tracker, resolve_uri


def flow_run_id() -> str | None:
    """The current Prefect flow run's id, or None outside a flow run."""
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
    except ImportError:  # pragma: no cover - prefect is a dependency
        return None
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None


def parent_tracker(experiment: str, run_name: str, uri: str | None, tags: Mapping[str, str] | None = None) -> Tracker:
    """The started MLflow parent run of one flow run (tagged ``prefect.flow_run_id`` when in a flow)."""
    all_tags = {"animalpose.flow": run_name, **(tags or {})}
    fr = flow_run_id()
    if fr:
        all_tags["prefect.flow_run_id"] = fr
    return Tracker(experiment, run_name, uri=resolve_uri(uri), tags=all_tags).start()


def ui_command(uri: str) -> str:
    """The shell command that opens the MLflow UI on the store at ``uri`` (a server URL needs none): the
    lean ``animalpose ui`` (2 processes), not ``mlflow ui`` (10)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"animalpose ui --backend-store-uri {uri}"


ML_VIEW = "workflowType=machine_learning"


def run_link(tracker: Tracker, ui_url: str | None = None) -> str:
    """The URL of ``tracker``'s run in the MLflow UI (``ui_url`` defaults to the server URI or 127.0.0.1:5000)."""
    base = ui_url or (tracker.uri if tracker.uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000")
    if tracker.run_id is None:
        return f"{base.rstrip('/')} (tracking was off for this run)"
    # workflowType: MLflow 3's UI opens in its GenAI view unless the link (or the user's toggle) says otherwise
    return f"{base.rstrip('/')}/#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}?{ML_VIEW}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}"


@contextlib.contextmanager
def stage(parent: Tracker, name: str, params: Mapping[str, object] | None = None,
          tags: Mapping[str, str] | None = None) -> Iterator[Tracker]:
    """A nested MLflow run for one stage; a failure tags it and the parent, then re-raises.

    ``tags``: e.g. ``{"stage": "round", "round": "2"}``, by which the MLflow UI groups and orders the
    stage runs. The nested run ends ``FAILED`` (``KILLED`` on Ctrl-C); the parent gets
    ``failed_stage=<name>`` and ``error=<type: first line>``, the same text Prefect shows for the failed task.
    """
    child = parent.child(name, tags={"animalpose.stage": name, **(tags or {})})
    if params:
        child.log_params(params)
    try:
        yield child
    except BaseException as exc:
        message = first_line(exc)
        child.set_tags({"error": message})
        parent.set_tags({"failed_stage": name, "error": message})
        child.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    child.end("FINISHED")


def markdown_text(text: str) -> str:
    """``text`` safe in markdown: ``@`` escaped, so ``PCK@0.05`` is not turned into a ``mailto:`` link
    (GitHub-flavoured renderers autolink ``word@word.word`` as an e-mail address)."""
    return text.replace("@", "\\@")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; floats with 4 decimals, None as an em dash."""

    def cell(v: object) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4f}"
        return markdown_text(str(v).replace("|", "\\|"))

    lines = ["| " + " | ".join(markdown_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "result"


def publish(key: str, markdown: str, description: str | None = None) -> str | None:
    """Create the flow run's markdown artifact; returns its id, or None outside a flow run."""
    if flow_run_id() is None:
        return None
    from prefect.artifacts import create_markdown_artifact

    return str(create_markdown_artifact(markdown=markdown, key=artifact_key(key), description=description))


def local_path(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path).expanduser().resolve()


# Failures worth retrying: the network, a busy file system, a worker that went away. A bad input or a
# bug fails the same way again, so those fail at once with their message instead.
TRANSIENT = (ConnectionError, TimeoutError, BrokenPipeError, InterruptedError, BlockingIOError)
PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry can fix (network, I/O hiccups, lost Dask workers); False for bad input."""
    if isinstance(exc, TRANSIENT):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, PERMANENT_OS):
        return True
    return type(exc).__name__ in {"KilledWorker", "CommClosedError"}  # distributed's lost-worker errors


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures (see :func:`is_transient`)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return exc is not None and is_transient(exc)


@dataclass
class FileStamps(CachePolicy):
    """Cache-key part from the files a task reads: (path, size, mtime) of every existing file input.

    Inputs are paths, so keying on them alone would return a stale result after a file was rewritten
    in place (e.g. a round retrained after its checkpoint was deleted). Folders count by path only.
    """

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        stamps = []
        for key in sorted(inputs or {}):
            value = inputs[key]
            for item in value if isinstance(value, list | tuple) else [value]:
                if isinstance(item, str | Path) and len(str(item)) < 4096 and Path(item).is_file():
                    st = Path(item).stat()
                    stamps.append((key, str(item), st.st_size, st.st_mtime_ns))
        return hash_objects(stamps)


# The policy of every stage that reads files: its inputs and the current content stamps of its files.
INPUT_FILES = INPUTS + FileStamps()


def fresh(task, *outputs: Path | str | None):
    """``task``, or ``task`` with a refreshed cache when an output a cached result points at has vanished."""
    if all(o is None or Path(o).exists() for o in outputs):
        return task
    return task.with_options(refresh_cache=True)


def adopt(parent: Tracker, run_id: str | None) -> None:
    """Nest an MLflow run created by the library (e.g. ``engine.train``) under ``parent``
    (:meth:`animalpose.tracking.Tracker.adopt`)."""
    parent.adopt(run_id)
