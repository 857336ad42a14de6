"""`animalpose models` commands: list the pose networks and summarise one."""

from __future__ import annotations

import typer

from animalpose.errors import AnimalposeError
from animalpose.jsonout import dumps

app = typer.Typer(no_args_is_help=True, help="Pose networks: parameters, input sizes, GFLOPs (multiply-adds).")


@app.command("list")
def list_(
    names: list[str] = typer.Argument(None, help="only these models (default: all)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list"),
) -> None:
    """Every listed network with its parameters and GFLOPs (10⁹ multiply-adds) at its default input."""
    from animalpose.models.factory import MODELS, model_info

    try:
        rows = [model_info(name) for name in (names or list(MODELS))]
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        keys = ("name", "params", "input_size", "gflops", "num_joints", "head_codec", "description")
        typer.echo(dumps([{k: r[k] for k in keys} for r in rows], indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    typer.echo(f"{'name':<{width}}  {'params':>12}  {'input':>9}  {'GFLOPs':>7}  {'K':>3}  description")
    for r in rows:
        size = f"{r['input_size'][0]}x{r['input_size'][1]}"
        typer.echo(
            f"{r['name']:<{width}}  {r['params']:>12,}  {size:>9}  {r['gflops']:>7.2f}  {r['num_joints']:>3}  "
            f"{r['description']}"
        )


@app.command("summary")
def summary(
    name: str = typer.Argument(..., help="model name, e.g. hourglass4"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Parameters per top-level block, output shapes, GFLOPs and head of one network."""
    import torch

    from animalpose.models.factory import build_model, model_info

    try:
        info = model_info(name)
    except AnimalposeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with torch.device("meta"):
        net = build_model(name).net
    blocks: dict[str, int] = {}
    for child_name, child in net.named_children():
        blocks[child_name] = sum(p.numel() for p in child.parameters())
    info["blocks"] = {k: v for k, v in blocks.items() if v}
    info["architecture"] = type(net).__name__
    if as_json:
        typer.echo(dumps(info, indent=2))
        return
    h, w = info["input_size"]
    typer.echo(f"{name}: {info['architecture']} — {info['description']}")
    typer.echo(f"  parameters   {info['params']:,}")
    typer.echo(f"  input        {h}x{w} (N, 3, H, W); stride {info['stride']}")
    typer.echo(f"  GFLOPs       {info['gflops']:.3f} (multiply-adds, batch 1)")
    typer.echo(f"  outputs      {len(info['outputs'])} x {tuple(info['outputs'][-1])} heatmaps")
    typer.echo(f"  joints       {info['num_joints']}; head {info['head_codec']}")
    width = max(len(k) for k in info["blocks"])
    typer.echo("  parameters per block:")
    for k, v in info["blocks"].items():
        typer.echo(f"    {k:<{width}}  {v:>12,}")
