"""`animalpose serve`: the local Prefect + MLflow stack, serving the deployments."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer

from animalpose.paths import data_home

app = typer.Typer(help="Start (or --stop) a local Prefect server and MLflow server and serve the deployments.")


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def serve(
    home: Path = typer.Option(
        None, help="Folder for the servers' databases, logs and PIDs (default: data home/stack)."
    ),
    prefect_port: int = typer.Option(4200, help="Prefect server port on --host."),
    mlflow_port: int = typer.Option(5000, help="MLflow server port on --host."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback unless you ask otherwise)."),
    stop: bool = typer.Option(False, "--stop", help="Stop a stack started earlier and exit."),
    deployments: bool = typer.Option(True, help="Serve the deployments after the servers are up."),
    activate_schedules: bool = typer.Option(False, help="Make the weekly retraining schedules active."),
) -> None:
    from animalpose.cli.supervise import is_supervised
    from flows.stack import record_serving, start_stack, stop_stack

    home = Path(home) if home else data_home() / "stack"
    if stop:
        typer.echo("stopped" if stop_stack(home) else f"no stack recorded under {home}")
        return
    state = start_stack(home, host=host, prefect_port=prefect_port, mlflow_port=mlflow_port, say=typer.echo)
    typer.echo(f"Prefect UI and API: http://{host}:{prefect_port}  (export PREFECT_API_URL={state.prefect_api_url})")
    typer.echo(f"MLflow UI:          {state.mlflow_url}")
    os.environ["PREFECT_API_URL"] = state.prefect_api_url
    os.environ["MLFLOW_TRACKING_URI"] = state.mlflow_url
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        # `serve --stop` from another terminal stops this process first: through its supervisor (the process
        # the user started, which passes the stop on and ends every process this one started) when it has one
        record_serving(home, os.getppid() if is_supervised() else os.getpid())
        if deployments:
            from flows.deployments import deployment_specs, serve_deployments

            typer.echo(f"Registering {len(deployment_specs())} deployments with the Prefect server "
                       "(about a minute on 2 cores)...")
            typer.echo("Serving deployments; in another terminal: prefect deployment run ccssl/horse")
            serve_deployments(active=activate_schedules)
        else:
            typer.echo("Servers are up; Ctrl-C stops them.")
            import time

            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_stack(home)
        typer.echo("stack stopped")


def _interrupt(signum, frame) -> None:
    """SIGTERM (``serve --stop``) ends the serving process the way Ctrl-C does."""
    raise KeyboardInterrupt
