"""`animalpose bench ccssl`: the CC-SSL table of issue 7 on generated data, mean ± std over seeds.

The benchmark is the demo run several times: each seed ``k`` runs :func:`flows.ccssl.ccssl_flow` (the
flow behind ``animalpose demo``) with ``seed=k`` on the same preset and species, so the demo (the
preset's seed, 0 for ``quick``) and seed 0 of this table come from the same code path. Setting (the
flow's, see ``configs/flows/<preset>.yaml``): source ``cad`` → target ``photo`` of one species,
pretraining on the source, CC-SSL rounds on the unlabelled target, the oracle trained on the target's
labels (choosing its epoch on the preset's labelled ``target_val`` set, never on the test set); every
figure is PCK@0.05 (crop) on the held-out, labelled target test set. The seed changes every seeded
thing of the flow (:func:`flows.ccssl.seed_plan`): the generated datasets and the training seed of the
pretraining, the rounds and the oracle.

Per seed, under ``--out``:

- ``seed<k>/`` is the flow's ``out_dir`` (pretraining, CC-SSL rounds, oracle checkpoints); the flow
  resumes an interrupted seed after its last finished round;
- ``mlflow.db`` is one SQLite MLflow store (absolute URI) for all seeds; the adapted model of seed
  ``k`` is registered as ``ccssl-<species>-bench-seed<k>``;
- ``seed<k>/settings.json`` (written before the seed starts) and ``seed<k>/result.json`` (written
  atomically when it finished): the settings, the flow's summary (``source_only``, ``rounds``,
  ``oracle``, ``gap_recovery``) and the seed's wall and process CPU seconds. A seed whose
  ``result.json`` holds the same settings is reused, not rerun. The settings are the species, the
  seed and the SHA-256 of the preset file and of the engine config it names (``train_config``); a
  seed folder written with other settings is refused (DataError), never mixed into the table.

Aggregation (:func:`summarise`): mean and **sample** standard deviation (ddof 1; undefined, shown as
``n/a``, for fewer than two values) over seeds of source-only, each round and the oracle. Gap recovery
= (last round − source-only) / (oracle − source-only) (issue 7), computed two ways: per seed and then
averaged (the seeds where it is undefined, oracle ≤ source-only or no oracle, are named and not
counted, and the count says so), and once from the seed means of the three PCKs. ``<out>/ccssl_bench.json``
holds the whole result.

Timing: ``wall_s`` / ``cpu_s`` of a seed are those of the run that finished it (a resumed seed counts
only its last part, and is marked ``resumed``); CPU time is this process's (all its threads), not that
of the ephemeral Prefect server's subprocess.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer

from animalpose.atomic import write_json_atomic
from animalpose.errors import DataError
from animalpose.evaluation import gap_recovery
from flows.benchmarks.harness import SEEDS_HELP, SeedFolder, Stopwatch, parse_seeds, stats

#: A per-seed runner: keyword arguments species, preset, seed, out_dir, tracking_uri, register_as;
#: returns the flow's summary (at least ``source_only``, ``rounds``, ``oracle``).
SeedRunner = Callable[..., dict]
SUMMARY_KEYS = ("source_only", "rounds", "oracle", "gap_recovery", "model_name", "model_version", "mlflow_run_id")
STD = "sample standard deviation over seeds (ddof 1; undefined for fewer than 2 values)"


def run_flow(*, species: str, preset: str, seed: int, out_dir: Path, tracking_uri: str, register_as: str) -> dict:
    """The default runner: the demo's flow, :func:`flows.ccssl.ccssl_flow`, for one seed (without the
    keep-the-better control: this benchmark measures the rounds against source-only and the oracle, and its
    recorded times are of that work)."""
    import flows.ccssl

    return flows.ccssl.ccssl_flow(species=species, preset=preset, seed=seed, out_dir=out_dir,
                                  tracking_uri=tracking_uri, register_as=register_as, control=False)


# --------------------------------------------------------------------------------------------------
# one seed


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settings_key(species: str, preset: str, seed: int) -> dict:
    """What a seed's result depends on: species, seed, SHA-256 of the preset file and of its engine config,
    and the digest of each generated dataset's style (a changed style definition changes the data)."""
    from flows.presets import SynthSpec, load_preset, preset_path
    from synthetic.styles import StyleConfig

    p = load_preset(preset)  # a ConfigError naming the file and key, before any work
    # every dataset the preset generates (its SynthSpec fields: source, source_val, target, ...), so a
    # dataset role added to the preset cannot be left out of the key
    styles = {role: StyleConfig.make(spec.style, spec.gap).digest() for role, spec in p
              if isinstance(spec, SynthSpec)}
    return {"species": species, "seed": seed, "preset_sha256": _sha256(preset_path(preset)),
            "train_config_sha256": _sha256(Path(p.train_config)), "style_digests": styles}


def _check_result(where: str, doc: dict) -> dict:
    """A result's figures, checked (DataError naming ``where``, the file or the runner, and the field)."""
    for key in ("source_only", "rounds", "oracle", "wall_s", "cpu_s"):
        if key not in doc:
            raise DataError(where, key, "missing")
    if not isinstance(doc["rounds"], list) or not doc["rounds"]:
        raise DataError(where, "rounds", "expected a non-empty list of PCK values")
    return doc


def run_seed(out: Path, seed: int, species: str = "horse", preset: str = "quick",
             runner: SeedRunner = run_flow) -> dict:
    """Run (or reuse) one seed under ``out/seed<seed>``; returns its result (``result.json``'s content).

    ``runner`` is called as ``runner(species=, preset=, seed=, out_dir=, tracking_uri=, register_as=)``
    and must return the flow summary. Raises DataError when ``out/seed<seed>`` holds other settings.
    """
    out = Path(out).resolve()
    cache = SeedFolder(out / f"seed{seed}", settings_key(species, preset, seed))
    old = cache.finished()
    if old is not None:
        return {**_check_result(str(cache.result_path), old), "reused": True}
    resumed = cache.start()
    clock = Stopwatch()
    summary = runner(species=species, preset=preset, seed=seed, out_dir=cache.folder,
                     tracking_uri=f"sqlite:///{out / 'mlflow.db'}", register_as=f"ccssl-{species}-bench-seed{seed}")
    lap, total = clock.lap(digits=1), clock.total()
    result = {"seed": seed, "settings": cache.settings, "preset": str(preset),
              **{k: summary.get(k) for k in SUMMARY_KEYS}, **lap, "resumed": resumed,
              "load_average": total["load_average"]}
    _check_result(f"the flow summary of seed {seed}", result)
    return {**cache.save(result), "reused": False}


# --------------------------------------------------------------------------------------------------
# summary


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds of source-only, each round and the oracle, and gap recovery both ways.

    ``gap_recovery.per_seed``: :func:`gap_recovery` of each seed (last round), then :func:`stats` over the
    seeds where it is defined (``n``), with ``undefined_seeds`` listing the others;
    ``gap_recovery.of_means``: :func:`gap_recovery` of the seed means of source-only, last round and
    oracle, over the ``of_means_seeds`` that have an oracle (None where none has, or no gap).
    """
    if not per_seed:
        raise ValueError("no seed to summarise")
    n_rounds = {len(s["rounds"]) for s in per_seed}
    if len(n_rounds) != 1:
        raise ValueError(f"the seeds ran different numbers of rounds: {sorted(n_rounds)}")
    seeds = [s["seed"] for s in per_seed]
    rows = {"source_only": stats([s["source_only"] for s in per_seed]),
            "rounds": [stats([s["rounds"][r] for s in per_seed]) for r in range(n_rounds.pop())],
            "oracle": stats([s["oracle"] for s in per_seed])}
    per = [gap_recovery(s["source_only"], s["rounds"][-1], s["oracle"]) for s in per_seed]
    with_oracle = [s for s in per_seed if s["oracle"] is not None]
    of_means = None
    if with_oracle:
        of_means = gap_recovery(float(np.mean([s["source_only"] for s in with_oracle])),
                                float(np.mean([s["rounds"][-1] for s in with_oracle])),
                                float(np.mean([s["oracle"] for s in with_oracle])))
    undefined = [k for k, g in zip(seeds, per, strict=True) if g is None]
    recovery = {"per_seed": {**stats(per), "undefined_seeds": undefined},
                "of_means": of_means, "of_means_seeds": [s["seed"] for s in with_oracle]}
    return {"seeds": seeds, "rows": rows, "gap_recovery": recovery, "std": STD}


def _pct(v: float | None, suffix: str = "") -> str:
    return "undefined" if v is None else f"{100 * v:.1f}{suffix}"


def _mean_std(s: dict, suffix: str = "") -> str:
    if s["mean"] is None:
        return "undefined"
    std = "n/a" if s["std"] is None else f"{100 * s['std']:.1f}{suffix}"
    return f"{100 * s['mean']:.1f}{suffix} ± {std}"


def format_table(summary: dict) -> str:
    """Markdown: PCK@0.05 (crop, %) mean ± std and per seed; gap recovery per seed then mean, and of the means."""
    seeds = summary["seeds"]
    rows, rec = summary["rows"], summary["gap_recovery"]
    head = f"| model | PCK@0.05 (crop, %), mean ± std over {len(seeds)} seed(s) | " + " | ".join(
        f"seed {k}" for k in seeds) + " |"
    lines = [head, "|" + " --- |" * (2 + len(seeds))]

    def line(label: str, cell: str, values: list, suffix: str = "") -> None:
        lines.append(f"| {label} | {cell} | " + " | ".join(_pct(v, suffix) for v in values) + " |")

    line("source-only", _mean_std(rows["source_only"]), rows["source_only"]["values"])
    for r, s in enumerate(rows["rounds"]):
        line(f"CC-SSL round {r + 1}", _mean_std(s), s["values"])
    line("oracle (target labels)", _mean_std(rows["oracle"]), rows["oracle"]["values"])
    per = rec["per_seed"]
    line("gap recovery, per seed then mean", f"{_mean_std(per, '%')} ({per['n']} of {len(seeds)} seeds)",
         per["values"], "%")
    lines.append(f"| gap recovery of the means | {_pct(rec['of_means'], '%')} | " + " | ".join(
        "" for _ in seeds) + " |")
    lines.append("")
    lines.append(f"std: {summary['std']}. Gap recovery = (last round − source-only) / (oracle − source-only); "
                 "undefined where the oracle is not above source-only.")
    if per["undefined_seeds"]:
        lines.append(f"Gap recovery undefined for seed(s) {per['undefined_seeds']} (oracle ≤ source-only or no "
                     f"oracle): the per-seed mean is over {per['n']} of {len(seeds)} seeds.")
    return "\n".join(lines)


def run_bench(out: Path, seeds: list[int], species: str = "horse", preset: str = "quick",
              runner: SeedRunner = run_flow) -> dict:
    """Every seed (run or reused), then :func:`summarise`; writes ``out/ccssl_bench.json`` atomically."""
    import torch

    out = Path(out).resolve()
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in {seeds}")
    clock = Stopwatch()
    per_seed = [run_seed(out, k, species, preset, runner) for k in seeds]
    result = {
        "benchmark": "ccssl", "species": species, "preset": str(preset), "metric": "PCK@0.05 (crop) on the "
        "held-out target test set", **summarise(per_seed), "per_seed": per_seed,
        "tracking_uri": f"sqlite:///{out / 'mlflow.db'}",
        **clock.total(), "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(out / "ccssl_bench.json", result, indent=2)
    return result


def bench_command(
    preset: str = typer.Option("quick", help="Flow preset (configs/flows/<name>.yaml) or a preset YAML path."),
    species: str = typer.Option("horse", help="Species template of source and target."),
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    out: Path = typer.Option(Path("runs/bench/ccssl"), help="Output folder (seed<k>/ flow folders and results, "
                             "mlflow.db, ccssl_bench.json)."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of the whole result."),
) -> None:
    """CC-SSL on generated data over seeds (the demo's flow): source-only, rounds, oracle, gap recovery."""
    from flows.env import quiet_environment

    seed_list = parse_seeds(seeds)
    quiet_environment()
    result = run_bench(out, seed_list, species, preset)
    typer.echo(f"CC-SSL {species} ({preset}), PCK@0.05 (crop) on the held-out target test set")
    typer.echo(format_table(result))
    for s in result["per_seed"]:
        typer.echo(f"seed {s['seed']}: {s['wall_s']} s wall, {s['cpu_s']} s CPU"
                   + (" (reused)" if s["reused"] else " (resumed)" if s["resumed"] else ""))
    typer.echo(f"{result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU in all, "
               f"{result['torch_threads']} torch thread(s), load average {result['load_average']}; "
               f"MLflow: animalpose ui --backend-store-uri {result['tracking_uri']}")
    if as_json:
        typer.echo(json.dumps(result))
