"""Label quality on the calibration half (img41, 43, ..., 59) of the 20-frame val (the supervised models of the
mirror-val screens, /work/bench_out/s41_mv41 on the machine that ran it): the template's labels (views, paws
re-assigned and projected from the bottom view), and the same with the other paired body parts (tails, noses)
fused across the views. Arguments: --adapt style overrides, e.g. data.bbox_padding_real=1.2 (the labelling crop's
padding; the same as ccssl.label_padding for labelling). Run at 87c596c..fdbee35 (issue 23, BENCHMARKS.md)."""
import sys, tempfile
from pathlib import Path
import numpy as np
from flows.benchmarks.ccssl_real import BenchSettings, adapt_config, prepare
from animalpose.adapt.ccssl import CCSSLRun, view_groups
from animalpose.adapt.view_assignment import reassign_views, project_views
B = Path('/work/bench_out')
settings = BenchSettings(train_range=("img01", "img40"), val_range=("img41", "img60"))
prep = prepare(settings, B / 's41_mv41' / 'mirror-mouse')
extra = sys.argv[1:]
for seed in (0, 1, 2):
    src = B / f's41_mv41/mirror-mouse/seed_{seed}/supervised/last.ckpt'
    s2 = BenchSettings(train_range=settings.train_range, val_range=settings.val_range, adapt_overrides=tuple(extra))
    cfg = adapt_config(s2, prep, seed, src)
    run = CCSSLRun(cfg, Path(tempfile.mkdtemp()), progress=False)
    run.prepare()
    lab = run._labelled_labels(0)
    mv = run._multiview_prior()
    views = np.asarray(mv.views)  # (P, 2)
    names = run.schema.joints
    paws = view_groups(cfg.ccssl.view_assignment, cfg.ccssl.multiview_loss_views)
    src_idx = reassign_views(lab.xy, mv, paws, [1])
    L = lab.take_joints(src_idx)
    tmpl = project_views(L.xy, mv, paws, [1])
    truth = lab.truth.copy()
    odd = np.array([int(Path(r.image).stem[-2:]) % 2 == 1 for r in lab.records])
    truth[~odd, :, 2] = 0  # the calibration half only
    def err(xy):
        e = np.linalg.norm(xy - truth[..., :2], axis=-1); e[truth[..., 2] <= 0] = np.nan; return e
    others = [p for p in range(len(views)) if not any(p in g for g in paws)]
    variants = {'template': tmpl}
    for ref in (0, 1):
        variants[f'others ref {"top" if ref == 0 else "bot"}'] = project_views(tmpl, mv, [[p] for p in others], [ref] * len(others))
    # orthogonal projection onto the subspace (both views move)
    mean = mv.pca.mean.numpy().astype(np.float64); U = mv.pca.components.numpy().astype(np.float64)
    orth = tmpl.copy()
    for p in others:
        x = tmpl[:, views[p]].reshape(len(tmpl), -1)
        xh = mean + (x - mean) @ U.T @ U
        orth[:, views[p]] = xh.reshape(len(tmpl), 2, 2)
    variants['others orthogonal'] = orth
    plain = None
    print(f'seed {seed}: paired others:', [names[views[p][0]] + '/' + names[views[p][1]] for p in others])
    for k, xy in variants.items():
        e = err(xy)
        part = np.nanmean(e[:, views[others].ravel()])
        print(f'  {k:22s} all {np.nanmean(e):6.2f}  others {part:6.2f}  ' + ' '.join(f'{names[j]}={np.nanmean(e[:, j]):.1f}' for j in views[others].ravel()))
