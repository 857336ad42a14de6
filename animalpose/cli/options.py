"""Options shared by several commands."""

from __future__ import annotations

import typer


def threads_option():
    """``--threads N``: torch intra-op threads (default: the free cores; see :mod:`animalpose.threads`)."""
    return typer.Option(None, "--threads", min=1,
                        help="Torch threads (default: the cores this process may use minus the busy ones, less "
                             "the loader workers; OMP_NUM_THREADS also sets it). Loader workers: data.workers.")
