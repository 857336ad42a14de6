"""`animalpose ui`: the MLflow UI on the project's store, lean (one worker, no job executor, 127.0.0.1).

``mlflow ui`` with its defaults starts 10 processes and about 1.35 GB; one worker without the job
executor is 2 processes and about 530 MB (:func:`flows.stack.ui_process`). The command replaces itself
with the server (Ctrl-C stops it).
"""

from __future__ import annotations

import os

import typer

app = typer.Typer(help="Open the MLflow UI on the project's store (lean: 2 processes, 127.0.0.1).")


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def ui(
    backend_store_uri: str = typer.Option(None, "--backend-store-uri",
                                          help="MLflow store to show (default: the project's, "
                                          "sqlite:///<data home>/mlflow.db, where demo, CLI and serve record)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback unless you ask otherwise)."),
    port: int = typer.Option(5000, help="Port of the UI."),
) -> None:
    from flows.stack import StackError, ui_process

    try:
        cmd, env = ui_process(backend_store_uri, host, port)
    except StackError as exc:
        raise typer.BadParameter(str(exc), param_hint="--backend-store-uri") from exc
    typer.echo(f"MLflow UI on {cmd[cmd.index('--backend-store-uri') + 1]}: http://{host}:{port}  (Ctrl-C stops it)")
    os.execve(cmd[0], cmd, env)
