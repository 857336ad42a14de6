"""CC-SSL rounds: pseudo-label the target, keep the consistent joints, train on source + target, repeat.

Mu et al., "Learning from Synthetic Animals" (CVPR 2020), Alg. 1, as its reference code runs it:

1. start from a model trained on the synthetic source (``ccssl.source_checkpoint``, or
   ``ccssl.source_epochs`` of source-only training first);
2. every ``regenerate_every`` epochs (reference: 10 of 60), predict on every unlabelled target crop
   with the equivariance / invariance views (:mod:`animalpose.adapt.pseudolabel`), refine video frames
   with optical flow (:mod:`animalpose.adapt.temporal`) and keep the most confident joints
   (:mod:`animalpose.adapt.selection`; the kept fraction grows 20 → 40 → 60 → 80%);
3. train on ``L_source + λ · L_target`` (λ = 10), one source and one target batch per step, the
   model and optimiser continued, not reinitialised.

Optional, for video targets: Lightning Pose's temporal-difference loss on a clip of consecutive target
frames joins every step (``ccssl.temporal_loss_weight`` · L_temporal, :mod:`animalpose.adapt.temporal_loss`),
with or without the pseudo-labels (λ = 0: the temporal term alone). Lightning Pose's pose-PCA loss
(``ccssl.pca_loss_weight`` · L_pca, :mod:`animalpose.adapt.pca_loss`) does the same on target frames with the
subspace of the labelled source poses, and its multi-view consistency loss (``ccssl.multiview_loss_weight`` ·
L_multiview, :mod:`animalpose.adapt.multiview_loss`) on frames that show each body part in several views (a
mirror rig); with the temporal term on, one forward pass of the step's clip serves them all.

Model selection: by default the best epoch is chosen on the *source* validation set
(``train.select_on: source-val``), so no target label is ever used. ``train.select_on: target-val``
selects on ``ccssl.target_val`` instead, which is what the reference did (it picked its best epoch
on labelled real validation images): that leaks target labels and is offered only to reproduce
published numbers. Labelled target data is otherwise used only to *report* (pseudo-label precision,
target PCK), never to train or select.

Resumable at round granularity: after each round the trainer state goes to ``round_<r>.ckpt`` and
``state.json`` records the finished rounds; a rerun with the same output folder continues after the
last finished round. Tracking: one MLflow parent run, one nested run per round.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field, model_validator
from torch.utils.data import DataLoader

from animalpose.adapt import diagnostics as diag
from animalpose.adapt.calibration import Calibration, calibrated_threshold, correct_joints
from animalpose.adapt.joint_gate import joint_errors, worsened
from animalpose.adapt.label_report import describe, label_report
from animalpose.adapt.multiview_loss import (
    LIGHTNING_POSE_COMPONENTS,
    MultiviewPCA,
    multiview_loss,
)
from animalpose.adapt.pairs import SymmetricPairLoss
from animalpose.adapt.pca_loss import PosePCA, fit_pose_pca, labelled_poses, pca_loss
from animalpose.adapt.presence import presence_floors, present
from animalpose.adapt.prior_agreement import prior_agreement
from animalpose.adapt.pseudolabel import ConsistencyConfig, PseudoLabelSet, finalize, label_records
from animalpose.adapt.selection import (
    RoundSchedule,
    collapsed_pair_mask,
    keep_fractions_validator,
    reference_percentile,
    select_by_percentile,
)
from animalpose.adapt.shards import Labeler, LabelRequest, cpu_state
from animalpose.adapt.temporal import FlowParams
from animalpose.adapt.temporal_agreement import temporal_agreement
from animalpose.adapt.temporal_infill import temporal_infill
from animalpose.adapt.temporal_loss import clip_windows, epsilon_tensor, original_coordinates, temporal_difference
from animalpose.adapt.view_assignment import (
    CONFUSION_RATE,
    agreeing_views,
    best_view,
    group_keypoints,
    group_rows,
    project_views,
    reassign_views,
)
from animalpose.atomic import remove_temporaries
from animalpose.config import ExistingPath, ExperimentConfig, KeyedError, ResolvedPath, Section, flatten
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import Normalization, SkippedImages, TopDownDataset, collate_skip, images_left_out
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.readers import detect_format, read_dataset
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import transform_points_batched
from animalpose.data.validate import validate_dataset, validation_options
from animalpose.engine.batchnorm import running_statistics
from animalpose.engine.build import augment_overrides, build_data, crop_padding, make_codec, make_model, pick_device
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.inference import final_heatmaps, flip_shift_for, unwrap
from animalpose.engine.multiview import fit_named_views, look_alike
from animalpose.engine.train import checkpoint_extra, mend_found_groups
from animalpose.engine.trainer import MIN_TRAIN_BATCH, Trainer, seed_everything
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import crop_distances, pck_from_distances
from animalpose.keypoints import KeypointSchema
from animalpose.threads import loader_workers
from animalpose.tracking import Tracker

TARGET_VAL = "target-val"
#: a target record's meta key: the index of the data.target file it came from (ccssl.target_balance)
TARGET_FILE = "target_file"


# Views × images per pseudo-labelling forward pass on a CPU: the quick network's 128-px views ran at
# 19 ms/image in chunks of 8 against 37 ms/image in chunks of 64 (activations outgrow the caches;
# BENCHMARKS.md, CC-SSL pseudo-labelling speed). On a GPU larger chunks keep it busy.
CPU_VIEW_BATCH = 8


class CCSSLSection(Section):
    """The ``ccssl:`` section (defaults: the reference, invariance on, selection on source data).

    Two opt-in rules for left/right pairs (:mod:`animalpose.adapt.pairs`; the defaults are the reference's
    behaviour). A synthetic-trained model on real horses puts both channels of a left/right pair on the same
    leg (72 % of the pairs in round 1 of the Animal-Pose screens, BENCHMARKS.md "CC-SSL on real horses"), so
    about one partner in three is right whichever is kept, and dropping collapsed partners
    (``collapsed_pairs``) did not help:

    - ``pair_decoding: resolve`` (default ``independent``): when the two decoded points of a pair coincide
      (closer than ``collapse_distance`` × crop width, the ``collapsed_pairs`` test), the less confident
      partner is decoded again from its view-aggregated heatmap with a disc of 3σ (the training Gaussian's)
      around the shared point suppressed, so the pair lands on two legs, and its confidence is its heatmap's
      value there, so the keep-fraction selection judges the new point;
    - ``pair_loss: symmetric`` (default ``ordered``): the pseudo-labelled target loss takes, per sample and
      pair, the smaller of the loss with the pair's targets (and weights) as given and exchanged, so the
      network is not asked to tell left from right where its pseudo-labels cannot; unpaired joints and the
      labelled source loss are unchanged.
    """

    source_checkpoint: ExistingPath | None = None
    source_epochs: int = Field(default=0, ge=0)
    regenerate_every: int = Field(default=10, ge=1)
    # weight of the pseudo-labelled target loss. That loss averages over all K joints of a crop, the joints a
    # round leaves out counting as zero (the reference's JointsMSELoss, visibility-weighted; crops with no kept
    # joint are left out), so its pull is about lambda × the share of a crop's joints kept: with the top 20 %
    # kept, lambda 1 weighs the target well below the labels (on the SLEAP clip's val lambda 2 did better than 1
    # and 4, and keeping more joints at lambda 2 better still: BENCHMARKS.md, "λ 2 and the top 80 %").
    lambda_target: float = Field(default=10.0, ge=0)
    # learning rate of the adaptation rounds (None: train.lr, as the reference, which continues at its
    # pretraining rate). Source-only training (source_epochs) always uses train.lr.
    lr: float | None = Field(default=None, gt=0)
    schedule: Literal["rounds", "reference"] = "rounds"
    keep_fractions: Annotated[list[float], AfterValidator(keep_fractions_validator)] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    num_geometric: int = Field(default=4, ge=0)
    scale_sigma: float = Field(default=0.25, ge=0, lt=1)
    rotation_sigma: float = Field(default=30.0, ge=0)
    flip: bool = False
    invariance: bool = True
    num_photometric: int = Field(default=2, ge=0)
    confidence: Literal["peak", "peak_agreement"] = "peak"
    # left/right pairs whose pseudo-labels coincide (closer than collapse_distance x crop width): keep them
    # (the reference), drop the less confident partner, or both (animalpose.adapt.selection.collapsed_pair_mask)
    collapsed_pairs: Literal["keep", "drop_lower", "drop_both"] = "keep"
    collapse_distance: float = Field(default=0.02, gt=0, lt=1)
    # a collapsed pair's weaker partner decoded again away from the shared point (animalpose.adapt.pairs.resolve_pairs)
    pair_decoding: Literal["independent", "resolve"] = "independent"
    # label_point: mean_heatmap (the reference: the maximum of the views' averaged heatmaps), median_views (the
    # per-coordinate median of the views' own decoded points, mapped back exactly) or identity (the untransformed
    # view's point, the model's plain prediction); the views still score every label (animalpose.adapt.pseudolabel
    # says why)
    label_point: Literal["mean_heatmap", "median_views", "identity"] = "mean_heatmap"
    # label_padding: the crop padding (box x factor) at which the consistency check labels frames, the video's and
    # the calibration frames' (None: their own, data.bbox_padding_*); training keeps the data's. With mirror-mouse's
    # whole-frame crops (padding 1.0) a keypoint near the frame's edge leaves the geometric views' crops and the
    # averaged label is pulled inwards (the bottom nose 12 px), which 1.2 removes (BENCHMARKS.md, "A fair screen
    # of the rules that read val, the labels' own error each round, and a padded labelling crop")
    label_padding: float | None = Field(default=None, ge=1.0)
    # the target loss free to exchange a pair's two targets (animalpose.adapt.pairs.symmetric_pair_loss)
    pair_loss: Literal["ordered", "symmetric"] = "ordered"
    agreement_sigma: float = Field(default=2.0, gt=0)
    temporal: bool = True
    flow_window: int = Field(default=15, ge=3)
    flow_levels: int = Field(default=2, ge=0)
    flow_max_jump: float = Field(default=15.0, gt=0)
    flow_ratio: float = Field(default=0.9, gt=0, le=1)
    flow_max_gap: int = Field(default=1, ge=1)
    target_val: list[ExistingPath] = Field(default_factory=list)
    # every N-th frame of a video target (a 250-fps lab video is mostly repeats); the optical flow then
    # bridges gaps of at least N frames (flow_max_gap is raised to N), so the temporal check still chains
    video_step: int = Field(default=1, ge=1)
    target_truth: bool = True
    pseudo_batch_size: int = Field(default=16, ge=1)
    # views x images per forward pass while pseudo-labelling; None: CPU_VIEW_BATCH on a CPU, else all the
    # views of a batch (views x pseudo_batch_size). Results do not depend on it beyond float rounding.
    view_batch: int | None = Field(default=None, ge=1)
    gallery: int = Field(default=8, ge=0)
    out_dir: ResolvedPath | None = None
    # `adapt ccssl` (animalpose.adapt.control.run_ccssl_with_control) also trains the supervised control
    # (same epochs, lambda = 0), scores both on the labelled val frames and keeps the better as final.ckpt;
    # run_ccssl and the per-round API run CC-SSL alone
    control: bool = True
    # Lightning Pose's temporal-difference loss (animalpose.adapt.temporal_loss) on clips of temporal_loss_clip
    # consecutive target video frames, added to every step with this weight (0: off; with lambda_target 0
    # it is the only unsupervised term). epsilon: the jump each keypoint may make between consecutive
    # target frames free of cost, in video pixels (one number or one per keypoint); pairs with a heatmap
    # maximum below temporal_loss_threshold count 0; beta: soft-argmax inverse temperature of the readout
    temporal_loss_weight: float = Field(default=0.0, ge=0)
    temporal_loss_epsilon: float | list[float] = 5.0
    temporal_loss_clip: int = Field(default=8, ge=2)
    temporal_loss_threshold: float = Field(default=0.0, ge=0)
    temporal_loss_beta: float = Field(default=160.0, gt=0)
    # Lightning Pose's pose-PCA loss (animalpose.adapt.pca_loss): a PCA of the labelled source poses (data.train,
    # original pixels, the frames with every selected keypoint labelled) keeps the axes explaining
    # pca_loss_components of the variance (a fraction, or an integer count); predictions on target frames pay
    # their reconstruction error beyond epsilon (pixels; None: the pca_loss_percentile-th percentile of the
    # labelled poses' own errors). joints: names of the keypoints in the pose (None: all; Lightning Pose's
    # columns_for_singleview_pca: leave out static or often occluded ones). frames: target frames per step when
    # the temporal term is off (else the step's clip); beta: soft-argmax inverse temperature of the readout
    pca_loss_weight: float = Field(default=0.0, ge=0)
    pca_loss_components: int | float = Field(default=0.99, gt=0)
    pca_loss_percentile: float = Field(default=90.0, ge=0, le=100)
    pca_loss_epsilon: float | None = Field(default=None, ge=0)
    pca_loss_joints: list[str] | None = None
    pca_loss_frames: int = Field(default=8, ge=1)
    pca_loss_beta: float = Field(default=160.0, gt=0)
    # Lightning Pose's multi-view consistency loss (animalpose.adapt.multiview_loss): views lists each body part's
    # keypoint in every view ([[paw1LH_top, paw1LH_bot], ...]: Lightning Pose's mirrored_column_matches by name);
    # a PCA of the labelled (data.train) samples (x, y per view of one body part in one frame) keeps
    # multiview_loss_components axes (Lightning Pose: 3, the views of one 3-D point); predictions on target frames
    # pay each view's reconstruction error beyond epsilon (pixels; None: the multiview_loss_percentile-th
    # percentile of the labelled samples' own errors). frames / beta: as pca_loss_frames / pca_loss_beta.
    # views left unset: the experiment's multiview.views (a rig names its views once)
    multiview_loss_weight: float = Field(default=0.0, ge=0)
    multiview_loss_views: list[list[str]] | None = None
    multiview_loss_components: int | float = Field(default=LIGHTNING_POSE_COMPONENTS, gt=0)
    multiview_loss_percentile: float = Field(default=90.0, ge=0, le=100)
    multiview_loss_epsilon: float | None = Field(default=None, ge=0)
    multiview_loss_frames: int = Field(default=8, ge=1)
    multiview_loss_beta: float = Field(default=160.0, gt=0)
    # BatchNorm in the unsupervised terms' forward pass: batch (the step's clip or frames normalise themselves, as
    # Lightning Pose's separate unlabelled forward pass) or running (the running statistics, left unchanged:
    # animalpose.engine.batchnorm.running_statistics says why)
    term_batchnorm: Literal["batch", "running"] = "batch"
    # the unsupervised terms' weights ramped in linearly over this many epochs (term_importance; 0: full weight from
    # the first step). Lightning Pose's AnnealWeight callback (lightning_pose/callbacks.py; its configs' anneal_weight:
    # init_val 0, increase_factor 0.01 per epoch, final_val 1, freeze_until_epoch 0) is 100.
    term_anneal_epochs: int = Field(default=0, ge=0)
    # Safer pseudo-labels (issue 23). lambda_rounds: lambda_target of each round (a ramp, e.g. [0.3, 0.6, 1.0];
    # None: lambda_target in every round). temporal_agreement: a pseudo-label is eligible only within this many
    # original pixels of its track's neighbours (animalpose.adapt.temporal_agreement; None: off).
    # calibration_precision: instead of keep_fractions' percentile, keep the joints whose confidence reaches the
    # lowest level at which the labelled calibration_data joints (default data.val) labelled by the same check
    # are right (within calibration_tolerance x their box, PCK's rule) at this rate (animalpose.adapt.calibration)
    lambda_rounds: list[Annotated[float, Field(ge=0)]] | None = None
    temporal_agreement: float | None = Field(default=None, gt=0)
    # temporal_infill: a joint the round left out at frame t but kept at t - video_step and t + video_step of its
    # track, those two within this many original pixels, takes their midpoint and is kept
    # (animalpose.adapt.temporal_infill; None: off)
    temporal_infill: float | None = Field(default=None, gt=0)
    calibration_precision: float | None = Field(default=None, gt=0, le=1)
    calibration_tolerance: float = Field(default=0.05, gt=0)
    calibration_data: list[ExistingPath] = Field(default_factory=list)
    # presence_quantile: a pseudo-label is eligible only where its confidence reaches this quantile of its joint's
    # confidence on the labelled, present instances of calibration_data (default data.val), scored by the same
    # check: below it the keypoint is probably not in the frame (animalpose.adapt.presence; None: off)
    presence_quantile: float | None = Field(default=None, ge=0, lt=1)
    # joint_gate: a joint whose mean error on calibration_data (default data.val), labelled by the same check, has
    # risen above the source model's x (1 + joint_gate) and by at least joint_gate_pixels (original pixels) gets no
    # pseudo-labels from that round on (animalpose.adapt.joint_gate; None: off); joints with fewer than
    # joint_gate_instances labelled calibration instances are not judged
    joint_gate: float | None = Field(default=None, ge=0)
    joint_gate_pixels: float = Field(default=1.0, ge=0)
    joint_gate_instances: int = Field(default=3, ge=1)
    # label_report: each round, the pseudo-labels of calibration_data (default data.val), made like the video's
    # (same model, views and view assignment), against their labels: error, error where confident, and each
    # joint's error and bias, in the round's summary, MLflow and on the console (animalpose.adapt.label_report).
    # None: on wherever there are labelled calibration frames; true: required; false: off
    label_report: bool | None = None
    # prior_agreement: pseudo-labels must also fit these priors of the labelled poses (animalpose.adapt.
    # prior_agreement): pca (the pose PCA of pca_loss_joints / _components, error <= its epsilon) and multiview
    # (the views' subspace of multiview_loss_views, each view's error <= its epsilon); [] : off
    prior_agreement: list[Literal["pca", "multiview"]] = Field(default_factory=list)
    # view_assignment: groups of look-alike body parts of multiview_loss_views (each part named by any of its
    # keypoints, e.g. the four paws) whose keypoints in the other views are re-assigned among the group to fit the
    # views' subspace before pseudo-labels are chosen (animalpose.adapt.view_assignment; [] : off); auto: the groups
    # the source model confuses on the labelled calibration_data (default data.val), found once before round 1 and
    # kept: the connected components of the body-part pairs it swaps, in some view, in at least
    # view_assignment_confusion of the frames labelling both (animalpose.adapt.view_assignment.confused_groups;
    # none found: no re-assignment, said on the console)
    # view_assignment_reference: the view the model gets right (a column of multiview_loss_views), or auto: each
    # round, the view whose keypoints of the group the current model places best on the labelled
    # calibration_data (default data.val)
    # view_assignment_keep: projected (the group's points in the other views are moved onto the views' subspace
    # through the reference view's point, and kept where that point is kept), agreeing (the group's pseudo-labels
    # are kept where every view of the body part fits the views' subspace within its epsilon, whatever their
    # confidence, and the other rules allow) or confidence (they go through keep_fractions' selection like every
    # other joint)
    view_assignment: list[list[str]] | Literal["auto"] = Field(default_factory=list)
    view_assignment_confusion: float = Field(default=CONFUSION_RATE, gt=0, le=1)
    view_assignment_reference: int | Literal["auto"] = "auto"
    view_assignment_keep: Literal["projected", "agreeing", "confidence"] = "projected"
    # target_augment: the augmentation of the pseudo-labelled target stream. same: the experiment's (augment:);
    # strong: a noised student (Xie et al., "Self-training with Noisy Student", CVPR 2020: the student learns
    # the teacher's labels through stronger input noise than the teacher saw): the "strong" preset's affine,
    # noise, blur and contrast (animalpose.data.augment) with the experiment's scale, rotation and flip ranges
    target_augment: Literal["same", "strong"] = "same"
    # target_balance: how the pseudo-labelled stream draws its crops. frames: every kept crop once a pass (each
    # data.target file weighs as many frames as it gives); files: every data.target file an equal share of the
    # stream (its crops drawn with replacement), so that a short video of the sessions to analyse is not drowned
    # by a long one of other sessions
    target_balance: Literal["frames", "files"] = "frames"

    @model_validator(mode="after")
    def _schedule_uses_keep_fractions(self) -> CCSSLSection:
        if self.schedule == "reference" and "keep_fractions" in self.model_fields_set:
            raise KeyedError("keep_fractions", "not used by schedule 'reference' (its kept fraction follows "
                              "the epoch); remove it or set schedule: rounds")
        return self

    def as_control(self) -> CCSSLSection:
        """This section as its equal-budget λ = 0 control runs it (the benchmarks' control arms): the same epochs,
        rounds and rate, no target loss or pseudo-label rule, no consistency views, flow or gallery, and every
        unsupervised term off."""
        return self.model_copy(update={
            "lambda_target": 0.0, "lambda_rounds": None, "temporal_agreement": None, "temporal_infill": None,
            "calibration_precision": None, "presence_quantile": None, "joint_gate": None, "label_report": False,
            "label_padding": None,
            "prior_agreement": [], "view_assignment": [], "temporal": False, "num_geometric": 0, "invariance": False,
            "gallery": 0,
            "temporal_loss_weight": 0.0, "pca_loss_weight": 0.0, "multiview_loss_weight": 0.0})

    @property
    def views(self) -> int:
        """Consistency views per image: identity, geometric, flip, photometric."""
        return 1 + self.num_geometric + int(self.flip) + (self.num_photometric if self.invariance else 0)

    def view_chunk(self, device: str | torch.device) -> int:
        """Views × images per forward pass on ``device`` (``view_batch`` or the device's default): on a GPU
        every view of a batch in one pass (7 views then cost a pass, like 5, while the device is not full)."""
        if self.view_batch is not None:
            return self.view_batch
        return CPU_VIEW_BATCH if torch.device(device).type == "cpu" else self.views * self.pseudo_batch_size

    def consistency(self, device: str | torch.device) -> ConsistencyConfig:
        """The consistency check's settings for pseudo-labelling on ``device``."""
        return ConsistencyConfig(num_geometric=self.num_geometric, scale_sigma=self.scale_sigma,
                                 rotation_sigma=self.rotation_sigma, flip=self.flip, invariance=self.invariance,
                                 num_photometric=self.num_photometric, agreement_sigma=self.agreement_sigma,
                                 confidence=self.confidence, max_batch=self.view_chunk(device),
                                 pair_decoding=self.pair_decoding, collapse_distance=self.collapse_distance,
                                 label_point=self.label_point)

    def flow(self) -> FlowParams:
        return FlowParams(win_size=self.flow_window, max_level=self.flow_levels, max_jump=self.flow_max_jump,
                          ratio=self.flow_ratio, max_gap=max(self.flow_max_gap, self.video_step))


class CCSSLConfig(ExperimentConfig):
    """An experiment config plus the ``ccssl`` section; ``data.target`` is the unlabelled target."""

    ccssl: CCSSLSection = Field(default_factory=CCSSLSection)

    @model_validator(mode="after")
    def _one_map_per_joint(self) -> CCSSLConfig:
        # pseudo-labels average and threshold one heatmap per joint; rounds cut train.epochs into pieces
        if self.codec.kind == "grmi":
            raise KeyedError("codec.kind", "CC-SSL's pseudo-labels need one heatmap per joint; G-RMI's "
                                            "heatmaps + offsets (grmi) are not supported")
        if self.train.cycles != 1:
            raise KeyedError("train.cycles", "CC-SSL's rounds run one schedule; iterative training (cycles > 1) "
                                              "is not supported")
        lam = self.ccssl.lambda_rounds
        if lam is not None and len(lam) != num_rounds(self):
            raise KeyedError("ccssl.lambda_rounds", f"{len(lam)} values for {num_rounds(self)} rounds "
                                                    f"(train.epochs / ccssl.regenerate_every)")
        for key in ("calibration_precision", "presence_quantile", "joint_gate", "label_report"):
            if getattr(self.ccssl, key) not in (None, False) and not (self.ccssl.calibration_data or self.data.val):
                raise KeyedError(f"ccssl.{key}", "needs labelled frames to calibrate on: "
                                                 "ccssl.calibration_data or data.val")
        c = self.ccssl
        if c.multiview_loss_views is None and self.multiview.views:
            c.multiview_loss_views = [list(row) for row in self.multiview.views]
        if c.view_assignment:
            if not c.multiview_loss_views:
                raise KeyedError("ccssl.view_assignment", "needs the views of each body part: "
                                                          "ccssl.multiview_loss_views")
            if c.view_assignment == "auto" and not (c.calibration_data or self.data.val):
                raise KeyedError("ccssl.view_assignment", "auto needs labelled frames to find the look-alike body "
                                                          "parts on: ccssl.calibration_data or data.val")
            ref, nviews = c.view_assignment_reference, len(c.multiview_loss_views[0])
            if ref == "auto" and not (c.calibration_data or self.data.val):
                raise KeyedError("ccssl.view_assignment_reference", "auto needs labelled frames to compare the "
                                                                    "views on: ccssl.calibration_data or data.val")
            if ref != "auto" and not 0 <= ref < nviews:
                raise KeyedError("ccssl.view_assignment_reference", f"{ref} is not a view of "
                                                                    f"ccssl.multiview_loss_views (0..{nviews - 1})")
        return self


def num_rounds(cfg: CCSSLConfig) -> int:
    return math.ceil(cfg.train.epochs / cfg.ccssl.regenerate_every)


def keep_percentile(cfg: CCSSLConfig, round_index: int) -> float:
    """The selection percentile p of a round (threshold = p-quantile of all joint confidences)."""
    c = cfg.ccssl
    if c.schedule == "reference":
        return reference_percentile(round_index * c.regenerate_every)
    return RoundSchedule(tuple(c.keep_fractions)).percentile(round_index)


# --------------------------------------------------------------------------------------------------
# pseudo-labelling


@torch.no_grad()
def generate_pseudo_labels(model: torch.nn.Module, records: list[PoseRecord], schema: KeypointSchema, codec,
                           normalization: Normalization, consistency: ConsistencyConfig,
                           flow: FlowParams | None, device: torch.device, *, batch_size: int = 16,
                           padding: float = 1.5, seed: int = 0, truth: bool = True,
                           workers: int = 0, progress: bool = False, fast: bool = True) -> PseudoLabelSet:
    """Pseudo-labels with their evidence for every readable target record (unselected: weights 0).

    The consistency views of every batch (:func:`~animalpose.adapt.pseudolabel.label_records`, the
    step that :mod:`animalpose.adapt.shards` splits over workers), then, on the whole set, the
    temporal refinement of video frames with ``flow`` (None: no temporal step;
    :func:`~animalpose.adapt.pseudolabel.finalize`). ``truth`` keeps the records' own labels, where
    they have any, for diagnostics only. ``fast``: the views run through a BN-folded channels-last copy
    of ``model`` (:func:`~animalpose.adapt.pseudolabel.view_model`; same labels within float rounding).
    """
    labels = label_records(model, records, schema, codec, normalization, consistency, device,
                           batch_size=batch_size, padding=padding, seed=seed, truth=truth, workers=workers,
                           progress=progress, fast=fast)
    return finalize(labels, flow, where=records[0].image if records else "<target>")


def select(labels: PseudoLabelSet, percentile: float, *, flip_pairs: Sequence[tuple[int, int]] = (),
           collapsed_pairs: str = "keep", collapse_distance: float = diag.COLLAPSE_DISTANCE,
           eligible: np.ndarray | None = None, threshold: float | None = None) -> PseudoLabelSet:
    """A copy of ``labels`` with ``weights`` / ``threshold`` from the percentile selection, among the joints
    that the ``collapsed_pairs`` rule leaves eligible (:func:`~animalpose.adapt.selection.collapsed_pair_mask`;
    ``collapse_distance``: fraction of the crop width) and ``eligible`` ((N, K) bool, e.g. the temporal agreement)
    allows. A given ``threshold`` (a calibrated confidence) replaces the percentile's."""
    mask = collapsed_pair_mask(labels.crop_xy, labels.confidence, flip_pairs,
                               collapse_distance * float(labels.input_size[0]), collapsed_pairs)
    if eligible is not None:
        mask &= eligible
    if threshold is None:
        sel = select_by_percentile(labels.confidence, percentile, mask)
        return replace(labels, weights=sel.weights, threshold=sel.threshold)
    with np.errstate(invalid="ignore"):
        kept = mask & (labels.confidence >= threshold)
    return replace(labels, weights=kept.astype(np.float32), threshold=float(threshold))


# --------------------------------------------------------------------------------------------------
# training


@dataclass
class TargetFrames:
    """Plain (unaugmented) crops of the target records for the unsupervised terms, each decoded once, and the
    soft-argmax inverse temperature ``beta`` that reads a term's keypoints off their heatmaps."""

    dataset: TopDownDataset
    beta: float = field(default=160.0, kw_only=True)
    cache: dict = field(default_factory=dict, kw_only=True)

    def item(self, i: int) -> dict:
        if i not in self.cache:
            self.cache[i] = self.dataset[i]
        return self.cache[i]


@dataclass
class TemporalClips(TargetFrames):
    """The temporal-difference term's data: the windows of consecutive frames
    (:func:`~animalpose.adapt.temporal_loss.clip_windows`) and the loss settings."""

    windows: list[list[int]]
    weight: float
    epsilon: torch.Tensor  # (K,) video pixels
    threshold: float = 0.0


@dataclass
class PCATerm(TargetFrames):
    """The pose-PCA term's data: the subspace of the labelled poses, the weight, the frames per step (when no
    temporal clip is drawn) and the readout's β."""

    pca: PosePCA
    weight: float
    frames: int = 8


@dataclass
class MultiviewTerm(TargetFrames):
    """The multi-view term's data: the views' subspace of the labelled frames, the weight, the frames per step
    (when no temporal clip is drawn) and the readout's β."""

    multiview: MultiviewPCA
    weight: float
    frames: int = 8


def temporal_clips(cfg: CCSSLConfig, records: list[PoseRecord], schema: KeypointSchema, codec,
                   normalization: Normalization, padding: float) -> TemporalClips | None:
    """The clips of ``ccssl.temporal_loss_*`` over the target ``records`` (None when the weight is 0).

    Raises ConfigError naming the key when the target has no clip of that many consecutive video frames or
    the tolerances do not match the joints."""
    c = cfg.ccssl
    if c.temporal_loss_weight <= 0:
        return None
    windows = clip_windows(records, c.temporal_loss_clip, c.video_step)
    if not windows:
        raise ConfigError("<config>", "ccssl.temporal_loss_weight", f"the temporal loss needs clips of "
                          f"{c.temporal_loss_clip} consecutive frames (video_step {c.video_step}) of a video "
                          "target; data.target has none")
    try:
        eps = epsilon_tensor(c.temporal_loss_epsilon, schema.num_joints)
    except ValueError as exc:
        raise ConfigError("<config>", "ccssl.temporal_loss_epsilon", f"{exc} of schema {schema.name!r}") from None
    ds = TopDownDataset(records, schema, codec, None, padding=padding, normalization=normalization)
    return TemporalClips(ds, windows, c.temporal_loss_weight, eps, c.temporal_loss_threshold,
                         beta=c.temporal_loss_beta)


def pca_term(cfg: CCSSLConfig, labelled: list[PoseRecord], records: list[PoseRecord], schema: KeypointSchema,
             codec, normalization: Normalization, padding: float) -> PCATerm | None:
    """The pose-PCA term of ``ccssl.pca_loss_*``: the subspace of the ``labelled`` (source) poses, applied to
    the target ``records`` (None when the weight is 0).

    Raises ConfigError naming the key for an unknown joint, too few fully labelled poses or a bad count."""
    c = cfg.ccssl
    if c.pca_loss_weight <= 0:
        return None
    pca = fit_pca_prior(cfg, labelled, schema)
    if not records:
        raise ConfigError("<config>", "ccssl.pca_loss_weight", "data.target has no frames for the PCA loss")
    ds = TopDownDataset(records, schema, codec, None, padding=padding, normalization=normalization)
    return PCATerm(ds, pca, c.pca_loss_weight, c.pca_loss_frames, beta=c.pca_loss_beta)


def fit_pca_prior(cfg: CCSSLConfig, labelled: list[PoseRecord], schema: KeypointSchema) -> PosePCA:
    """The pose PCA of ``ccssl.pca_loss_*`` (joints, components, ε) fitted on the ``labelled`` poses.

    Raises ConfigError naming the key for an unknown joint, too few fully labelled poses or a bad count."""
    c = cfg.ccssl
    if c.pca_loss_joints is None:
        joints = tuple(range(schema.num_joints))
    else:
        unknown = [j for j in c.pca_loss_joints if j not in schema.joints]
        if unknown or not c.pca_loss_joints:
            raise ConfigError("<config>", "ccssl.pca_loss_joints", f"{unknown or 'no joints'}: not keypoints of "
                              f"schema {schema.name!r} ({', '.join(schema.joints)})")
        joints = tuple(schema.index(j) for j in c.pca_loss_joints)
    poses = labelled_poses([r.keypoints for r in labelled], joints)
    try:
        pca = fit_pose_pca(poses, c.pca_loss_components, c.pca_loss_percentile, c.pca_loss_epsilon, joints)
    except ValueError as exc:
        key = "pca_loss_components" if "components" in str(exc) else "pca_loss_joints"
        raise ConfigError("<config>", f"ccssl.{key}", f"data.train: {exc}") from None
    return pca


def multiview_term(cfg: CCSSLConfig, labelled: list[PoseRecord], records: list[PoseRecord], schema: KeypointSchema,
                   codec, normalization: Normalization, padding: float, prior: MultiviewPCA | None = None
                   ) -> MultiviewTerm | None:
    """The multi-view term of ``ccssl.multiview_loss_*``: the views' subspace of the ``labelled`` (source) frames
    (``prior`` when it is already fitted), applied to the target ``records`` (None when the weight is 0).

    Raises ConfigError naming the key when the views are missing, name unknown keypoints, are ragged, or the
    labelled frames are too few."""
    c = cfg.ccssl
    if c.multiview_loss_weight <= 0:
        return None
    mv = prior if prior is not None else fit_multiview_prior(cfg, labelled, schema)
    if not records:
        raise ConfigError("<config>", "ccssl.multiview_loss_weight", "data.target has no frames for the loss")
    ds = TopDownDataset(records, schema, codec, None, padding=padding, normalization=normalization)
    return MultiviewTerm(ds, mv, c.multiview_loss_weight, c.multiview_loss_frames,
                         beta=c.multiview_loss_beta)


def fit_multiview_prior(cfg: CCSSLConfig, labelled: list[PoseRecord], schema: KeypointSchema) -> MultiviewPCA:
    """The views' subspace of ``ccssl.multiview_loss_*`` (views, components, ε) fitted on the ``labelled`` frames.

    Raises ConfigError naming the key when the views are missing, name unknown keypoints, are ragged, or the
    labelled frames are too few."""
    c = cfg.ccssl
    key = "ccssl.multiview_loss_views"
    if not c.multiview_loss_views:
        raise ConfigError("<config>", key, "the multi-view loss needs each body part's keypoint in every view, "
                          "e.g. [[nose_top, nose_bot], [tailBase_top, tailBase_bot]]")
    return fit_named_views(c.multiview_loss_views, [r.keypoints for r in labelled], schema,
                           c.multiview_loss_components, c.multiview_loss_percentile, c.multiview_loss_epsilon,
                           key=key, components_key="ccssl.multiview_loss_components")


def view_groups(groups: list[list[str]], views: list[list[str]]) -> list[list[int]]:
    """``ccssl.view_assignment``'s groups as row indices of ``ccssl.multiview_loss_views``
    (:func:`~animalpose.adapt.view_assignment.group_rows`); ConfigError naming the key."""
    try:
        return group_rows(groups, views)
    except ValueError as exc:
        raise ConfigError("<config>", "ccssl.view_assignment", f"{exc} (ccssl.multiview_loss_views)") from None


class CCSSLTrainer(Trainer):
    """The engine's trainer with a second, pseudo-labelled target stream: each step draws one source
    and one target batch and minimises ``L_source + λ · L_target`` (λ = ``lambda_target``).

    ``pair_loss``: ``ordered`` (L_target is the model's loss) or ``symmetric`` (L_target lets each sample's
    left/right pairs exchange their targets where that costs less, :func:`~animalpose.adapt.pairs.symmetric_pair_loss`;
    the source loss stays ordered)."""

    def __init__(self, *args, lambda_target: float = 10.0, pair_loss: str = "ordered",
                 term_batchnorm: str = "batch", target_balance: str = "frames", term_anneal_epochs: int = 0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if target_balance not in ("frames", "files"):
            raise ValueError(f"unknown target balance {target_balance!r} (frames, files)")
        self.target_balance = target_balance
        if term_batchnorm not in ("batch", "running"):
            raise ValueError(f"unknown term BatchNorm mode {term_batchnorm!r} (batch, running)")
        self.term_batchnorm = term_batchnorm
        self.term_anneal_epochs = term_anneal_epochs
        self.lambda_target = float(lambda_target)
        if pair_loss not in ("ordered", "symmetric"):
            raise ValueError(f"unknown pair loss {pair_loss!r} (ordered, symmetric)")
        self.pair_loss = pair_loss
        self.target_set: TopDownDataset | None = None
        self._target_iter: Iterator[dict] | None = None
        self.clips: TemporalClips | None = None
        self.pose_pca: PCATerm | None = None
        self.multiview: MultiviewTerm | None = None

    @property
    def target_loss_fn(self):
        """The loss of the pseudo-labelled batches: the model's, or its left/right-symmetric form."""
        if self.pair_loss == "ordered":
            return self.loss_fn
        return SymmetricPairLoss(self.loss_fn, tuple(self.schema.flip_pairs))

    def set_target(self, dataset: TopDownDataset | None) -> None:
        self.target_set = dataset

    def set_temporal_loss(self, clips: TemporalClips | None) -> None:
        """Add ``clips.weight`` · L_temporal of one clip of consecutive target frames to every step."""
        self.clips = clips

    def set_pca_loss(self, term: PCATerm | None) -> None:
        """Add ``term.weight`` · L_pca of the step's target frames (its clip, else ``term.frames`` drawn)."""
        self.pose_pca = term

    def set_multiview_loss(self, term: MultiviewTerm | None) -> None:
        """Add ``term.weight`` · L_multiview of the step's target frames (its clip, else frames drawn)."""
        self.multiview = term

    def _heatmaps(self, frames: TargetFrames, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final heatmaps (N, K, h, w) of the target crops ``indices`` from the model in its current mode (its
        BatchNorm layers on their running statistics with ``term_batchnorm="running"``), and their crop affines
        (N, 2, 3)."""
        items = [frames.item(i) for i in indices]
        images = torch.stack([it["image"] for it in items]).to(self.device)
        matrices = torch.stack([it["meta"]["matrix"] for it in items])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        norm = running_statistics(self.model) if self.term_batchnorm == "running" else nullcontext()
        with norm, torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.cfg.train.amp):
            outputs = self.train_forward(images)
        return outputs[-1], matrices

    def _coordinates(self, frames: TargetFrames, indices: list[int],
                     heatmaps: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-argmax keypoints (N, K, 2) in original pixels and their confidences (N, K) of the crops ``indices``
        of ``frames``, from their given ``heatmaps`` (final heatmaps, crop affines) or the model's."""
        hm, matrices = heatmaps if heatmaps is not None else self._heatmaps(frames, indices)
        return original_coordinates(hm, matrices, tuple(self.cfg.data.input_size), frames.beta)

    def temporal_term(self, window: list[int], heatmaps: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> torch.Tensor:
        """L_temporal (:func:`~animalpose.adapt.temporal_loss.temporal_difference`) of the frames ``window`` of
        ``clips.dataset``, predicted by the model in its current mode (or from their given ``heatmaps``)."""
        c = self.clips
        coords, conf = self._coordinates(c, window, heatmaps)
        return temporal_difference(coords, c.epsilon.to(coords.device), conf, c.threshold)

    def pca_term(self, indices: list[int], heatmaps: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """L_pca (:func:`~animalpose.adapt.pca_loss.pca_loss`) of the target frames ``indices``, predicted by the
        model in its current mode (or from their given ``heatmaps``)."""
        coords, _ = self._coordinates(self.pose_pca, indices, heatmaps)
        return pca_loss(coords, self.pose_pca.pca)

    def multiview_term(self, indices: list[int], heatmaps: tuple[torch.Tensor, torch.Tensor] | None = None
                       ) -> torch.Tensor:
        """L_multiview (:func:`~animalpose.adapt.multiview_loss.multiview_loss`) of the target frames ``indices``,
        predicted by the model in its current mode (or from their given ``heatmaps``)."""
        coords, _ = self._coordinates(self.multiview, indices, heatmaps)
        return multiview_loss(coords, self.multiview.multiview)

    def unsupervised_terms(self, rng: np.random.Generator) -> torch.Tensor | None:
        """The weighted temporal, PCA and multi-view terms of this step's target frames (None when all are off):
        one forward pass of one set of frames serves them all, a clip when the temporal term is on, else the
        first frame term's ``frames`` drawn (every term's dataset holds the same target records in order)."""
        on = lambda t: t if t is not None and t.weight > 0 else None  # noqa: E731
        clips, pca, mv = on(self.clips), on(self.pose_pca), on(self.multiview)
        if clips is None and pca is None and mv is None:
            return None
        if clips is not None:
            frames: TargetFrames = clips
            indices = clips.windows[int(rng.integers(len(clips.windows)))]
        else:
            frames = pca if pca is not None else mv
            n = len(frames.dataset)
            indices = rng.choice(n, size=min(frames.frames, n), replace=False).tolist()
        heatmaps = self._heatmaps(frames, indices)
        loss = clips.weight * self.temporal_term(indices, heatmaps) if clips is not None else 0.0
        if pca is not None:
            loss = loss + pca.weight * self.pca_term(indices, heatmaps)
        if mv is not None:
            loss = loss + mv.weight * self.multiview_term(indices, heatmaps)
        return loss

    def _target_batches(self) -> Iterator[dict]:
        """Endless full target batches: each pass is a fresh permutation cut to whole batches (a set
        smaller than one batch is repeated to fill it), so no training batch ever holds a single image
        (BatchNorm cannot train on one value per channel, e.g. at a 64-px hourglass's 1×1 bottleneck).
        ``target_balance="files"``: a pass is as many crops drawn with replacement, each ``data.target`` file
        (:data:`TARGET_FILE` of a record's meta) with an equal share (:func:`file_balanced_order`)."""
        ds, sub, bs = self.target_set, 0, self.cfg.train.batch_size
        files = [r.meta.get(TARGET_FILE, 0) for r in ds.records] if self.target_balance == "files" else None
        while True:
            ds.set_epoch(self.epoch * 1000 + sub)
            rng = np.random.default_rng((self.cfg.train.seed, self.epoch, sub))
            order = rng.permutation(len(ds)).tolist() if files is None else file_balanced_order(files, rng)
            n = len(order)
            order = order[: n - n % bs] if n >= bs else (order * -(-bs // n))[:bs]
            yield from self._loader(ds, order, bs)
            sub += 1

    def train_epoch(self) -> dict:
        use = self.target_set is not None and len(self.target_set) > 0 and self.lambda_target > 0
        self._target_iter = self._target_batches() if use else None
        try:
            return super().train_epoch()
        finally:
            self._target_iter = None

    def _forward_loss(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        loss, outputs = super()._forward_loss(batch)
        if self._target_iter is not None:
            tb = next(self._target_iter)
            if "image" in tb and len(tb["image"]) >= MIN_TRAIN_BATCH:  # not one image left after skipping
                t_loss, _ = super()._forward_loss(tb, loss_fn=self.target_loss_fn)
                loss = loss + self.lambda_target * t_loss
        importance = term_importance(self.epoch, self.term_anneal_epochs)
        unsupervised = self.unsupervised_terms(np.random.default_rng((self.cfg.train.seed, self.step))) \
            if importance > 0 else None
        if unsupervised is not None:
            loss = loss + importance * unsupervised
        return loss, outputs


def term_importance(epoch: int, anneal_epochs: int) -> float:
    """The factor on the unsupervised terms in (0-based) ``epoch``: ``min(1, epoch / anneal_epochs)``, 1 when
    ``anneal_epochs`` is 0. Lightning Pose's AnnealWeight with its defaults (init 0, + 0.01 a epoch from epoch 1,
    at most 1; ``lightning_pose/callbacks.py``) is ``anneal_epochs = 100``: 0 in epoch 0, 0.5 in epoch 50, 1 from
    epoch 100. Epochs count from the run's start (a round's trainer continues the count)."""
    return 1.0 if anneal_epochs <= 0 else min(1.0, max(epoch, 0) / anneal_epochs)


@torch.no_grad()
def evaluate_pck(model: torch.nn.Module, dataset: TopDownDataset, device: torch.device, batch_size: int,
                 flip_perm=None, flip_shift: bool = False) -> dict:
    """PCK@0.05 / 0.1 (crop) of ``model`` on a labelled dataset."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip)
    dists = []
    for batch in loader:
        if "image" not in batch:
            continue
        hm = final_heatmaps(model, batch["image"].to(device), flip_perm, flip_shift)
        dists.append(crop_distances(hm.cpu().numpy(), batch["target"].numpy()))
    d = np.concatenate(dists) if dists else np.zeros((0, dataset.schema.num_joints))
    return {f"pck@{a}": pck_from_distances(d, a).mean for a in (0.05, 0.1)}


@dataclass
class CCSSLResult:
    out_dir: Path
    rounds: list[dict] = field(default_factory=list)
    source_only: dict = field(default_factory=dict)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    skipped_images: list[dict] = field(default_factory=list)  # target/source images that did not decode


def file_balanced_order(files: Sequence[Hashable], rng: np.random.Generator) -> list[int]:
    """``len(files)`` indices drawn with replacement so that each distinct value of ``files`` (the file a crop came
    from) is drawn with the same probability, its crops alike within it.

    Example: files ``[0] * 8 + [1] * 2``: each of the 8 crops of file 0 is drawn with probability 1/16, each of the 2
    of file 1 with 1/4 (a frame-uniform draw: 1/10 each).
    """
    counts = Counter(files)
    p = np.array([1.0 / counts[f] for f in files])  # each file's crops sum to 1: equal shares once normalised
    return rng.choice(len(p), size=len(p), replace=True, p=p / p.sum()).tolist()


def _read_target(paths, schema: KeypointSchema, cfg: ExperimentConfig,
                 video_step: int = 1) -> tuple[list[PoseRecord], float]:
    """The target records and the crop padding of the last file, by the same rule as the source's
    (``crop_padding``; every record carries its own file's, ``PoseRecord.padding``); every ``video_step``-th
    frame of a video. ``schema`` goes to the readers as an object, so a schema
    built from a dataset's own header (DLC, SLEAP: ``dlc:<folder>``) serves a video target too.

    Generated target domains (e.g. ``photo`` horses) are synthetic: cropping them with the real-data
    padding (1.5) while the source was trained at 1.25 shrank the animal by 17 % in every target crop.
    """
    records: list[PoseRecord] = []
    padding = cfg.data.bbox_padding_real
    for i, path in enumerate(paths):
        options = {"step": video_step} if detect_format(path) == "video" else {}
        ds = read_dataset(path, "auto", schema, **options)
        padding = crop_padding(ds, cfg)
        # unlabelled target: no joint-count rule, but NaN, visibility, boxes and images are checked
        for r in validate_dataset(ds, None, require_instances=False, **validation_options(cfg.data)).records:
            if r.num_joints != schema.num_joints:
                r = replace(r, keypoints=np.zeros((schema.num_joints, 3), np.float32))
            records.append(replace(r, padding=padding, meta={**r.meta, TARGET_FILE: i}))
    if not records:
        raise ConfigError("<config>", "data.target", "no unlabelled target data given")
    return records, padding


def _gallery(labels: PseudoLabelSet, n: int, schema: KeypointSchema, normalization: Normalization, codec,
             padding: float):
    """Gallery figure of ``n`` evenly spaced target crops (None when ``n`` is 0)."""
    if n <= 0:
        return None
    idx = np.unique(np.linspace(0, len(labels) - 1, min(n, len(labels))).round().astype(int))
    ds = TopDownDataset([labels.records[i] for i in idx], schema, codec, None, padding=padding,
                        normalization=normalization)
    crops = [normalization.denormalize(ds[j]["image"]) for j in range(len(idx))]
    truth = None
    if labels.truth is not None:
        truth = transform_points_batched(labels.truth[idx], labels.matrices[idx])
    kept = labels.weights[idx] > 0
    return diag.gallery_figure(crops, labels.crop_xy[idx], kept, truth,
                               title="accepted (green) / rejected (red) pseudo-labels")


#: a record's meta key for its data's own crop padding while ``ccssl.label_padding`` crops it for labelling
DATA_PADDING = "data_padding"


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


class CCSSLRun:
    """CC-SSL on one output folder as named steps: :meth:`prepare`, then :meth:`round` per round.

    ::

        with CCSSLRun(cfg, out) as run:
            for r in range(run.num_rounds):
                run.round(r)        # pseudo-label, select, train; state saved after it
        result = run.result()

    :meth:`prepare` reads the data, builds the source model (``ccssl.source_checkpoint``, or
    ``ccssl.source_epochs`` of source-only training first) and the round trainer, and either resumes
    after the last finished round or measures the source-only model on the labelled target. Each
    :meth:`round` trains up to the end of its round only (``Trainer.fit(until=...)``): the trainer
    always holds the whole configuration, so the learning-rate schedule (also a cosine one) is the
    same whether the rounds run in one process or one per Prefect task. A new object on the same
    folder continues after the last finished round (``state.json``, ``round_<r>.ckpt``); asking it
    for a finished round returns that round's recorded metrics without any work, and asking for a
    round whose predecessor has not finished is an error.

    ``labeler`` replaces the in-process consistency step of each round's pseudo-labelling: it gets a
    picklable :class:`~animalpose.adapt.shards.LabelRequest` (config, CPU weights, all target
    records, normalisation, padding, round seed) and returns the pre-temporal labels of all records
    in order, e.g. :func:`~animalpose.adapt.shards.sharded_labeler` over worker processes; the
    temporal refinement and the selection still run here on the merged set. None: in process.

    Tracking: without a ``tracker`` the run owns one MLflow run (``cfg.tracking``), reopened on
    resume, and the context manager ends it (FINISHED, or FAILED / KILLED on an exception); with a
    ``tracker`` it logs into that run and leaves its lifecycle to the caller. Each round gets a
    nested run.

    Writes into ``out_dir`` (default ``ccssl.out_dir``): ``source/`` (source-only training when
    asked), ``train/`` (the trainer's best/last checkpoints), ``round_<r>/`` (pseudo_labels.json,
    summary.json, curves.png, gallery.png), ``round_<r>.ckpt`` and ``state.json``.
    """

    def __init__(self, cfg: CCSSLConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
                 progress: bool = True, labeler: Labeler | None = None):
        if cfg.train.select_on == TARGET_VAL and not cfg.ccssl.target_val:
            raise ConfigError("<config>", "train.select_on", "target-val selection needs ccssl.target_val")
        self.cfg, self.progress, self.labeler = cfg, progress, labeler
        self.out = Path(out_dir or cfg.ccssl.out_dir or "runs/ccssl")
        self.out.mkdir(parents=True, exist_ok=True)
        # a kill inside a write (round_<r>.ckpt, state.json, a round's diagnostics) leaves its temporary file
        left = remove_temporaries(self.out, recursive=True)
        if left:
            _log(f"removed {len(left)} temporary file(s) left by an interrupted write: "
                 + ", ".join(str(p.relative_to(self.out)) for p in left), progress)
        self.state_path = self.out / "state.json"
        self.state = (json.loads(self.state_path.read_text()) if self.state_path.is_file()
                      else {"rounds": [], "source_only": {}})
        self._given_tracker = tracker
        self.tracker: Tracker = tracker or Tracker(enabled=False)
        self.trainer: CCSSLTrainer | None = None
        # the source checkpoint's extra: a correction multiview.correct auto found for it travels on (checkpoint_extra)
        self.source_extra: dict = {}
        self._calibration_records: tuple[list[PoseRecord], float] | None = None  # read at the first calibration
        self._prior_fits: tuple[PosePCA | None, MultiviewPCA | None] | None = None  # fitted at the first round
        self._view_fit: tuple[MultiviewPCA, list[list[int]]] | None = None  # fitted at the first round
        self._multiview_fit: MultiviewPCA | None = None  # the views' subspace of the labels, fitted once a run
        self._labelled_round: tuple[int, PseudoLabelSet] | None = None  # the calibration frames' labels, per round

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def num_rounds(self) -> int:
        return num_rounds(self.cfg)

    @property
    def rounds_done(self) -> int:
        return len(self.state["rounds"])

    @property
    def _owns_tracker(self) -> bool:
        return self._given_tracker is None and self.cfg.tracking.enabled

    def __enter__(self) -> CCSSLRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.trainer is not None:
            self.tracker.log_dict(self.state, "ccssl_state.json")
        if self._owns_tracker and self.tracker.active:
            self.tracker.__exit__(exc_type, exc, tb)

    def _save_state(self) -> None:
        diag.write_json(self.state, self.state_path)

    # -- steps -------------------------------------------------------------------------------------

    def prepare(self) -> dict:
        """Data, source model and round trainer; resumes after the last finished round, else measures the
        source-only model on the labelled target (reporting only). Returns the source-only metrics."""
        if self.trainer is not None:
            return self.state["source_only"]
        cfg, c, state, progress = self.cfg, self.cfg.ccssl, self.state, self.progress
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        self.device = device = pick_device(cfg.train.device)
        self.data = data = build_data(cfg)
        schema, codec = data.schema, make_codec(cfg)
        self.schema, self.codec, self.norm = schema, codec, data.normalization
        self.target_records, self.pad = _read_target(cfg.data.target, schema, cfg, video_step=c.video_step)
        self.tv_set = _target_val_set(c.target_val, schema, codec, cfg, self.pad, self.norm)
        val_sets = dict(data.val)
        if cfg.train.select_on == TARGET_VAL:
            val_sets[TARGET_VAL] = self.tv_set
        self.flip_perm = flip_permutation_or_none(schema) if cfg.train.flip_test else None
        self.flip_shift = flip_shift_for(cfg.model.name, codec)
        if self._owns_tracker:
            self.tracker = Tracker(cfg.tracking.experiment, "ccssl", uri=cfg.tracking.uri,
                                   resume_run_id=state.get("run_id")).start()
            state["run_id"] = self.tracker.run_id
        model = self._source_model(data, device)
        round_cfg = cfg if c.lr is None else cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"lr": c.lr})})
        self.trainer = CCSSLTrainer(round_cfg, model, schema, data.train, val_sets, self.out / "train",
                                    device=device, tracker=None, progress=progress, lambda_target=c.lambda_target,
                                    pair_loss=c.pair_loss, term_batchnorm=c.term_batchnorm,
                                    target_balance=c.target_balance, term_anneal_epochs=c.term_anneal_epochs,
                                    extra=checkpoint_extra(cfg, data, self.source_extra))
        self.trainer.set_temporal_loss(temporal_clips(cfg, self.target_records, schema, codec, self.norm, self.pad))
        self.trainer.set_pca_loss(pca_term(cfg, data.train.records, self.target_records, schema, codec, self.norm,
                                           self.pad))
        self.trainer.set_multiview_loss(multiview_term(  # the one fit of the views' subspace a run makes
            cfg, data.train.records, self.target_records, schema, codec, self.norm, self.pad,
            prior=self._multiview_prior() if c.multiview_loss_weight > 0 else None))
        done = self.rounds_done
        # MLflow params are write-once: the run this object owns gets them once; a given tracker (a flow's
        # round stage, one per round) gets them with every round, so each round's run shows its config
        if self._given_tracker is not None or (not done and not state.get("params_logged")):
            self.tracker.log_params(flatten(cfg))
            state["params_logged"] = True
        if done:
            self.trainer.resume(self.out / f"round_{done - 1}.ckpt")
            _log(f"resuming after round {done} (epoch {self.trainer.epoch})", progress)
        else:
            state["source_only"] = self.evaluate()
            self.tracker.log_metrics({f"source_only/{k}": v for k, v in state["source_only"].items()})
        return state["source_only"]

    def _source_model(self, data, device: torch.device) -> torch.nn.Module:
        """The model to adapt: ``ccssl.source_checkpoint``, or trained on the source for ``source_epochs``
        (once: a resumed run reloads it), else the freshly initialised network."""
        cfg, c, schema = self.cfg, self.cfg.ccssl, self.schema
        model = make_model(cfg, schema)
        if c.source_checkpoint is not None:
            ckpt = load_checkpoint(c.source_checkpoint, schema=schema)
            why = f"{c.source_checkpoint} was not trained with it"
        elif c.source_epochs > 0:
            src_dir = self.out / "source"
            if not self.state.get("source_trained"):
                _log(f"source-only training for {c.source_epochs} epochs", self.progress)
                src_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
                    update={"epochs": c.source_epochs, "milestones": []})})
                with self.tracker.child("source-only") as child:
                    # the extras of every other checkpoint of the run (normalisation, a rig's views), and for
                    # multiview.correct auto the groups this model swaps on val, which the rounds then carry
                    trainer = Trainer(src_cfg, model, schema, data.train, dict(data.val), src_dir, device=device,
                                      tracker=child, progress=self.progress, extra=checkpoint_extra(cfg, data))
                    result = trainer.fit()
                if cfg.multiview.correct == "auto" and data.val:
                    mend_found_groups(cfg, data, trainer, result, self.progress)
                self.state["source_trained"] = True
                self._save_state()
            best = src_dir / "best.ckpt"
            ckpt = load_checkpoint(best if best.is_file() else src_dir / "last.ckpt", schema=schema)
            why = "no data.val to find the source model's look-alike parts on"
        else:
            return model
        model.load_state_dict(ckpt.get("ema") or ckpt["model"])
        self.source_extra = dict(ckpt.get("extra") or {})
        if cfg.multiview.correct == "auto" and "multiview_found" not in self.source_extra:
            _log(f"multiview.correct auto: {why}: the rounds' models mend nothing", True)
        return model

    def round(self, r: int) -> dict:
        """Round ``r``: pseudo-label the target with the current model, keep the most consistent joints
        (``keep_percentile``), train on source + target to the round's last epoch; returns its metrics.

        A finished round returns its recorded metrics; a round after an unfinished one is an error."""
        if not 0 <= r < self.num_rounds:
            raise ValueError(f"round {r} is not one of this run's {self.num_rounds} rounds")
        if r < self.rounds_done:
            done = self.state["rounds"][r]
            if self._given_tracker is not None:  # a caller's run (a flow's round stage, maybe in another store)
                self.tracker.log_metrics(_scalars(done), step=r + 1)  # still gets the finished round's record
            return done
        if r > self.rounds_done:
            raise RuntimeError(f"{self.out}: round {r} asked for, but only rounds 0..{self.rounds_done - 1} "
                               "have finished (rounds run in order)")
        self.prepare()
        cfg, c, trainer = self.cfg, self.cfg.ccssl, self.trainer
        start, end = r * c.regenerate_every, min((r + 1) * c.regenerate_every, cfg.train.epochs)
        # rounds are numbered from 1 wherever a person reads them (MLflow, console); r is the 0-based index
        # of the API and of the files (round_<r>.ckpt, round_<r>/)
        with self.tracker.child(f"round {r + 1}", tags={"round": str(r + 1), "stage": "round"}) as child:
            raw_labels = self._pseudo_labels(r)
            missed = images_left_out(self.target_records, raw_labels.records, "pseudo-labelling")
            # the safer-pseudo-label rules (each off by default): what each rejected goes into the round's summary
            extra, agree = {}, None
            if self._view_groups(r):  # first: the rules below then see each paw under its own name
                raw_labels, views_ok = self._mend_views(raw_labels, r, extra)
            if c.temporal_agreement is not None:
                agree = temporal_agreement(raw_labels.xy, raw_labels.records, c.video_step, c.temporal_agreement)
                extra["temporal_disagreeing"] = float(1 - agree.mean())
            if c.prior_agreement:
                fit_ok = prior_agreement(raw_labels.xy, *self._priors())
                extra["prior_disagreeing"] = float(1 - fit_ok.mean())
                agree = fit_ok if agree is None else agree & fit_ok
            if c.presence_quantile is not None:
                ok = present(raw_labels.confidence, self._presence_floors(r, extra))
                extra["presence_absent"] = float(1 - ok.mean())
                agree = ok if agree is None else agree & ok
            if c.joint_gate is not None:
                ok = np.broadcast_to(~self._joint_gate(r, extra), raw_labels.confidence.shape)
                extra["joint_gate_dropped"] = float(1 - ok.mean())
                agree = ok if agree is None else agree & ok
            calib = self._calibrate(r) if c.calibration_precision is not None else None
            if calib is not None:
                extra.update({f"calibration_{k}": v for k, v in calib.as_dict().items()})
                if not np.isfinite(calib.threshold):
                    _log(f"round {r + 1}: no confidence level reaches precision {c.calibration_precision} on the "
                         f"{calib.joints} calibration joints: no pseudo-label kept this round", True)
            labels = select(raw_labels, keep_percentile(cfg, r), flip_pairs=self.schema.flip_pairs,
                            collapsed_pairs=c.collapsed_pairs, collapse_distance=c.collapse_distance,
                            eligible=agree, threshold=None if calib is None else calib.threshold)
            if self._view_groups(r) and c.view_assignment_keep != "confidence":
                labels = replace(labels, weights=self._view_weights(labels.weights, views_ok, agree,
                                                                    extra["view_reference"]))
            if c.temporal_infill is not None:
                xy, weights, filled = temporal_infill(labels.xy, labels.weights, labels.records, c.video_step,
                                                      c.temporal_infill)
                labels = replace(labels, xy=xy, weights=weights)
                extra["temporal_infilled"] = int(filled.sum())
            if self._reports_labels():
                self._label_report(r, labels.threshold, extra)
            summary = _report(labels, r, self.out / f"round_{r}", self.schema, self.norm, self.codec, self.pad,
                              child, c.gallery, extra,
                              collapse_distance=c.collapse_distance)
            trainer.lambda_target = c.lambda_target if c.lambda_rounds is None else c.lambda_rounds[r]
            _log(f"round {r + 1}: kept {summary['num_kept']}/{summary['num_joints']} joints"
                 + (f", precision@0.05 {100 * summary['precision@0.05']:.1f}%" if "precision@0.05" in summary
                    else ""), self.progress)
            trainer.set_target(self._target_set(labels, r))
            trainer.tracker = child
            trainer.fit(until=end)
            trainer.tracker = None
            metrics = {"round": r, "epochs": [start, end], **{f"pseudo/{k}": v for k, v in summary.items()
                                                               if not isinstance(v, dict | list)}}
            metrics.update({f"target/{k}": v for k, v in self.evaluate().items()})
            metrics.update({k: v for k, v in trainer.tracked(trainer.history[-1] if trainer.history else {}).items()
                            if k.startswith("val/")})
            # images that did not decode: recorded (state.json, MLflow, --json), not only logged
            skipped = SkippedImages(self.state.get("skipped_images"))
            skipped.add({"skipped_images": missed + trainer.skipped_images.to_list()})
            self.state["skipped_images"] = skipped.to_list()
            metrics["pseudo/skipped_images"] = len(missed)
            metrics["data/skipped_images"] = len(skipped)
            if missed or len(skipped):
                child.log_dict({"count": len(skipped), "images": skipped.to_list()}, "data/skipped_images.json")
            scalars = _scalars(metrics)
            child.log_metrics(scalars, step=end)
        self.tracker.log_metrics(scalars, step=r + 1)
        trainer.save(self.out / f"round_{r}.ckpt", scalars)
        self.state["rounds"].append(metrics)
        self._save_state()
        return metrics

    def _pseudo_labels(self, r: int) -> PseudoLabelSet:
        """Round ``r``'s pseudo-labels of every target record from the current model (unselected)."""
        cfg, c = self.cfg, self.cfg.ccssl
        seed = cfg.train.seed * 1000 + r
        model_now = self._current_model()
        flow = c.flow() if c.temporal else None
        records, pad = self._for_labelling(self.target_records, self.pad)
        if self.labeler is None:
            return generate_pseudo_labels(model_now, records, self.schema, self.codec, self.norm,
                                          c.consistency(self.device), flow, self.device,
                                          batch_size=c.pseudo_batch_size, padding=pad,
                                          seed=seed, truth=c.target_truth,
                                          workers=loader_workers(cfg.data.workers, self.device),
                                          progress=self.progress)
        request = LabelRequest(cfg, self.schema, cpu_state(model_now), records, self.norm, pad,
                               seed=seed, round_index=r)
        return finalize(self.labeler(request), flow, where=self.target_records[0].image)

    def _for_labelling(self, records: list[PoseRecord], pad: float) -> tuple[list[PoseRecord], float]:
        """``records`` and their padding as the consistency check crops them: at ``ccssl.label_padding`` when set
        (each record's own padding replaced; the labels come back in original pixels, and the target stream
        crops them again at the data's padding, :meth:`_target_set`)."""
        lp = self.cfg.ccssl.label_padding
        if lp is None:
            return records, pad
        return [replace(r, padding=lp, meta={**r.meta, DATA_PADDING: r.padding}) for r in records], lp

    def _current_model(self) -> torch.nn.Module:
        """The model the rounds have trained so far (its EMA copy when ``train.ema`` is on), unwrapped."""
        t = self.trainer
        return t.ema.module if t.ema is not None else unwrap(t.model)

    def _priors(self) -> tuple[PosePCA | None, MultiviewPCA | None]:
        """The priors of ``ccssl.prior_agreement`` fitted on the labelled training poses (once a run)."""
        if self._prior_fits is None:
            want, train = self.cfg.ccssl.prior_agreement, self.data.train.records
            self._prior_fits = (fit_pca_prior(self.cfg, train, self.schema) if "pca" in want else None,
                                self._multiview_prior() if "multiview" in want else None)
        return self._prior_fits

    def _multiview_prior(self) -> MultiviewPCA:
        """The views' subspace of ``ccssl.multiview_loss_*`` on the labelled training poses (once a run: the
        priors' filter and the view assignment share it)."""
        if self._multiview_fit is None:
            self._multiview_fit = fit_multiview_prior(self.cfg, self.data.train.records, self.schema)
        return self._multiview_fit

    def _labelled_labels(self, r: int) -> PseudoLabelSet:
        """Round ``r``'s pseudo-labels of the labelled calibration frames (``ccssl.calibration_data``, default
        ``data.val``) by the current model with the round's consistency views (no flow: they are not a video),
        with their labels as ``truth``; made once a round, for the calibration, the presence floors and the views'
        reference."""
        cfg, c = self.cfg, self.cfg.ccssl
        if self._labelled_round is not None and self._labelled_round[0] == r:
            return self._labelled_round[1]
        if self._calibration_records is None:
            self._calibration_records = _labelled_records(c.calibration_data or cfg.data.val, self.schema, cfg,
                                                          self.pad, "ccssl.calibration_data (or data.val)")
        records, pad = self._for_labelling(*self._calibration_records)
        labels = generate_pseudo_labels(self._current_model(), records, self.schema, self.codec, self.norm,
                                        c.consistency(self.device), None, self.device, batch_size=c.pseudo_batch_size,
                                        padding=pad, seed=cfg.train.seed * 1000 + r, truth=True)
        self._labelled_round = (r, labels)
        return labels

    def _reports_labels(self) -> bool:
        """Whether the rounds report their labels' error on the calibration frames (``ccssl.label_report``; by
        default wherever labelled calibration frames are configured)."""
        c = self.cfg.ccssl
        return c.label_report if c.label_report is not None else bool(c.calibration_data or self.cfg.data.val)

    def _label_report(self, r: int, threshold: float, extra: dict) -> None:
        """Round ``r``'s :func:`~animalpose.adapt.label_report.label_report` of the calibration frames' labels,
        made as the video's were: the round's model and views, and its view assignment with the reference the
        video's labels used (re-assigned, and projected when ``view_assignment_keep`` is projected). Into
        ``extra`` (the round's summary, MLflow) and one console line."""
        c = self.cfg.ccssl
        lab = self._labelled_labels(r)
        xy = lab.xy
        if self._view_groups(r):
            mv, groups = self._view_fit
            refs = extra["view_reference"]
            lab = lab.take_joints(reassign_views(lab.xy, mv, groups, refs))  # truth stays with its joint
            xy = project_views(lab.xy, mv, groups, refs) if c.view_assignment_keep == "projected" else lab.xy
        report = label_report(xy, lab.truth, lab.confidence, threshold, self.schema.joints)
        extra.update({f"calibration_{k}": v for k, v in report.items()})
        _log(f"round {r + 1}: {describe(report, len(lab))}", self.progress)

    def _presence_floors(self, r: int, extra: dict) -> np.ndarray:
        """Round ``r``'s (K,) presence floors from the calibration frames (:mod:`animalpose.adapt.presence`); each
        joint's floor goes into ``extra`` (the round's summary), and a joint no calibration frame labels, which
        gets no floor, is named there and on the console."""
        labels = self._labelled_labels(r)
        floors = presence_floors(labels.confidence, labels.truth[..., 2] > 0, self.cfg.ccssl.presence_quantile)
        names = self.schema.joints
        extra["presence_floors"] = {n: (None if np.isnan(f) else round(float(f), 5))
                                    for n, f in zip(names, floors, strict=True)}
        unfloored = [n for n, f in zip(names, floors, strict=True) if np.isnan(f)]
        if unfloored:
            extra["presence_unfloored"] = unfloored
            _log(f"round {r + 1}: no calibration frame labels {', '.join(unfloored)}: no presence floor on "
                 "them", True)
        return floors

    def _joint_gate(self, r: int, extra: dict) -> np.ndarray:
        """Round ``r``'s (K,) shut joints (:mod:`animalpose.adapt.joint_gate`): round 0 records the source model's
        per-joint errors on the calibration frames as the reference (in the run's state, so a resumed run keeps
        it); a later round shuts the joints whose error has risen past the gate, for good. The errors and the
        shut joints go into ``extra`` (the round's summary); a newly shut joint is named on the console."""
        c, names = self.cfg.ccssl, self.schema.joints
        labels = self._labelled_labels(r)
        errors = joint_errors(labels.xy, labels.truth, c.joint_gate_instances)
        gate = self.state.setdefault("joint_gate", {"reference": None, "shut": []})
        if gate["reference"] is None:
            gate["reference"] = [None if np.isnan(e) else float(e) for e in errors]
        reference = np.array([np.nan if e is None else e for e in gate["reference"]], dtype=np.float64)
        shut = np.array([n in gate["shut"] for n in names])
        new = worsened(errors, reference, c.joint_gate, c.joint_gate_pixels) & ~shut
        if new.any():
            gate["shut"] = [n for n, s in zip(names, shut | new, strict=True) if s]
            _log(f"round {r + 1}: " + ", ".join(f"{names[k]} {reference[k]:.2f} -> {errors[k]:.2f} px"
                                                for k in np.flatnonzero(new))
                 + " on the calibration frames: no more pseudo-labels for them", True)
        extra["joint_gate_errors"] = {n: (None if np.isnan(e) else round(float(e), 3))
                                      for n, e in zip(names, errors, strict=True)}
        extra["joint_gate_shut"] = list(gate["shut"])
        return shut | new

    def _calibrate(self, r: int) -> Calibration:
        """Round ``r``'s calibrated threshold: the calibration frames' pseudo-labels scored against their labels."""
        c = self.cfg.ccssl
        labels = self._labelled_labels(r)
        correct, labelled = correct_joints(labels.xy, labels.truth, c.calibration_tolerance)
        return calibrated_threshold(labels.confidence[labelled], correct[labelled], c.calibration_precision)

    def _mend_views(self, labels: PseudoLabelSet, r: int, extra: dict) -> tuple[PseudoLabelSet, np.ndarray]:
        """Round ``r``'s pseudo-labels with ``ccssl.view_assignment``'s groups re-assigned across the views (and
        projected onto their subspace when ``view_assignment_keep`` is projected), and the (N, K) mask of the
        group keypoints whose views agreed after the re-assignment; what it did goes into ``extra``."""
        labels, extra["view_reassigned"], extra["view_reference"] = self._assign_views(labels, r)
        mv, groups = self._view_fit
        extra["view_groups"] = [[self.schema.joints[mv.views[p][0]] for p in g] for g in groups]
        keys = group_keypoints(mv, groups)
        views_ok = agreeing_views(labels.xy, mv, groups)
        extra["view_agreeing"] = float(views_ok[:, keys].mean())
        if self.cfg.ccssl.view_assignment_keep == "projected":
            moved_to = project_views(labels.xy, mv, groups, extra["view_reference"])
            extra["view_projection_px"] = float(np.linalg.norm(moved_to - labels.xy, axis=-1)[:, keys].mean())
            labels = replace(labels, xy=moved_to.astype(labels.xy.dtype))
        return labels, views_ok

    def _view_weights(self, weights: np.ndarray, views_ok: np.ndarray, agree: np.ndarray | None,
                      reference: list[int]) -> np.ndarray:
        """The selection ``weights`` (N, K) with the view-assignment groups' keypoints kept by
        ``ccssl.view_assignment_keep``: agreeing, where ``views_ok`` and the other rules (``agree``) allow;
        projected, in the other views wherever the reference view's keypoint of the body part is kept."""
        mv, groups = self._view_fit
        out = weights.copy()
        if self.cfg.ccssl.view_assignment_keep == "agreeing":
            keys = group_keypoints(mv, groups)
            out[:, keys] = views_ok[:, keys] & (True if agree is None else agree[:, keys])
            return out
        views = np.asarray(mv.views)
        for group, ref in zip(groups, reference, strict=True):
            idx = views[group]  # (G, V)
            for v in range(mv.num_views):
                if v != ref:
                    out[:, idx[:, v]] = weights[:, idx[:, ref]]
        return out

    def _view_groups(self, r: int) -> list[list[int]]:
        """``ccssl.view_assignment``'s groups as rows of ``ccssl.multiview_loss_views`` ([] : none). auto: found on
        the calibration frames' labels of the model that makes round ``r``'s (the source model, for a fresh run)
        and kept in the run's state, so every round and a resumed run use the same groups; said on the console."""
        c = self.cfg.ccssl
        if not c.view_assignment:
            return []
        if self._view_fit is not None:
            return self._view_fit[1]
        if c.view_assignment != "auto":
            groups = view_groups(c.view_assignment, c.multiview_loss_views)
        elif "view_groups" in self.state:
            groups = view_groups(self.state["view_groups"], c.multiview_loss_views)
        else:
            groups = self._confused_groups(r)
        self._view_fit = (self._multiview_prior(), groups)
        return groups

    def _confused_groups(self, r: int) -> list[list[int]]:
        """ccssl.view_assignment auto: the look-alike groups (:func:`~animalpose.engine.multiview.look_alike`) of
        round ``r``'s calibration labels, recorded in the run's state by their first view's names."""
        c = self.cfg.ccssl
        lab = self._labelled_labels(r)
        found = look_alike(lab.xy, lab.truth, c.multiview_loss_views, self.schema, c.view_assignment_confusion)
        self.state["view_groups"] = [g["parts"] for g in found["groups"]]
        if found["groups"]:
            said = "; ".join(", ".join(g["parts"]) for g in found["groups"])
            _log(f"round {r + 1}: view assignment auto: look-alike body parts on the calibration frames "
                 f"(swapped in >= {c.view_assignment_confusion:g} of them in some view): {said}", True)
        else:
            pair = max(found["pairs"].items(), key=lambda kv: kv[1], default=None)
            most = f"; the most confused pair, {pair[0]}, {pair[1]:.2f}" if pair else ""
            _log(f"round {r + 1}: view assignment auto: no two body parts are swapped in >= "
                 f"{c.view_assignment_confusion:g} of the calibration frames{most}: no re-assignment", True)
        return view_groups(self.state["view_groups"], c.multiview_loss_views)

    def _assign_views(self, labels: PseudoLabelSet, r: int) -> tuple[PseudoLabelSet, float, list[int]]:
        """``labels`` with ``ccssl.view_assignment``'s groups re-assigned across the views; the fraction of
        target records changed and each group's reference view (fixed, or measured this round)."""
        c = self.cfg.ccssl
        mv, groups = self._multiview_prior(), self._view_groups(r)
        if c.view_assignment_reference == "auto":
            lab = self._labelled_labels(r)
            errors = np.linalg.norm(lab.xy - lab.truth[..., :2], axis=-1)
            errors[lab.truth[..., 2] <= 0] = np.nan
            try:
                refs = [best_view(errors, mv, g) for g in groups]
            except ValueError as exc:
                raise ConfigError("<config>", "ccssl.view_assignment_reference",
                                  f"auto: ccssl.calibration_data (or data.val): {exc}") from None
        else:
            refs = [c.view_assignment_reference] * len(groups)
        src = reassign_views(labels.xy, mv, groups, refs)
        moved = float((src != np.arange(src.shape[1])).any(1).mean()) if len(src) else 0.0
        return labels.take_joints(src), moved, refs

    def _target_set(self, labels: PseudoLabelSet, r: int) -> TopDownDataset | None:
        """The pseudo-labelled target stream of round ``r`` (records with no kept joint left out)."""
        cfg = self.cfg
        if cfg.ccssl.target_augment == "strong":
            # the experiment's colour jitter has no place in the strong preset (its own contrast replaces it)
            cfg = cfg.model_copy(update={"augment": cfg.augment.model_copy(
                update={"preset": "strong", "color": None, "rotation_prob": None})})
        augment = None if cfg.augment.preset == "none" else build_augmenter(
            cfg.augment.preset, self.schema, tuple(cfg.data.input_size), udp=self.codec.udp, **augment_overrides(cfg))
        # cropped at the data's padding whatever padding labelled them (ccssl.label_padding)
        pseudo = [replace(p, padding=p.meta.get(DATA_PADDING, p.padding)) for p in labels.to_records()
                  if (p.keypoints[:, 2] > 0).any()]
        if not pseudo:
            return None
        return TopDownDataset(pseudo, self.schema, self.codec, augment, padding=self.pad, normalization=self.norm,
                              seed=cfg.train.seed + r + 1,
                              image_cache=self.data.train.image_cache)  # the target frames, decoded once a run

    def evaluate(self) -> dict:
        """Target-val PCK@0.05 / 0.1 of the current model (reporting only); {} without labelled target."""
        if self.tv_set is None:
            return {}
        return evaluate_pck(self._current_model(), self.tv_set, self.device, self.cfg.train.batch_size, self.flip_perm,
                            self.flip_shift)

    def result(self) -> CCSSLResult:
        rounds = self.state["rounds"]
        best = self.out / "train" / "best.ckpt"
        last = self.out / f"round_{len(rounds) - 1}.ckpt" if rounds else None
        return CCSSLResult(self.out, rounds, self.state["source_only"], best if best.is_file() else None, last,
                           list(self.state.get("skipped_images", [])))


def _labelled_records(paths, schema: KeypointSchema, cfg: ExperimentConfig, pad: float,
                      role: str) -> tuple[list[PoseRecord], float]:
    """The records with a labelled joint of the files ``paths`` (checked as ``data.*`` files are) and the padding
    rule of their own dataset (``pad`` when there is no file); a file without labels is a DataError naming it and
    its ``role``."""
    records, padding = [], pad
    for path in paths:
        ds = read_dataset(path, "auto", schema)
        padding = crop_padding(ds, cfg)
        checked = validate_dataset(ds, schema, **validation_options(cfg.data))
        recs = [r for r in checked.records if (r.keypoints[:, 2] > 0).any()]
        if not recs:
            raise DataError(str(path), "annotations", f"{role} has no labels")
        records += recs
    return records, padding


def _target_val_set(paths, schema: KeypointSchema, codec, cfg: ExperimentConfig, pad: float,
                    norm: Normalization) -> TopDownDataset | None:
    """The labelled target-val crops (``ccssl.target_val``), None without any; cropped by the padding rule
    of their own dataset (the target's, ``pad``, when there is none)."""
    records, tv_pad = _labelled_records(paths, schema, cfg, pad, "target validation data")
    if not records:
        return None
    return TopDownDataset(records, schema, codec, None, padding=tv_pad, normalization=norm)


def run_ccssl(cfg: CCSSLConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
              progress: bool = True, labeler: Labeler | None = None) -> CCSSLResult:
    """Run (or resume) every CC-SSL round of ``cfg`` (:class:`CCSSLRun`); returns the rounds' metrics and
    the checkpoints."""
    with CCSSLRun(cfg, out_dir, tracker=tracker, progress=progress, labeler=labeler) as run:
        for r in range(run.num_rounds):
            run.round(r)
    return run.result()


def _report(labels: PseudoLabelSet, r: int, folder: Path, schema, norm, codec, pad, tracker: Tracker,
            gallery: int, extra: dict | None = None, collapse_distance: float = diag.COLLAPSE_DISTANCE) -> dict:
    """Write and log one round's diagnostics (``extra`` joins the summary; collapsed pairs counted by the run's
    ``collapse_distance``, the test its pair rules act on); returns the summary."""
    from animalpose.plots import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    summary = {**diag.summarize(labels, joints=schema.joints, flip_pairs=schema.flip_pairs,
                                collapse_distance=collapse_distance), **(extra or {})}
    diag.write_json(diag.pseudo_label_coco(labels, schema, r), folder / "pseudo_labels.json")
    diag.write_json(summary, folder / "summary.json")
    tracker.log_artifact(folder / "pseudo_labels.json", "pseudo_labels")
    tracker.log_dict(summary, "pseudo_labels/summary.json")
    fig = diag.curves_figure(summary, f"round {r + 1}: precision vs coverage per check")
    if fig is not None:
        save_figure(fig, folder / "curves.png")
        tracker.log_figure(fig, "pseudo_labels/curves.png")
    g = _gallery(labels, gallery, schema, norm, codec, pad)
    if g is not None:
        save_figure(g, folder / "gallery.png")
        tracker.log_figure(g, "pseudo_labels/gallery.png")
    tracker.log_metrics({f"pseudo/{k}": v for k, v in summary.items() if isinstance(v, int | float)}, step=r + 1)
    return summary


def _scalars(metrics: dict) -> dict:
    """A round's numeric metrics for MLflow (its 0-based ``round`` index is the run's tag and step instead)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "round"}
