"""`animalpose config` commands: show the resolved configuration."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from animalpose.errors import AnimalposeError

app = typer.Typer(no_args_is_help=True, help="Typed experiment configuration: inspect resolved configs.")


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="configuration YAML (may name a `base:` file)"),
    overrides: list[str] | None = typer.Argument(None, help="overrides key.sub=value, e.g. train.lr=1e-3"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of YAML"),
) -> None:
    """Print FILE after `base:` inheritance, overrides, path resolution and validation."""
    from animalpose.config import load_config, to_dict, to_yaml

    try:
        cfg = load_config(file, overrides=overrides or [])
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(to_dict(cfg), indent=2))
    else:
        typer.echo(to_yaml(cfg), nl=False)
