"""A headless-Chromium screenshot of the MLflow UI comparing a CC-SSL flow run's stages (``make ui-screenshot``).

    python -m flows.ui_screenshot [--home DIR] [--out docs/mlflow_compare.png]

Runs the smoke demo into ``--home`` (default: a temporary data home) unless that home's store already
holds a finished ``ccssl`` flow run, starts the lean MLflow UI on the store (``animalpose ui``), opens
the compare view of the run's model stages (source-only, each round, the oracle: their
``target_test/pck_crop_at_0.05`` side by side) in headless Chromium and writes the screenshot.
Needs ``chromium`` (or ``chromium-browser`` / ``google-chrome``) on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MODEL_STAGES = ("source-only", "round", "oracle")


def browser() -> str:
    """The first headless-capable Chromium on PATH; a clear error naming what was looked for."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(f"error: no Chromium on PATH (looked for {', '.join(BROWSERS)}); install one to take the "
                     "screenshot")


def flow_runs(store_uri: str) -> tuple[str, str, list[str]]:
    """(experiment id, parent run id, model-stage run ids in stage order) of the newest finished ccssl run."""
    from mlflow import MlflowClient

    client = MlflowClient(store_uri)
    exp = client.get_experiment_by_name("ccssl")
    if exp is None:
        raise LookupError(f"no ccssl experiment in {store_uri}")
    parents = client.search_runs([exp.experiment_id], "tags.`animalpose.flow` LIKE 'ccssl-%' and "
                                 "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"],
                                 max_results=1)
    if not parents:
        raise LookupError(f"no finished ccssl flow run in {store_uri}")
    parent = parents[0].info.run_id
    stages = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    ordered = sorted((r for r in stages if r.data.tags.get("stage") in MODEL_STAGES),
                     key=lambda r: int(r.data.tags.get("round", "0")))
    return exp.experiment_id, parent, [r.info.run_id for r in ordered]


def compare_url(base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's compare view of ``run_ids``."""
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id]),
                                    "workflowType": "machine_learning"})
    return f"{base}/#/compare-runs?{query}"


def shoot(chrome: str, url: str, out: Path, size: str = "1600,1100", budget_ms: int = 20000) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={size}", f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not out.is_file():
        raise SystemExit(f"error: chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-1500:]}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="data home whose store to show (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "mlflow_compare.png")
    ap.add_argument("--port", type=int, default=0, help="UI port (default: a free one)")
    args = ap.parse_args(argv)
    chrome = browser()
    home = (args.home or Path(tempfile.mkdtemp(prefix="animalpose-ui-"))).resolve()
    store = f"sqlite:///{home / 'mlflow.db'}"
    env = {**os.environ, "ANIMALPOSE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    try:
        flow_runs(store)
    except LookupError:
        print(f"running the smoke demo into {home} (a few minutes)", file=sys.stderr, flush=True)
        env_demo = {**env, "PREFECT_HOME": str(home / "prefect"), "PREFECT_LOCAL_STORAGE_PATH": str(home / "results")}
        subprocess.run([sys.executable, "-m", "animalpose", "demo", "--preset", "smoke", "--json"], env=env_demo,
                       cwd=REPO, check=True)
    experiment_id, parent, stages = flow_runs(store)

    from flows.stack import StackError, free_port, ui_process, wait_healthy

    port = args.port or free_port()
    cmd, ui_env = ui_process(store, "127.0.0.1", port)
    log = home / "ui.log"
    with log.open("wb") as sink:
        ui = subprocess.Popen(cmd, env={**ui_env, "ANIMALPOSE_HOME": str(home)}, stdout=sink,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(f"{base}/health", ui, "the MLflow UI", log, timeout=180)
        except StackError as exc:
            raise SystemExit(f"error: {exc}") from None
        shoot(chrome, compare_url(base, experiment_id, stages), args.out, size="1600,2600")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    print(json.dumps({"compare": str(args.out), "store": store, "parent": parent,
                      "stages": len(stages)}))


if __name__ == "__main__":
    main()
