"""`animalpose bench` commands."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="bench commands")
app.command("synth")(__import__("animalpose.bench.synth", fromlist=["bench_command"]).bench_command)
app.command("loader")(__import__("animalpose.bench.loader", fromlist=["bench_command"]).bench_command)
app.command("models")(__import__("animalpose.cli.models_cmd", fromlist=["bench_command"]).bench_command)
app.command("wscda")(__import__("animalpose.bench.wscda", fromlist=["bench_command"]).bench_command)
app.command("ccssl-real")(__import__("animalpose.bench.ccssl_real", fromlist=["bench_command"]).bench_command)
app.command("ccssl")(__import__("animalpose.bench.ccssl", fromlist=["bench_command"]).bench_command)
app.command("pseudolabel")(__import__("animalpose.bench.pseudolabel", fromlist=["bench_command"]).bench_command)
