"""`animalpose schemas` commands: list and show keypoint schemas."""

from __future__ import annotations

import typer

from animalpose.errors import AnimalposeError
from animalpose.jsonout import dumps

app = typer.Typer(no_args_is_help=True, help="Keypoint schemas: joint names, flip pairs, sigmas, skeletons.")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """List the keypoint schemas shipped in configs/keypoints/."""
    from animalpose.keypoints import list_schemas, load_schema

    try:
        schemas = [load_schema(name) for name in list_schemas()]
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        rows = [
            {"name": s.name, "num_joints": s.num_joints, "flip_pairs": len(s.flip_pairs),
             "sigmas": s.sigmas is not None}
            for s in schemas
        ]
        typer.echo(dumps(rows, indent=2))
        return
    width = max(len(s.name) for s in schemas)
    for s in schemas:
        flags = f"{len(s.flip_pairs)} flip pairs" if s.can_flip else "no flip"
        flags += ", OKS sigmas" if s.sigmas is not None else ""
        typer.echo(f"{s.name:<{width}}  {s.num_joints:>3} joints  {flags}")


@app.command("show")
def show(
    name: str = typer.Argument(..., help="schema name, e.g. tigdog"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Joints in order, flip pairs, OKS sigmas and skeleton of one schema."""
    from animalpose.keypoints import load_schema

    try:
        schema = load_schema(name)
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        data = schema.to_dict()
        if "original_order" in schema.extra:
            data["original_order"] = list(schema.extra["original_order"])
        typer.echo(dumps(data, indent=2))
        return
    j = schema.joints
    typer.echo(f"{schema.name}: {schema.num_joints} joints")
    width = max(len(n) for n in j)
    for k, joint in enumerate(j):
        sigma = "" if schema.sigmas is None else f"  sigma {schema.sigmas[k]:g}"
        mirror = dict([*schema.flip_pairs, *((b, a) for a, b in schema.flip_pairs)]).get(k)
        flip = f"  <-> {j[mirror]}" if mirror is not None else ""
        typer.echo(f"  {k:>2}  {joint:<{width}}{sigma}{flip}")
    if schema.flip_pairs:
        pairs = ", ".join(f"({a},{b}) {j[a]}/{j[b]}" for a, b in schema.flip_pairs)
        typer.echo(f"flip pairs: {pairs}")
    else:
        typer.echo("flip pairs: none (horizontal flip disabled)")
    typer.echo(f"sigmas: {'none published' if schema.sigmas is None else list(schema.sigmas)}")
    typer.echo("skeleton: " + ", ".join(f"{j[a]}-{j[b]}" for a, b in schema.skeleton))
