"""`animalpose serve`: the local Prefect + MLflow stack, serving the deployments."""

from __future__ import annotations

import os
import signal
import time
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
    t0 = time.monotonic()
    # this process talks to the servers it starts; set before Prefect is first imported (its settings
    # are read then: without the URL, registering would start a temporary server of its own)
    os.environ["PREFECT_API_URL"] = f"http://{host}:{prefect_port}/api"
    os.environ["MLFLOW_TRACKING_URI"] = f"http://{host}:{mlflow_port}"
    built = _build_in_background(activate_schedules) if deployments else None
    state = start_stack(home, host=host, prefect_port=prefect_port, mlflow_port=mlflow_port, say=typer.echo)
    typer.echo(f"Prefect UI and API: http://{host}:{prefect_port}  (export PREFECT_API_URL={state.prefect_api_url})")
    typer.echo(f"MLflow UI:          {state.mlflow_url}")
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        # `serve --stop` from another terminal stops this process first: through its supervisor (the process
        # the user started, which passes the stop on and ends every process this one started) when it has one
        record_serving(home, os.getppid() if is_supervised() else os.getpid())
        if built is not None:
            from flows.deployments import serve_deployments

            ready = built.result()
            typer.echo(f"{len(ready)} deployments built; registering them with the Prefect server")

            def say(text: str) -> None:
                typer.echo(f"{text}; ready in {time.monotonic() - t0:.0f} s" if text.startswith("Serving") else text)

            serve_deployments(deployments=ready, say=say)
        else:
            typer.echo("Servers are up; Ctrl-C stops them.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_stack(home)
        typer.echo("stack stopped")


def _build_in_background(active: bool):
    """A future of :func:`flows.deployments.build_deployments`: importing the flows and building their
    deployments (8 s on 2 loaded cores) overlaps the servers' start, which is spent mostly waiting."""
    from concurrent.futures import ThreadPoolExecutor

    import animalpose.tracking  # noqa: F401  (start_stack's import, done first: the builder holds the import lock)

    builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="build-deployments")

    def build():
        from flows.deployments import build_deployments

        return build_deployments(active=active)

    try:
        return builder.submit(build)
    finally:
        builder.shutdown(wait=False)


def _interrupt(signum, frame) -> None:
    """SIGTERM (``serve --stop``) ends the serving process the way Ctrl-C does."""
    raise KeyboardInterrupt
