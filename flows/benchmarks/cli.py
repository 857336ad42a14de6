"""`animalpose bench`: the one command group of every benchmark (speed, and the methods over seeds).

Each benchmark module keeps its command next to what it measures; this module only names them. The
modules import torch (and some Prefect and MLflow) at the top, so they are imported only when their
command runs or shows its own help: ``animalpose --help`` and ``animalpose bench --help`` list the
commands from the short help given here (``tests/flows/benchmarks/test_bench_cli.py`` checks that it is
each command's own first docstring line).
"""

from __future__ import annotations

import importlib

import click
import typer
from typer.core import TyperGroup

#: command name -> (module under flows.benchmarks, function, short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("synth", "bench_command",
              "Images per second per process of the synthetic generator (cad, photo stills; clips)."),
    "loader": ("loader", "bench_command",
               "Loader samples/s (strong preset, 256² and 128²) next to the quick model's training samples/s."),
    "models": ("models", "bench_command",
               "Forward and forward+backward images/s of the pose networks, side by side with SimpleBaseline-50."),
    "pseudolabel": ("pseudolabel", "bench_command", "Pseudo-labelling images/s against plain inference and the "
                                                    "V-view forward passes (overhead goal 25%)."),
    "pseudolabel-views": ("pseudolabel_views", "bench_command",
                          "Pseudo-labelling with 7 views against 5, plain and BN-folded channels-last, side by side."),
    "train-step": ("engine", "train_step_command", "Forward + backward + optimiser step on random input: images/s "
                                                   "of the network's share of training."),
    "quick-epoch": ("engine", "quick_epoch_command",
                    "The quick preset end to end on generated horses: seconds per epoch, images/s."),
    "pipeline": ("pipeline", "bench_command",
                 "The quick preset's data pipeline against its network: per-stage profile, whole epoch vs network "
                 "alone."),
    "contention": ("contention", "bench_command", "The demo's pretraining epoch beside 0, 1, 2 busy neighbours: "
                                                  "the new thread plan against the old."),
    "predict": ("engine", "predict_command", "`predict` on a video: frames per second end to end."),
    "cli": ("clitime", "bench_command", "Wall time of `animalpose --help` as a ratio to `python -c pass`."),
    "gpu": ("gpu", "bench_command",
            "Training and pseudo-labelling speed on one GPU: fp32, bf16 + channels-last, MFU, memory."),
    "ccssl": ("ccssl", "bench_command", "CC-SSL on generated data over seeds (the demo's flow): source-only, "
                                        "rounds, oracle, gap recovery."),
    "wscda": ("wscda", "bench_command", "WS-CDA on generated data: (a) human-only, (b) few animals, (c) WS-CDA, "
                                        "(d) + PPLO, (e) oracle."),
    "ccssl-real": ("ccssl_real", "bench_command",
                   "Real lab video (mirror-mouse, SLEAP): supervised, lambda=0 control, Lightning Pose's terms, "
                   "CC-SSL."),
    "multiview-real": ("multiview_real", "bench_command", "Mirror-mouse: the ccssl-real models' val and test pixel "
                                                          "error raw and mended with the views' geometry."),
    "ccssl-animalpose": ("ccssl_animalpose", "bench_command", "Synthetic -> real Animal-Pose: source-only, "
                                                              "CC-SSL, its lambda = 0 control and the oracle on test."),
    "wscda-animalpose": ("wscda_animalpose", "bench_command", "WS-CDA on real Animal-Pose horses: human-only, "
                                                              "cow + sheep, WS-CDA, + PPLO, oracle, controls."),
}


class _LazyCommand(click.Command):
    """A listed command whose module is imported only when the command is parsed (run or its ``--help``)."""

    def __init__(self, name: str, module: str, function: str, short_help: str) -> None:
        super().__init__(name, help=short_help, short_help=short_help)
        self._target = (module, function)
        self._real: click.Command | None = None

    def real(self) -> click.Command:
        if self._real is None:
            module, function = self._target
            fn = getattr(importlib.import_module(f"flows.benchmarks.{module}"), function)
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(self.name)(fn)
            self._real = typer.main.get_command(single)
            self._real.name = self.name
        return self._real

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        return self.real().make_context(info_name, args, parent=parent, **extra)


class LazyBenchGroup(TyperGroup):
    """The ``bench`` group: its commands come from :data:`COMMANDS`, imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, function, short_help = COMMANDS[cmd_name]
            self.commands[cmd_name] = _LazyCommand(cmd_name, module, function, short_help)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(no_args_is_help=True, cls=LazyBenchGroup,
                  help="Benchmarks of BENCHMARKS.md: speed, and the methods over seeds.")
