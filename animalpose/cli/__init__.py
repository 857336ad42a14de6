"""The ``animalpose`` command. Each command group lives in its own module; this file only assembles them.

Nothing here, nor at the top of a command module, imports torch, MLflow or Prefect: the commands import
what they need when they run, so ``--help``, ``--version``, ``schemas``, ``config show`` and argument
errors answer in the time Python and typer take to start (``animalpose bench cli``;
``tests/cli/test_lazy_cli.py``). The benchmark modules are imported by their command only
(:class:`flows.benchmarks.cli.LazyBenchGroup`)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

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
from animalpose.cli.supervise import is_supervised, run_supervised
from animalpose.errors import AnimalposeError
from animalpose.outputs import describe_os_error
from animalpose.telemetry import telemetry_off
from flows.benchmarks.cli import app as bench_app

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

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
    telemetry_off()  # every command, before any of them imports MLflow or Prefect


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


SUPERVISED_COMMANDS = ("serve", "demo")


def _supervise(args: list[str]) -> bool:
    """`serve` and `demo` run under :mod:`animalpose.cli.supervise` (not `serve --stop`, not --help)."""
    return (bool(args) and args[0] in SUPERVISED_COMMANDS and not is_supervised()
            and not {"--stop", "--help", "-h"} & set(args))


def _serve_home(args: list[str]) -> Path:
    for i, a in enumerate(args):
        if a == "--home" and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--home="):
            return Path(a.split("=", 1)[1])
    from animalpose.paths import data_home

    return data_home() / "stack"


def _own_stack_stopper(home: Path):
    """The supervisor's clean-up for `serve`: stop the stack under ``home`` if its child started it (the
    servers live in process groups of their own), never one another `serve` runs (a second `serve` is
    refused and exits; stopping on its way out would end the first one's stack)."""
    from flows.stack import StackError, load_state, stop_stack

    def servers(state_file: Path) -> tuple[int, int] | None:
        try:
            state = load_state(state_file)
        except StackError:
            return None
        return state.prefect_pid, state.mlflow_pid

    state_file = home.resolve() / "stack.json"
    before = servers(state_file)

    def stop() -> None:
        try:
            state = load_state(state_file)
        except StackError:  # stopped already (the child's own clean-up, or `serve --stop`)
            return
        # serve_pid: recorded by the child as this process; 0: the child died between starting the servers
        # and recording itself, so servers other than those found before the start are its own
        if state.serve_pid == os.getpid() or (state.serve_pid == 0 and (state.prefect_pid, state.mlflow_pid)
                                               != before):
            stop_stack(home)

    return stop


def main(argv: list[str] | None = None) -> None:
    """Entry point: library errors become one clear line on stderr and exit code 2; `serve` and `demo`
    run supervised, so that SIGTERM, Ctrl-C and `serve --stop` end them and their children."""
    args = sys.argv[1:] if argv is None else list(argv)
    if _supervise(args):
        on_exit = None
        if args[0] == "serve":
            on_exit = _own_stack_stopper(_serve_home(args))
        sys.exit(run_supervised(args, on_exit=on_exit))
    try:
        app(args=args, standalone_mode=True)
    except AnimalposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        # a write that fails where no check caught it first (disk filled up mid-run): one line, not a traceback
        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"error: cannot write {exc.filename or '(unknown file)'}: {describe_os_error(exc)}", file=sys.stderr)
        sys.exit(2)
