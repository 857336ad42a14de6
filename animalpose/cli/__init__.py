"""The ``animalpose`` command. Each command group lives in its own module; this file only assembles them."""

from __future__ import annotations

import errno
import sys

import typer

from animalpose.cli import (
    adapt_cmd,
    config_cmd,
    data_cmd,
    demo_cmd,
    evaluate_cmd,
    models_cmd,
    predict_cmd,
    schemas_cmd,
    serve_cmd,
    synth_cmd,
    train_cmd,
)
from animalpose.errors import AnimalposeError
from animalpose.outputs import describe_os_error
from flows.benchmarks.cli import app as bench_app

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

app = typer.Typer(
    name="animalpose",
    help="Pose estimation for unlabelled animals: synthetic pretraining, CC-SSL and WS-CDA adaptation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: library errors become one clear line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except AnimalposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        # a write that fails where no check caught it first (disk filled up mid-run): one line, not a traceback
        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"error: cannot write {exc.filename or '(unknown file)'}: {describe_os_error(exc)}", file=sys.stderr)
        sys.exit(2)
