"""`animalpose bench`: the one command group of every benchmark (speed, and the methods over seeds).

Each benchmark module keeps its command next to what it measures; this module only names them.
"""

from __future__ import annotations

import typer

from flows.benchmarks import (
    ccssl,
    ccssl_animalpose,
    ccssl_real,
    engine,
    loader,
    models,
    pseudolabel,
    synth,
    wscda,
    wscda_animalpose,
)

app = typer.Typer(no_args_is_help=True, help="Benchmarks of BENCHMARKS.md: speed, and the methods over seeds.")
app.command("synth")(synth.bench_command)
app.command("loader")(loader.bench_command)
app.command("models")(models.bench_command)
app.command("pseudolabel")(pseudolabel.bench_command)
app.command("train-step")(engine.train_step_command)
app.command("quick-epoch")(engine.quick_epoch_command)
app.command("predict")(engine.predict_command)
app.command("ccssl")(ccssl.bench_command)
app.command("wscda")(wscda.bench_command)
app.command("ccssl-real")(ccssl_real.bench_command)
app.command("ccssl-animalpose")(ccssl_animalpose.bench_command)
app.command("wscda-animalpose")(wscda_animalpose.bench_command)
