"""Keep the better model: every adaptation run beside its supervised control, scored on labelled val frames.

On real lab video CC-SSL has made models worse (issue 23: mirror-mouse, 17.6 px after CC-SSL against
13.2 px for the same epochs on the labels alone). So an adaptation run is never returned on its own:
:func:`run_ccssl_with_control` runs CC-SSL (:class:`~animalpose.adapt.ccssl.CCSSLRun`), then trains the
*control*, the same network from the same starting model for the same epochs at the same learning rate on
the labelled source alone (λ = 0: no pseudo-labels), scores both on the held-out labelled frames with
:func:`animalpose.engine.evaluate.evaluate` (mean pixel error in original-image pixels, the measure DLC and
Lightning Pose lead with) and copies the better one to ``final.ckpt``. ``keep_better.json`` says which
was kept and by how much, with the margin's paired standard error over the val frames (each frame scored by both
models), so that a user sees when the val frames cannot tell the arms apart; a tie keeps the control (the
adaptation has to earn its place). The error counts the frames as independent, and frames of one session are not:
it understates the uncertainty (real mirror-mouse, seed 0 of `init`'s rig template: the adapted model 0.59 ± 0.21 px
behind the supervised one on the 10 val frames, 1.06 ± 0.66 px ahead on the 30 test frames; BENCHMARKS.md).

The model both arms started from (``ccssl.source_checkpoint``, or the run's source-only training) is scored
beside them and kept when neither arm beats it: on the SLEAP clip, 45 epochs on 20 labelled frames at the
template's rate made the control worse than the 180-epoch model it continued in every seed, and the adapted
model worse on val in one (BENCHMARKS.md, issue 23). A user's model is never returned worse on val than the
model they gave, and the JSON says which of the three was kept.

The held-out frames are ``ccssl.target_val`` when given (labelled target frames: the synthetic → real
case), else the real sets of ``data.val`` (a lab project's val split; a generated val set is not the
target domain). Neither is used for training; with
``train.select_on`` naming them they may also pick each arm's epoch, the same rule for both arms.

Output (beside CC-SSL's own files in the run folder): ``control/`` (the control's trainer folder),
``keep_better.json`` and ``final.ckpt``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from animalpose.adapt.ccssl import TARGET_VAL, CCSSLConfig, CCSSLResult, CCSSLRun
from animalpose.adapt.diagnostics import write_json
from animalpose.atomic import atomic_path
from animalpose.data.readers import read_dataset
from animalpose.engine.build import is_synthetic
from animalpose.engine.evaluate import evaluate
from animalpose.engine.train import checkpoint_extra
from animalpose.engine.trainer import Trainer, seed_everything
from animalpose.errors import ConfigError, DataError
from animalpose.tracking import Tracker

METRIC = "pixel_error_mean"  # lower is better


@dataclass
class KeepBetter:
    """What the keep-the-better rule found.

    Attributes:
        kept: "adapted", "control" or "source" (the model both started from).
        adapted, control: each arm's checkpoint and its val metrics (``{file: {metric: value}}`` and the
            mean of ``metric`` over the files).
        metric: the deciding metric (mean pixel error, original pixels; lower is better).
        margin: control's minus adapted's score (positive: the adaptation is better), in pixels.
        relative: ``margin`` as a fraction of the control's score.
        final: the copy of the kept checkpoint.
        source: the starting model's checkpoint and metrics (None when the run started from a fresh network).
        margin_se: ``margin``'s paired standard error over the val frames (:func:`paired_margin_se`; None for a
            file of one frame).
        frames: the val frames both arms were scored on.
    """

    kept: Literal["adapted", "control", "source"]
    adapted: dict
    control: dict
    metric: str
    margin: float
    relative: float
    final: str
    val: list[str]
    source: dict | None = None
    margin_se: float | None = None
    frames: int = 0

    @property
    def within_noise(self) -> bool:
        """Whether the arms' margin is within two of its standard errors (the val frames do not tell them apart)."""
        return self.margin_se is not None and abs(self.margin) < 2 * self.margin_se

    def sentence(self) -> str:
        a, c = self.adapted["score"], self.control["score"]
        start = "" if self.source is None else f"; the model both started from: {self.source['score']:.2f} px"
        if self.margin_se is not None:
            start += (f"; the margin's paired standard error over the {self.frames} val frames: {self.margin_se:.2f} px"
                      + (", so these frames do not tell the two arms apart" if self.within_noise else ""))
        if self.kept == "source":
            return (f"kept the model the adaptation started from: val mean pixel error {self.source['score']:.2f} px "
                    f"against {a:.2f} px for the adapted model and {c:.2f} px for the supervised control (neither "
                    "improved it)")
        if self.kept == "adapted":
            return (f"kept the adapted model: val mean pixel error {a:.2f} px against {c:.2f} px for the supervised "
                    f"control (better by {self.margin:.2f} px, {100 * self.relative:.1f} %){start}")
        return (f"kept the supervised control: val mean pixel error {c:.2f} px against {a:.2f} px for the adapted "
                f"model (the adaptation was worse by {-self.margin:.2f} px, {-100 * self.relative:.1f} %){start}")


def choose(adapted: float, control: float, source: float | None = None
           ) -> tuple[Literal["adapted", "control", "source"], float, float]:
    """(kept model, margin = control - adapted, margin / control) for the mean pixel errors of the adapted model,
    its control and (when given) the model both started from: the lowest is kept; a tie keeps the starting
    model, then the control (what trained less; the adaptation has to earn its place)."""
    margin = control - adapted
    scores = [("source", source), ("control", control), ("adapted", adapted)]
    kept = min((s, i, name) for i, (name, s) in enumerate(scores) if s is not None)[2]
    return kept, margin, (margin / control if control > 0 else 0.0)


def paired_margin_se(control: Sequence[dict], adapted: Sequence[dict]) -> float | None:
    """The standard error of ``control``'s minus ``adapted``'s score (the mean over files of each file's mean pixel
    error over its labelled joints), the frames as the sampling unit and each frame scored by both models.

    Per file: with d_i the frame's summed error difference and n_i its labelled joints, the file's margin is
    D = Σd / Σn, a ratio whose linearised variance is m / (m − 1) · Σ (d_i − D n_i)² / (Σn)² over its m frames (for
    equal n_i, the plain standard error of the frames' mean differences); the files' errors add as independent,
    divided by the number of files. None when a file has fewer than 2 frames.

    Args:
        control, adapted: per val file, ``evaluate(..., per_instance=True)["per_instance"]`` of each model, the
            same frames in the same order.
    """
    variances = []
    for c, a in zip(control, adapted, strict=True):
        if c["image"] != a["image"] or c["joints"] != a["joints"]:
            raise ValueError("the two models were scored on different frames")
        n = np.asarray(c["joints"], np.float64)
        d = np.asarray(c["pixel_error_sum"], np.float64) - np.asarray(a["pixel_error_sum"], np.float64)
        if len(n) < 2 or n.sum() <= 0:
            return None
        r = d - d.sum() / n.sum() * n
        variances.append(len(n) / (len(n) - 1) * (r ** 2).sum() / n.sum() ** 2)
    return float(np.sqrt(sum(variances)) / len(variances)) if variances else None


def held_out_paths(cfg: CCSSLConfig) -> list[Path]:
    """The labelled frames both arms are scored on: ``ccssl.target_val``, else ``data.val`` unless it is
    synthetic (a generated source says nothing about the target domain). ConfigError when there are none:
    the rule cannot run without them."""
    if cfg.ccssl.target_val:
        return list(cfg.ccssl.target_val)
    real = [p for p in cfg.data.val if not is_synthetic(read_dataset(p, cfg.data.format))]
    if not real:
        raise ConfigError("<config>", "data.val", "keeping the better of CC-SSL and its supervised control needs "
                          "labelled held-out frames of the target domain: set data.val (a lab project's val "
                          "split) or ccssl.target_val, or turn the control off (ccssl.control: false / "
                          "--no-control)" + (" (data.val is synthetic)" if cfg.data.val else ""))
    return real


def start_checkpoint(run: CCSSLRun) -> Path | None:
    """The checkpoint both arms started from: ``ccssl.source_checkpoint``, else the run's source-only training
    (what :meth:`CCSSLRun._source_model` loads); None for a fresh network."""
    c = run.cfg.ccssl
    if c.source_checkpoint is not None:
        return Path(c.source_checkpoint)
    src = run.out / "source"
    if c.source_epochs > 0 and (src / "last.ckpt").is_file():
        return _delivered(src)
    return None


def _delivered(folder: Path, fallback: Path | None = None) -> Path:
    """The checkpoint a trainer folder delivers: ``best.ckpt`` (chosen by ``train.select_on``), else the last."""
    best = folder / "best.ckpt"
    if best.is_file():
        return best
    if fallback is not None and fallback.is_file():
        return fallback
    return folder / "last.ckpt"


def train_control(run: CCSSLRun, progress: bool = True) -> Path:
    """Train the control in ``run.out / "control"`` (once; a rerun finds it finished) and return the
    checkpoint it delivers. ``run`` must be prepared: the control starts from the model CC-SSL started from
    (``ccssl.source_checkpoint`` or the source-only training; a freshly initialised network otherwise,
    seeded alike) and trains ``train.epochs`` epochs at the rounds' learning rate on ``data.train``."""
    cfg, folder = run.cfg, run.out / "control"
    if not run.state.get("control_done"):
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        model = run._source_model(run.data, run.device)
        ctrl_cfg = cfg if cfg.ccssl.lr is None else cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"lr": cfg.ccssl.lr})})
        if progress:
            print(f"supervised control: {cfg.train.epochs} epochs on the labels alone (lambda = 0)",
                  file=sys.stderr, flush=True)
        val_sets = dict(run.data.val)
        if cfg.train.select_on == TARGET_VAL:  # the epoch chosen by the same rule as the adapted arm's
            val_sets[TARGET_VAL] = run.tv_set
        with run.tracker.child("control (lambda = 0)", tags={"arm": "control"}) as child:
            # the same extras as the adapted arm's checkpoints (normalisation, a rig's views' subspace and groups):
            # keep_better scores both through them, so without them the control would be scored unmended
            Trainer(ctrl_cfg, model, run.schema, run.data.train, val_sets, folder, device=run.device,
                    tracker=child, progress=progress, extra=checkpoint_extra(cfg, run.data, run.source_extra)).fit()
        run.state["control_done"] = True
        run._save_state()
    return _delivered(folder)


def _score(checkpoint: Path, paths: list[Path], cfg: CCSSLConfig) -> dict:
    """The checkpoint's val metrics per file and its score; ``instances``: each file's per-frame errors (for
    :func:`paired_margin_se`; not written out)."""
    per, instances = {}, []
    for p in paths:
        res = evaluate(checkpoint, p, flip=cfg.train.flip_test, device=cfg.train.device, progress=False,
                       skip_bad=cfg.data.skip_bad, allow_outside_root=cfg.data.allow_outside_root, per_instance=True)
        per[str(p)] = {k: v for k, v in res["metrics"].items() if k.startswith(("pixel_error", "pck_crop@0.05",
                                                                                  "pck_bbox@0.1"))}
        instances.append(res["per_instance"])
    score = sum(m[METRIC] for m in per.values()) / len(per)
    return {"checkpoint": str(checkpoint), "score": score, "per_file": per, "instances": instances}


def keep_better(run: CCSSLRun, result: CCSSLResult, control_ckpt: Path, *, paths: list[Path] | None = None,
                register: bool = True) -> KeepBetter:
    """Score the adapted run's delivered checkpoint, the control's and the model both started from on the
    held-out frames, copy the best to ``final.ckpt`` (atomically), write ``keep_better.json`` and log them to
    the run's tracker.

    ``paths``: the held-out labelled frames (default :func:`held_out_paths`; the ccssl flow gives its target-val
    set, since its rounds' ``ccssl.target_val`` is the test set they report on). ``register``: also register
    ``final.ckpt`` under the experiment's name (the flow registers the kept model in its own stage)."""
    cfg = run.cfg
    paths = held_out_paths(cfg) if paths is None else [Path(p) for p in paths]
    adapted_ckpt = result.best_checkpoint or result.last_checkpoint
    adapted, control = _score(adapted_ckpt, paths, cfg), _score(control_ckpt, paths, cfg)
    start, source, source_error = start_checkpoint(run), None, None
    if start is not None:
        try:
            source = _score(start, paths, cfg)
        except (DataError, ConfigError) as exc:  # e.g. an old checkpoint: the two arms still decide, loudly
            source_error = f"{start}: {exc}"
            print(f"keep the better: the starting model is left out (it cannot be scored: {source_error})",
                  file=sys.stderr, flush=True)
    kept, margin, relative = choose(adapted["score"], control["score"], None if source is None else source["score"])
    margin_se = paired_margin_se(control["instances"], adapted["instances"])
    frames = sum(len(f["image"]) for f in adapted["instances"])
    adapted, control, source = ({k: v for k, v in d.items() if k != "instances"} if d else d
                                for d in (adapted, control, source))
    final = run.out / "final.ckpt"
    with atomic_path(final) as tmp:
        shutil.copyfile({"adapted": adapted_ckpt, "control": control_ckpt, "source": start}[kept], tmp)
    decision = KeepBetter(kept, adapted, control, METRIC, margin, relative, str(final), [str(p) for p in paths],
                          source, margin_se, frames)
    write_json({**asdict(decision), "sentence": decision.sentence(),
                **({"source_error": source_error} if source_error else {})}, run.out / "keep_better.json")
    tracker: Tracker = run.tracker
    tracker.log_metrics({f"keep/adapted_{METRIC}": adapted["score"], f"keep/control_{METRIC}": control["score"],
                         f"keep/margin_{METRIC}": margin,
                         **({} if margin_se is None else {f"keep/margin_se_{METRIC}": margin_se}),
                         **({} if source is None else {f"keep/source_{METRIC}": source["score"]})})
    tracker.set_tags({"kept": kept})
    if register:
        tracker.log_artifact(final, "model")
        tracker.register_model("model/final.ckpt", cfg.tracking.experiment, tags={"kept": kept, "method": "ccssl"})
    return decision


def run_ccssl_with_control(cfg: CCSSLConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
                           progress: bool = True, labeler=None) -> tuple[CCSSLResult, KeepBetter | None]:
    """CC-SSL (every round, resumable), then, with ``ccssl.control`` (the default), its supervised control and
    the keep-the-better rule; returns CC-SSL's result and the decision (None with the control off).

    The held-out frames are checked before any training (a ConfigError when there are none)."""
    if cfg.ccssl.control:
        held_out_paths(cfg)
    with CCSSLRun(cfg, out_dir, tracker=tracker, progress=progress, labeler=labeler) as run:
        for r in range(run.num_rounds):
            run.round(r)
        result = run.result()
        if not cfg.ccssl.control:
            return result, None
        run.prepare()
        decision = keep_better(run, result, train_control(run, progress))
        if progress:
            print(decision.sentence(), file=sys.stderr, flush=True)
    return result, decision
