"""The source-only stage of `animalpose bench ccssl --preset quick` for one seed, alone (about 5 CPU-minutes).

The flow's own calls without Prefect or MLflow registration: generate the source, source-val and test sets
(`flows.pretrain.dataset_dir`, `synthetic.generate_dataset`), the pretraining config
(`flows.pretrain.train_config`), `engine.train`, and `flows.evaluate.evaluate` on the target test set. It runs
on any commit since aa9b6ba (2026-12-04), which is how the seed-0 figure was compared across commits
(BENCHMARKS.md, CC-SSL quick preset). Prints the datasets' digests (images and annotations, manifests left
out), the per-epoch history and the source-only PCK@0.05 to the last digit:

    ANIMALPOSE_HOME=$(mktemp -d) OMP_NUM_THREADS=1 PYTHONPATH=<tree> python \
        docs/results/ccssl_quick/source_only_seed.py [--seed 0] [--epochs N] [--out DIR]

``--epochs N`` cuts the pretraining short (the schedule is constant, so epoch 1 of a short run is epoch 1 of
the full one: a cheap bit-for-bit check).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from pathlib import Path

import torch


def digest(folder: Path) -> dict[str, tuple[int, str]]:
    """(file count, SHA-256 prefix) of a dataset folder's images and of its annotation files."""
    kinds = {"images": lambda f: f.suffix.lower() in (".png", ".jpg", ".jpeg"),
             "annotations": lambda f: f.suffix == ".json" and "manifest" not in f.name}
    out = {}
    for kind, keep in kinds.items():
        h = hashlib.sha256()
        files = sorted(f for f in folder.rglob("*") if f.is_file() and keep(f))
        for f in files:
            h.update(str(f.relative_to(folder)).encode())
            h.update(f.read_bytes())
        out[kind] = (len(files), h.hexdigest()[:16])
    return out


def main() -> None:
    import synthetic
    from animalpose.config import parse_config
    from animalpose.engine.train import train
    from flows.ccssl import seed_plan
    from flows.evaluate import PCK, evaluate
    from flows.presets import load_preset
    from flows.pretrain import dataset_dir, train_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's pretrain_epochs")
    ap.add_argument("--out", type=Path, default=Path("source_only_out"))
    args = ap.parse_args()
    species, p = "horse", load_preset("quick")
    seeds = seed_plan(p.seed, args.seed)
    print("torch", torch.__version__, torch.backends.cpu.get_cpu_capability(), "threads", torch.get_num_threads())

    def make(spec, seed: int, role: str) -> Path:
        folder = dataset_dir(species, spec, seed, role)
        synthetic.generate_dataset(out=folder, species=species, style=spec.style, n=spec.n, size=spec.size,
                                   seed=seed, clips=spec.clips, frames=spec.frames, gap=spec.gap, workers=1)
        print(role, folder.name, digest(folder), flush=True)
        return folder

    source = make(p.source, seeds.source, "source")
    source_val = make(p.source_val, seeds.source_val, "source-val")
    test = make(p.target_test, seeds.test, "test")
    # since 2026-12-05 the flow's pretraining stage also applies the preset's source_overrides
    extra = {"source": True} if "source" in inspect.signature(train_config).parameters else {}
    cfg, where = train_config(p, [source], [source_val], epochs=args.epochs or p.pretrain_epochs, model=None,
                              tracking_uri=None, experiment="source-only-seed", seed=seeds.train, **extra)
    res = train(parse_config(cfg, where=where, base_dir=Path(where).parent), out_dir=args.out.resolve(),
                name="pretrain-horse", progress=False)
    for epoch in res.history:
        print(json.dumps({k: v for k, v in epoch.items() if "seconds" not in k and "per_s" not in k}), flush=True)
    best = res.best_checkpoint or res.last_checkpoint
    metrics = evaluate.fn(best, test, p.eval_batch_size, cfg["data"]["schema"])["metrics"]
    print("SOURCE_ONLY", repr(float(metrics[PCK])), flush=True)


if __name__ == "__main__":
    main()
