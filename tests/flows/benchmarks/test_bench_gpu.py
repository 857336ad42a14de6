"""`animalpose bench gpu`: the CPU fallback's JSON, the peak table and the MFU / extrapolation arithmetic."""

import json

import pytest
import torch
from typer.testing import CliRunner

from flows.benchmarks import gpu
from flows.benchmarks.gpu import NetCase, device_peaks, mfu, pretraining_hours


@pytest.mark.parametrize("name, entry, bf16", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H200", "H200", 989.4),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA L40S", "L40S", 362.1),
    ("NVIDIA L4", "L4", 121.0),
])
def test_device_peaks(name, entry, bf16):
    label, peaks = device_peaks(name)
    assert label == entry and peaks["bf16"] == bf16
    assert peaks["bf16"] > peaks["tf32"] > 0 and peaks["fp32"] > 0


def test_unknown_device_has_no_peak_and_no_mfu():
    assert device_peaks("Tesla K80") == (None, None)
    assert mfu(100.0, 10**9, None) is None


def test_mfu_counts_six_flops_per_forward_mac():
    # hourglass4 at 256: 15.37 GMACs per image; 1000 images/s on a 989.4-TFLOP/s device
    assert mfu(1000.0, 15_370_000_000, 989.4) == pytest.approx(6 * 15.37e9 * 1000 / 989.4e12)


def test_paper_pretraining_hours():
    # 100 epochs of 10,000 images at 50 images/s: 20,000 s
    assert pretraining_hours(50.0, 10_000) == pytest.approx(20_000 / 3600)


def test_cpu_fallback_json(monkeypatch):
    # two tiny cases keep the test in seconds; the default fallback runs all five nets the same way
    monkeypatch.setattr(gpu, "CPU_CASES", (NetCase("hourglass_quick", (64, 64), 2, paper=True),
                                           NetCase("cpn_quick", (64, 64), 2)))
    from animalpose.cli import app

    res = CliRunner().invoke(app, ["bench", "gpu", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["bench"] == "gpu" and r["fallback"] is True and r["device"] == "cpu"
    assert r["peak_table_entry"] is None and r["paper_epochs"] == 100 and r["paper_images"] == 10_000
    assert [c["case"] for c in r["cases"]] == ["hourglass_quick@64x64/b2", "cpn_quick@64x64/b2"]
    for c in r["cases"]:
        assert c["gmacs_per_image"] > 0
        for mode in ("fp32", "bf16_cl"):
            m = c[mode]
            assert m["train_images_per_s"] > 0 and m["pseudo_label_images_per_s"] > 0
            assert m["train_images_per_s"] == pytest.approx(2 / m["step_s"], rel=0.01)
            assert m["mfu"] is None and m["peak_tflops"] is None and m["peak_memory_mib"] is None
        f = c["fp32"]
        assert f["pseudo_label_5_views_images_per_s"] > 0
        assert f["seven_over_five_views"] == pytest.approx(
            f["pseudo_label_5_views_images_per_s"] / f["pseudo_label_images_per_s"], rel=0.01)
        assert "seven_over_five_views" not in c["bf16_cl"]
        assert c["speedup"] == pytest.approx(c["bf16_cl"]["train_images_per_s"] / c["fp32"]["train_images_per_s"],
                                             rel=0.01)
    # hourglass_quick at 64 px: a quarter of its 0.57 GMACs at 128
    assert r["cases"][0]["gmacs_per_image"] == pytest.approx(0.57 / 4, rel=0.05)
    assert r["cases"][0]["paper_pretraining_hours"] is None  # tiny CPU inputs say nothing about the paper's run
    assert "paper_pretraining_hours" not in r["cases"][1]


def test_a_case_out_of_memory_is_reported_and_the_others_run(monkeypatch):
    calls = []

    def measure(case, *args):
        calls.append(case.model)
        if case.model == "hourglass4":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return {"fp32": {"train_images_per_s": 2.0}, "bf16_cl": {"train_images_per_s": 3.0}, "speedup": 1.5}

    monkeypatch.setattr(gpu, "_measure_case", measure)
    cases = (NetCase("hourglass4", (64, 64), 2, paper=True), NetCase("hourglass_quick", (64, 64), 2))
    r = gpu.run_gpu_bench("cpu", cases=cases)
    assert calls == ["hourglass4", "hourglass_quick"]
    assert r["cases"][0]["error"].startswith("out of memory: CUDA out of memory")
    assert "fp32" not in r["cases"][0] and r["cases"][1]["speedup"] == 1.5
