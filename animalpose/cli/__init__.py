"""The ``animalpose`` command. Each command group lives in its own module; this file only assembles them.

Nothing here, nor at the top of a command module, imports torch, MLflow or Prefect: the commands import
what they need when they run, so ``--help``, ``--version``, ``schemas``, ``config show`` and argument
errors answer in the time Python and typer take to start (``animalpose bench cli``;
``tests/cli/test_lazy_cli.py``). The benchmark modules are imported by their command only
(:class:`flows.benchmarks.cli.LazyBenchGroup`)."""

from __future__ import annotations

import sys

import typer

from animalpose.cli import (
    adapt_cmd,
    config_cmd,
    data_cmd,
    demo_cmd,
    evaluate_cmd,
    init_cmd,
    models_cmd,
    predict_cmd,
    schemas_cmd,
    serve_cmd,
    synth_cmd,
    train_cmd,
    ui_cmd,
)
from animalpose.errors import AnimalposeError
from flows.benchmarks.cli import app as bench_app

app = typer.Typer(
    name="animalpose",
    help="Pose estimation for unlabelled animals: synthetic pretraining, CC-SSL and WS-CDA adaptation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from animalpose import __version__

        typer.echo(f"animalpose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Pose estimation for unlabelled animals: synthetic pretraining, CC-SSL and WS-CDA adaptation."""


app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(config_cmd.app, name="config")
app.add_typer(data_cmd.app, name="data")
app.add_typer(models_cmd.app, name="models")
app.add_typer(synth_cmd.app, name="synth")
app.add_typer(bench_app, name="bench")
app.add_typer(serve_cmd.app, name="serve")
app.add_typer(train_cmd.app, name="train")
app.add_typer(evaluate_cmd.app, name="evaluate")
app.add_typer(predict_cmd.app, name="predict")
app.add_typer(adapt_cmd.app, name="adapt")
app.add_typer(demo_cmd.app, name="demo")
app.add_typer(ui_cmd.app, name="ui")
app.command("init")(init_cmd.init)


def main(argv: list[str] | None = None) -> None:
    """Entry point: library errors become one clear line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except AnimalposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
