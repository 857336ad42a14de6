"""`animalpose demo`: the whole CC-SSL method on embedded defaults, no server needed.

Runs the ``ccssl`` flow (synthetic ``cad`` source → ``photo`` target, pretraining, CC-SSL rounds,
oracle) in Prefect's ephemeral mode with MLflow in the local SQLite store, then prints the results
table and the command that opens the MLflow UI on those runs. ``--json`` makes the last line one
JSON object with ``source_only``, ``rounds``, ``oracle``, ``gap_recovery`` (PCK@0.05 crop fractions),
``seconds`` and ``peak_rss_mb``. In a terminal each stage shows a live bar (epoch, loss, images/s, ETA;
pseudo-labelling: images) and a line when it finishes; with ``--json`` or without a terminal only the
stage lines (:mod:`flows.console`). MLflow's and Prefect's INFO lines are off unless ``--verbose``.
``--seed K`` runs the flow with base seed K instead of the preset's
(:func:`flows.ccssl.seed_plan`); ``animalpose bench ccssl`` runs the same flow over several seeds.
``--target``/``--test``/``--target-val``/``--schema`` run it on a real target instead (e.g. Animal-Pose
horses written by ``animalpose data subset``).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import typer

from animalpose.cli.options import threads_option
from animalpose.jsonout import dumps
from flows.env import quiet_environment

app = typer.Typer(help="Run CC-SSL end to end on generated data (ephemeral Prefect, local MLflow); print the results.")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return max(own, kids) * scale


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def demo(
    species: str = typer.Option("horse", help="Species template of source and target."),
    preset: str = typer.Option("quick", help="Flow preset: quick (the demo, ~15 min on 2 cores), real (quick with "
                                               "the strong augmentation for the synthetic source: for a real "
                                               "--target) or smoke (tests)."),
    rounds: int = typer.Option(None, help="CC-SSL rounds (default: the preset's)."),
    seed: int = typer.Option(None, help="Base seed of the generated datasets and of training (default: the "
                             "preset's; see flows.ccssl.seed_plan)."),
    target: list[Path] = typer.Option(None, "--target", exists=True,
                                      help="A real target instead of the generated `photo` one (used unlabelled; "
                                      "repeatable), e.g. a `data subset` of Animal-Pose's horse train split."),
    test: Path = typer.Option(None, "--test", exists=True, help="Labelled target test set (needed with --target)."),
    target_val: Path = typer.Option(None, "--target-val", exists=True,
                                    help="Labelled target set on which the oracle chooses its epoch (never the "
                                    "test set)."),
    schema: str = typer.Option(None, "--schema", help="Keypoint schema to train and score in (e.g. animalpose "
                               "for Animal-Pose photographs; default: the preset's)."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of the results (and no live "
                                 "bars: one line per stage)."),
    verbose: bool = typer.Option(False, "--verbose", help="Keep MLflow's and Prefect's INFO log lines."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Read --target/--test/--target-val "
                                            "files whose images lie outside their folder (`data subset` files "
                                            "hold absolute paths to the source's images)."),
    threads: int = threads_option(),
) -> None:
    from flows.console import configure

    configure(json_output=as_json, verbose=verbose)  # before quiet_environment: --verbose keeps INFO
    quiet_environment()
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from flows.ccssl import ccssl_flow, results_rows

    if target and test is None:
        raise typer.BadParameter("a real target needs its labelled test set", param_hint="--test")
    t0 = time.perf_counter()
    kwargs = {"species": species, "preset": preset, "rounds": rounds}
    if seed is not None:  # otherwise the flow's default (the preset's seed), as before
        kwargs["seed"] = seed
    if target:
        kwargs.update(target_data=[p.resolve() for p in target], test_data=test.resolve())
    if target_val is not None:
        kwargs["target_val_data"] = target_val.resolve()
    if schema:
        kwargs["schema"] = schema
    if allow_outside_root:
        kwargs["allow_outside_root"] = True
    summary = ccssl_flow(**kwargs)
    seconds = time.perf_counter() - t0
    rows = results_rows(summary)
    run = preset if seed is None else f"{preset}, seed {seed}"
    typer.echo(f"\nCC-SSL {species} ({run}): PCK@0.05 (crop) on the held-out target test set")
    width = max(len(str(r[0])) for r in rows)
    for label, value in rows:
        shown = "—" if value is None else (f"{100 * value:.1f}" if isinstance(value, float) else str(value))
        typer.echo(f"  {label:<{width}}  {shown:>7}")
    typer.echo(f"\nRegistered model: {summary['model_name']} v{summary['model_version']}")
    typer.echo(f"MLflow run: {summary['mlflow_run_url']}")
    typer.echo(f"Open the MLflow UI: {summary['mlflow_ui']}")
    typer.echo(f"Wall time {seconds:.0f} s, peak memory {peak_rss_mb():.0f} MiB")
    if as_json:
        keys = ("species", "preset", "source_only", "rounds", "oracle", "gap_recovery", "model_name", "model_version",
                "mlflow_run_id", "tracking_uri")
        out = {k: summary[k] for k in keys}
        if "seed" in summary:
            out["seed"] = summary["seed"]
        out.update(seconds=round(seconds, 1), peak_rss_mb=round(peak_rss_mb(), 1))
        typer.echo(dumps(out))
