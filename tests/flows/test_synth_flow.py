import json
from pathlib import Path

import pytest
from prefect import flow

import synthetic
from flows.synth import ensure_dataset, generate, shard_sizes


@pytest.fixture
def counting_generator(monkeypatch):
    """The real generator, wrapped to record every call (arguments included)."""
    calls = []
    real = synthetic.generate_dataset

    def counted(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(synthetic, "generate_dataset", counted)
    return calls


CONFIG = {"species": "horse", "style": "cad", "n": 4, "size": 32, "seed": 7}


@flow
def make(out: Path, workers: int = 1) -> Path:
    return ensure_dataset(out, workers=workers, **CONFIG)


def test_synth_task_never_regenerates_finished_data(prefect_harness, tmp_path, counting_generator):
    out = tmp_path / "horse-cad"
    first = make(out)
    assert first == out and (out / "manifest.json").is_file()
    assert len(counting_generator) == 1
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert make(out) == out  # same config: the cached result, no generator call
    assert make(out, workers=2) == out  # the worker count does not change the data, nor the cache key
    assert len(counting_generator) == 1
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    n_images = len(list((out / "images").iterdir()))
    assert n_images == CONFIG["n"]


def test_deleted_data_is_generated_again_and_other_configs_are_new_entries(prefect_harness, tmp_path,
                                                                          counting_generator):
    out = tmp_path / "horse-cad"
    make(out)
    import shutil

    shutil.rmtree(out)
    make(out)  # the cache entry points at a folder that is gone: refreshed, regenerated
    assert len(counting_generator) == 2 and (out / "manifest.json").is_file()
    other = tmp_path / "horse-cad-2"
    make(other)
    assert len(counting_generator) == 3 and (other / "manifest.json").is_file()


def test_shard_sizes_split_exactly():
    assert shard_sizes(10, 3) == [4, 3, 3]
    assert shard_sizes(2, 4) == [1, 1, 0, 0]
    assert sum(shard_sizes(1001, 7)) == 1001
    with pytest.raises(ValueError):
        shard_sizes(5, 0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sharded_generation_on_two_local_dask_workers(prefect_harness, tmp_path):
    @flow
    def sharded() -> list[Path]:
        return generate(tmp_path / "ds", "horse", "cad", 6, 32, 3, shards=2, dask_workers=2)

    shards = sharded()
    assert [s.name for s in shards] == ["shard-000", "shard-001"]
    counts = [json.loads((s / "annotations" / "tigdog.json").read_text()) for s in shards]
    assert [len(c["images"]) for c in counts] == [3, 3]
    # shard i is the unsharded generator at seed + 1000 i: same bytes as generating it directly
    direct = synthetic.generate_dataset(out=tmp_path / "direct", species="horse", style="cad", n=3, size=32,
                                        seed=3 + 1000)
    a = sorted((shards[1] / "images").iterdir())
    b = sorted((direct / "images").iterdir())
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    # a second run returns the cached shards without generating
    stamps = [(s / "manifest.json").stat().st_mtime_ns for s in shards]
    assert sharded() == shards
    assert [(s / "manifest.json").stat().st_mtime_ns for s in shards] == stamps
