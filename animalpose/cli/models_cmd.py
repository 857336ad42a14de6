"""`animalpose models` commands: list the pose networks and summarise one."""

from __future__ import annotations

from pathlib import Path

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


@app.command("import-reference")
def import_reference_cmd(
    checkpoint: Path = typer.Argument(..., help="the CC-SSL reference's checkpoint.pth.tar / model_best.pth.tar"),
    out: Path = typer.Argument(..., help="animalpose checkpoint to write"),
    model: str = typer.Option("hourglass4", help="hourglass1/2/4/8: the reference's --stacks"),
    schema: str = typer.Option("tigdog", help="keypoint schema of its heatmap channels"),
    mean: list[float] = typer.Option([], "--mean", help="RGB mean in [0, 1] it subtracts (repeat 3 times)"),
    mean_file: Path | None = typer.Option(None, "--mean-file", help="the reference's mean.pth.tar instead"),
) -> None:
    """Convert a CC-SSL reference checkpoint (DataParallel names, downsample.0.*) into an animalpose checkpoint
    that `animalpose evaluate --protocol reference` scores."""
    from animalpose.engine.import_reference import import_reference, read_reference_mean

    if (mean_file is None) == (not mean):
        typer.echo("error: give the input mean: --mean R --mean G --mean B, or --mean-file mean.pth.tar", err=True)
        raise typer.Exit(2)
    rgb = read_reference_mean(mean_file) if mean_file is not None else tuple(mean)
    path = import_reference(checkpoint, out, model=model, schema=schema, mean=rgb)
    typer.echo(f"wrote {path} ({model}, schema {schema}, mean {', '.join(f'{v:.4f}' for v in rgb)}, std 1)")
