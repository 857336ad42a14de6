"""Rescore the last round of each arm on the even val frames img42, 44, ..., img60, which no arm calibrated on
(issue 23, BENCHMARKS.md "A fair screen of the rules that read val, ..."): raw, and mended with the rig's geometry
(the experiment's multiview correction fitted on train img01-img40). The arm folders are the screens' OUTs on the
machine that ran it (/work/bench_out); `bench ccssl-real --calibrate-on half` and `bench multiview-real --screen`
now make the same figures."""

import json
from pathlib import Path

import numpy as np

from animalpose.config import ExperimentConfig, load_config
from animalpose.data.readers import read_dataset
from animalpose.keypoints import load_schema
from flows.benchmarks.ccssl_real import PROJECTS, keypoint_metrics, predict_original
from flows.benchmarks.ccssl_real_data import MIRROR_SCHEMA
from flows.benchmarks.multiview_real import fit_project_correction

B = Path("/work/bench_out")
ARMS = {
    "supervised": "s41_mv41/mirror-mouse/seed_{s}/supervised",
    "control": "s41_mv41/mirror-mouse/seed_{s}/control",
    "template": "s41_mv41/mirror-mouse/seed_{s}/ccssl",
    "median_views": "s42_mv41_med/mirror-mouse/seed_{s}/ccssl",
    "g20_p05 calibrated on all 20": "s42_mv41_g20_p05/mirror-mouse/seed_{s}/ccssl",
    "med_g20_p05 calibrated on all 20": "s42_mv41_med_g20_p05/mirror-mouse/seed_{s}/ccssl",
    "g20_p05 (odd)": "s43_fair_g20_p05/mirror-mouse/seed_{s}/ccssl",
    "med_g20_p05 (odd)": "s43_fair_med_g20_p05/mirror-mouse/seed_{s}/ccssl",
    "g20_p05 lambda 0.5 (odd)": "s43_fair_g20_p05_l05/mirror-mouse/seed_{s}/ccssl",
    "g20_p05 lambda 2 (odd)": "s43_fair_g20_p05_l2/mirror-mouse/seed_{s}/ccssl",
    "label_padding 1.2": "s43_fair_lp12/mirror-mouse/seed_{s}/ccssl",
    "label_padding 1.2 + g20_p05 (odd)": "s43_fair_lp12_g20_p05/mirror-mouse/seed_{s}/ccssl",
}


def cells(values: list, control: list) -> tuple[str, str, str]:
    ok = [x for x in values if x is not None]
    if not ok:
        return "-", "-", "-"
    rel = ", ".join(f"{100 * (x - c) / c:+.1f}" for x, c in zip(values, control, strict=True) if x is not None)
    std = np.std(ok, ddof=1) if len(ok) > 1 else 0.0
    return " / ".join(f"{x:.2f}" if x is not None else "-" for x in values), f"{np.mean(ok):.2f} ± {std:.2f}", rel


def main() -> None:
    recs = read_dataset(B / "s43_score_even.json", "coco", MIRROR_SCHEMA).records
    gt = np.stack([r.keypoints for r in recs])
    cfg = load_config(PROJECTS["mirror-mouse"].experiment, ExperimentConfig, [])
    corr = fit_project_correction(cfg, B / "s41_mv41/mirror-mouse/data/train.json", load_schema(MIRROR_SCHEMA))
    out = {}
    for name, pattern in ARMS.items():
        raw, mended = [], []
        for s in (0, 1, 2):
            ck = B / pattern.format(s=s) / ("last.ckpt" if name == "supervised" else "run/round_2.ckpt")
            if not ck.is_file():
                raw.append(None)
                mended.append(None)
                continue
            pred = predict_original(ck, recs)
            raw.append(round(keypoint_metrics(pred, gt)["pixel_error"], 3))
            mended.append(round(keypoint_metrics(corr.apply(pred), gt)["pixel_error"], 3))
        out[name] = {"raw": raw, "mended": mended}
    print("| arm | raw per seed | raw | vs control % | mended per seed | mended | vs control % |")
    for name, d in out.items():
        r, m = cells(d["raw"], out["control"]["raw"]), cells(d["mended"], out["control"]["mended"])
        print(f"| {name} | {r[0]} | {r[1]} | {r[2]} | {m[0]} | {m[1]} | {m[2]} |")
    doc = {"score_frames": "img42..img60 even (never calibrated on)", "arms": out}
    (B / "s43_rescore.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
