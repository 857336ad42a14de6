"""Each held-out (transductive) arm of this folder against its λ = 0 control, per seed, raw and mended.

Test runs (``*_multiview_real_bench.json``: test and val img51-img60) against the control of
``../mirror_mouse_180_lr2e-4/multiview_real_bench.json`` (the same 180-epoch supervised models; the control never
trains on the target, so it is shared); fair val screens (``fair_*_multiview_real_screen.json``: val img42-img60 even,
calibrated on the odd frames) against the control row of ``../mirror_mouse_val41_60/scored_even_rescore.json``.
Run from anywhere: ``python docs/results/ccssl_real/mirror_mouse_held_out/per_seed.py``; its output is
``per_seed.txt`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _px(doc: dict, seed: int, arm: str, split: str, kind: str) -> float:
    row = next(s for s in doc["per_seed"] if s["seed"] == seed)
    return row["arms"][arm][split][kind]["pixel_error"]


def main() -> None:
    control_test = json.loads((HERE.parent / "mirror_mouse_180_lr2e-4" / "multiview_real_bench.json").read_text())
    control_fair = json.loads((HERE.parent / "mirror_mouse_val41_60" / "scored_even_rescore.json").read_text())
    control_fair = control_fair["arms"]["control"]
    for path in sorted(HERE.glob("*_multiview_real_*.json")):
        doc = json.loads(path.read_text())
        fair = path.name.startswith("fair_")
        splits = ("val",) if fair else ("test", "val")
        print(path.name.removesuffix(".json"))
        for seed in doc["seeds"]:
            parts = []
            for split in splits:
                for kind in ("raw", "mended"):
                    px = _px(doc, seed, "ccssl", split, kind)
                    ref = control_fair[kind][seed] if fair else _px(control_test, seed, "control", split, kind)
                    parts.append(f"{split} {kind} {px:.2f} ({100 * (px / ref - 1):+.1f} %)")
            print(f"  seed {seed}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
