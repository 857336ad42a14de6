"""Label quality on the calibration half (img41, 43, ..., 59) of the 20-frame val (the supervised models of the
mirror-val screens, /work/bench_out/s41_mv41 on the machine that ran it): the template's labels (views, paws
re-assigned and projected from the bottom view), and the same with the other paired body parts (tails, noses)
fused across the views. Arguments: --adapt style overrides, e.g. data.bbox_padding_real=1.2 (the labelling crop's
padding; what ccssl.label_padding does for labelling). Run at 87c596c..fdbee35 (issue 23, BENCHMARKS.md)."""

import sys
import tempfile
from pathlib import Path

import numpy as np

from animalpose.adapt.ccssl import CCSSLRun, view_groups
from animalpose.adapt.view_assignment import project_views, reassign_views
from flows.benchmarks.ccssl_real import BenchSettings, adapt_config, prepare

B = Path("/work/bench_out")


def main(extra: list[str]) -> None:
    settings = BenchSettings(train_range=("img01", "img40"), val_range=("img41", "img60"),
                             adapt_overrides=tuple(extra))
    prep = prepare(settings, B / "s41_mv41" / "mirror-mouse")
    for seed in (0, 1, 2):
        cfg = adapt_config(settings, prep, seed, B / f"s41_mv41/mirror-mouse/seed_{seed}/supervised/last.ckpt")
        run = CCSSLRun(cfg, Path(tempfile.mkdtemp()), progress=False)
        run.prepare()
        lab = run._labelled_labels(0)
        mv = run._multiview_prior()
        views, names = np.asarray(mv.views), run.schema.joints  # views: (P, 2) joint indices per body part
        paws = view_groups(cfg.ccssl.view_assignment, cfg.ccssl.multiview_loss_views)
        labels = lab.take_joints(reassign_views(lab.xy, mv, paws, [1]))
        template = project_views(labels.xy, mv, paws, [1])
        truth = lab.truth.copy()
        odd = np.array([int(Path(r.image).stem[-2:]) % 2 == 1 for r in lab.records])
        truth[~odd, :, 2] = 0  # the calibration half only

        def err(xy: np.ndarray, truth: np.ndarray = truth) -> np.ndarray:
            e = np.linalg.norm(xy - truth[..., :2], axis=-1)
            e[truth[..., 2] <= 0] = np.nan
            return e

        others = [p for p in range(len(views)) if not any(p in g for g in paws)]
        variants = {"template": template}
        for ref, view in ((0, "top"), (1, "bot")):
            variants[f"others ref {view}"] = project_views(template, mv, [[p] for p in others], [ref] * len(others))
        mean = mv.pca.mean.numpy().astype(np.float64)
        axes = mv.pca.components.numpy().astype(np.float64)
        orth = template.copy()  # both views moved: the orthogonal projection onto the views' subspace
        for p in others:
            x = template[:, views[p]].reshape(len(template), -1)
            orth[:, views[p]] = (mean + (x - mean) @ axes.T @ axes).reshape(len(template), 2, 2)
        variants["others orthogonal"] = orth
        print(f"seed {seed}: paired others:", [f"{names[views[p][0]]}/{names[views[p][1]]}" for p in others])
        for name, xy in variants.items():
            e = err(xy)
            joints = " ".join(f"{names[j]}={np.nanmean(e[:, j]):.1f}" for j in views[others].ravel())
            print(f"  {name:22s} all {np.nanmean(e):6.2f}  others {np.nanmean(e[:, views[others].ravel()]):6.2f}  "
                  + joints)


if __name__ == "__main__":
    main(sys.argv[1:])
