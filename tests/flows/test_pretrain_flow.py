import functools

import pytest
from mlflow import MlflowClient

from flows.pretrain import pretrain_flow, torchrun_command


def test_torchrun_command_resumes_only_when_asked(tmp_path):
    cmd = torchrun_command(tmp_path / "c.yaml", tmp_path / "out", "run", 4, resume=False)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert cmd[5:8] == ["-m", "animalpose", "train"] and "--resume" not in cmd
    assert torchrun_command(tmp_path / "c.yaml", tmp_path / "out", "run", 4, resume=True)[-1] == "--resume"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_pretrain_flow_with_torchrun_on_two_cpu_processes(prefect_harness, tmp_path, data_home):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = pretrain_flow(species="horse", preset="smoke", epochs=1, tracking_uri=uri, out_dir=tmp_path / "out",
                        nproc_per_node=2)
    assert (tmp_path / "out" / "last.ckpt").is_file() and res["epochs"] == 1
    client = MlflowClient(tracking_uri=uri)
    train_run = client.get_run(res["run_id"])
    assert train_run.data.tags["mlflow.parentRunId"]  # nested under the flow's pretrain stage


def test_dataset_folder_changes_with_the_style_definition(monkeypatch):
    """The synth task is cached on its inputs (the folder among them): editing a style's parameters
    must give a new folder, or a flow would silently reuse data of the old distribution."""
    import synthetic.styles as styles
    from flows.presets import SynthSpec
    from flows.pretrain import dataset_dir

    spec, cad = SynthSpec(n=8, style="photo", size=64), SynthSpec(n=8, style="cad", size=64)
    before, cad_before = dataset_dir("horse", spec, 0, "target"), dataset_dir("horse", cad, 0, "source")
    assert dataset_dir("horse", spec, 0, "target") == before  # stable for the same definition
    assert dataset_dir("horse", SynthSpec(n=8, style="photo", size=64, gap=0.5), 0, "target") != before
    monkeypatch.setitem(styles.PHOTO, "occluder_p", styles.PHOTO["occluder_p"] + 0.1)
    monkeypatch.setattr(styles, "_style_table", functools.cache(styles._style_table.__wrapped__))  # empty cache
    assert dataset_dir("horse", spec, 0, "target") != before
    assert dataset_dir("horse", cad, 0, "source") == cad_before  # cad's data did not change: same folder
    assert dataset_dir("horse", SynthSpec(n=9, style="cad", size=64), 0, "source") != cad_before
