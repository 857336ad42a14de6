"""The ``synth`` stage: generate a synthetic dataset, never twice.

Two layers keep finished data from being regenerated:

1. The Prefect task is cached on its inputs (everything but ``workers``, which does not change the
   data): a second call with the same configuration returns the cached folder without calling the
   generator at all. If that folder has since been deleted, the flow refreshes the cache entry and
   the generator runs again.
2. The generator itself (:func:`synthetic.generate_dataset`) is idempotent by its manifest: after a
   crash it resumes what is missing, and with a finished manifest it returns at once.

With ``shards > 1`` the dataset is split into shard folders ``out/shard-000 ...``, each its own
complete dataset generated with seed ``seed + 1000 * i`` (so a sharded dataset is an equally valid
but different sample than the unsharded one); shards run in parallel on the flow's task runner,
e.g. a Dask cluster (:mod:`flows.runners`). Training takes the list of shard folders.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import INPUTS

from flows.common import retry_transient
from flows.runners import with_runner

SHARD_SEED_STRIDE = 1000


def _generate(**kwargs) -> Path:
    """The library call (looked up at call time, so a test can count calls)."""
    import synthetic

    return Path(synthetic.generate_dataset(**kwargs))


@task(
    name="synth",
    cache_policy=INPUTS - "workers",
    persist_result=True,
    result_serializer="json",  # no pickle is written or read back on a cache hit
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
    task_run_name="synth-{species}-{style}-{n}",
)
def synth(
    out: Path,
    species: str,
    style: str,
    n: int,
    size: int,
    seed: int,
    clips: int = 0,
    frames: int = 0,
    gap: float | None = None,
    workers: int = 1,
    backgrounds: str | None = None,
    backgrounds_p: float = 0.9,
) -> Path:
    """Generate ``n`` images (plus ``clips`` × ``frames`` video frames) of ``species`` in ``style`` into ``out``
    (``backgrounds``: photographs to cut backgrounds from, :mod:`synthetic.backgrounds`)."""
    return _generate(
        out=Path(out), species=species, style=style, n=n, size=size, seed=seed, clips=clips, frames=frames,
        workers=workers, gap=gap, backgrounds=backgrounds, backgrounds_p=backgrounds_p,
    )


def ensure_dataset(out: Path, role: str | None = None, **config) -> Path:
    """Call the cached :func:`synth` task; refresh its cache entry when the folder has been deleted.

    ``role`` (``source``, ``target``, ``test`` ...) names the task run ``synth-<role>-<style>``: the target
    and the test set of one flow have the same species, style and size, so the default name repeats."""
    out = Path(out)
    runner = synth if out.exists() else synth.with_options(refresh_cache=True)
    if role:
        runner = runner.with_options(task_run_name=f"synth-{role}-{config['style']}")
    return runner(out=out, **config)


def shard_sizes(n: int, shards: int) -> list[int]:
    """Split ``n`` items into ``shards`` near-equal parts (the first ``n % shards`` get one more)."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    base, extra = divmod(n, shards)
    return [base + (i < extra) for i in range(shards)]


@flow(name="synth-sharded", log_prints=True)
def synth_sharded(
    out: Path,
    species: str,
    style: str,
    n: int,
    size: int,
    seed: int,
    shards: int = 2,
    clips: int = 0,
    frames: int = 0,
    gap: float | None = None,
    backgrounds: str | None = None,
    backgrounds_p: float = 0.9,
) -> list[Path]:
    """Generate ``shards`` shard datasets in parallel on this flow's task runner; returns their folders."""
    out = Path(out)
    futures = []
    for i, (n_i, clips_i) in enumerate(zip(shard_sizes(n, shards), shard_sizes(clips, shards), strict=True)):
        shard = out / f"shard-{i:03d}"
        runner = synth if shard.exists() else synth.with_options(refresh_cache=True)
        futures.append(
            runner.submit(
                out=shard, species=species, style=style, n=n_i, size=size, seed=seed + SHARD_SEED_STRIDE * i,
                clips=clips_i, frames=frames if clips_i else 0, gap=gap, workers=1, backgrounds=backgrounds,
                backgrounds_p=backgrounds_p,
            )
        )
    return [f.result() for f in futures]


def generate(
    out: Path,
    species: str,
    style: str,
    n: int,
    size: int,
    seed: int,
    *,
    clips: int = 0,
    frames: int = 0,
    gap: float | None = None,
    workers: int = 1,
    shards: int = 1,
    dask_workers: int = 0,
    backgrounds: str | None = None,
    backgrounds_p: float = 0.9,
    role: str | None = None,
) -> list[Path]:
    """One dataset folder (``shards == 1``) or its shard folders, generated in parallel.

    ``dask_workers > 0`` runs the shards on a local Dask cluster of that many worker processes.
    """
    if shards <= 1:
        return [ensure_dataset(out, role, species=species, style=style, n=n, size=size, seed=seed, clips=clips,
                               frames=frames, gap=gap, workers=workers, backgrounds=backgrounds,
                               backgrounds_p=backgrounds_p)]
    sharded = with_runner(synth_sharded, dask_workers)
    return sharded(out=out, species=species, style=style, n=n, size=size, seed=seed, shards=shards, clips=clips,
                   frames=frames, gap=gap, backgrounds=backgrounds, backgrounds_p=backgrounds_p)
