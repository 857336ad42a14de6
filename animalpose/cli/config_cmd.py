"""`animalpose config` commands: show the resolved configuration."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.errors import AnimalposeError
from animalpose.jsonout import dumps

app = typer.Typer(no_args_is_help=True, help="Typed experiment configuration: inspect resolved configs.")


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="configuration YAML (may name a `base:` file)"),
    overrides: list[str] | None = typer.Argument(None, help="overrides key.sub=value, e.g. train.lr=1e-3"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of YAML"),
) -> None:
    """Print FILE after `base:` inheritance, overrides, path resolution and validation.

    Training, CC-SSL (a `ccssl:` section) and WS-CDA (a `wscda:` section) configs alike."""
    from animalpose.config import load_config, section_names, to_dict, to_yaml

    try:
        cfg = load_config(file, _config_class(section_names(file)), overrides=overrides or [])
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(dumps(to_dict(cfg), indent=2))
    else:
        typer.echo(to_yaml(cfg), nl=False)


def _config_class(sections: set[str]) -> type:
    """The config class whose sections the file uses: CC-SSL, WS-CDA, else a training experiment."""
    from animalpose.config import ExperimentConfig

    if "ccssl" in sections:
        from animalpose.adapt.ccssl import CCSSLConfig

        return CCSSLConfig
    if "wscda" in sections:
        from animalpose.adapt.wscda.run import WSCDAConfig

        return WSCDAConfig
    return ExperimentConfig
