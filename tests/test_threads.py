"""The thread policy (animalpose.threads) on fake affinities and loads, and its effect on torch."""

import io

import pytest
import torch

from animalpose import threads
from animalpose.threads import loader_workers, plan_threads


def test_quiet_two_cores_one_thread_one_worker():
    p = plan_threads(2, 0.1)
    assert (p.free, p.threads, p.workers, p.warning) == (2, 1, 1, None)


def test_quiet_large_machine_caps_workers():
    p = plan_threads(16, 0.0)
    assert (p.threads, p.workers) == (8, 8)
    p = plan_threads(64, 0.0)
    assert (p.threads, p.workers) == (56, 8)


def test_one_busy_neighbour_on_two_cores_leaves_one_thread_and_says_so():
    # the case: a second torch thread beside one busy core ran a step 20x slower
    p = plan_threads(2, 1.0)
    assert (p.free, p.threads, p.workers) == (1, 1, 0)
    assert (p.quiet_threads, p.quiet_workers) == (1, 1)
    assert "busy" in p.warning and "load 1.0 on 2 usable cores" in p.warning
    assert "1 torch thread and 0 loader workers instead of 1 and 1" in p.warning


def test_load_above_cores_still_runs_one_thread():
    p = plan_threads(2, 6.3)
    assert (p.free, p.threads, p.workers) == (1, 1, 0)
    assert p.warning is not None


def test_half_a_busy_core_counts_as_busy_less_does_not():
    assert plan_threads(4, 0.49).free == 4
    assert plan_threads(4, 0.5).free == 3


def test_load_is_shared_over_the_whole_machine_when_affinity_is_a_subset():
    # 4 of 16 CPUs, load 8 spread evenly: 2 of our 4 cores busy
    p = plan_threads(4, 8.0, total_cores=16)
    assert (p.free, p.threads, p.workers) == (2, 1, 1)
    assert p.load == 2.0


def test_one_core():
    p = plan_threads(1, 0.0)
    assert (p.threads, p.workers, p.warning) == (1, 0, None)


def test_one_core_under_load_still_warns():
    p = plan_threads(1, 3.0)
    assert (p.threads, p.workers) == (1, 0)
    assert p.warning == ("the machine is busy (load 3.0 on 1 usable core): using 1 torch thread and 0 loader "
                         "workers (expect slower steps); --threads / data.workers override")


def test_explicit_workers_leave_the_rest_to_torch():
    p = plan_threads(8, 0.0, workers=0)
    assert (p.threads, p.workers) == (8, 0)
    p = plan_threads(8, 0.0, workers=3)
    assert (p.threads, p.workers) == (5, 3)


def test_explicit_threads_leave_the_rest_to_workers():
    p = plan_threads(8, 0.0, threads=2)
    assert (p.threads, p.workers) == (2, 6)


def test_explicit_oversubscription_is_kept_and_warned():
    p = plan_threads(2, 1.0, threads=2, workers=2)
    assert (p.threads, p.workers) == (2, 2)
    assert "2 torch threads + 2 loader workers on 1 free core" in p.warning


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 7, 16, 33])
@pytest.mark.parametrize("load", [0.0, 0.4, 1.0, 2.6, 12.0])
def test_default_never_runs_more_threads_than_free_cores(cores, load):
    p = plan_threads(cores, load)
    assert p.runnable == p.free <= cores
    assert p.threads >= 1 and p.workers <= threads.MAX_WORKERS
    assert (p.warning is None) == (p.free == cores and load <= cores)


@pytest.mark.parametrize("kwargs", [{"cores": 0, "load": 0.0}, {"cores": 2, "load": -1.0},
                                    {"cores": 2, "load": 0.0, "threads": 0}, {"cores": 2, "load": 0.0, "workers": -1}])
def test_bad_requests(kwargs):
    with pytest.raises(ValueError):
        plan_threads(**kwargs)


@pytest.fixture
def fake_machine(monkeypatch):
    """A 4-core affinity on a 4-core machine with a chosen load; torch threads restored afterwards."""
    before = torch.get_num_threads()
    load = {"value": 0.0}
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load["value"], 0.0, 0.0))
    monkeypatch.setattr(threads, "_current", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield load
    torch.set_num_threads(before)


def test_configure_threads_sets_torch_and_warns_once(fake_machine):
    fake_machine["value"] = 2.2  # 2 of 4 cores busy
    err = io.StringIO()
    plan = threads.configure_threads(stream=err)
    assert (plan.threads, plan.workers) == (1, 1)
    assert torch.get_num_threads() == 1
    assert err.getvalue().startswith("warning: the machine is busy (load 2.2 on 4 usable cores)")
    # a flow run by the command that already chose keeps the plan and stays silent
    again = io.StringIO()
    assert threads.configure_threads(stream=again) is plan and again.getvalue() == ""
    assert loader_workers(None) == 1 and loader_workers(3) == 3


def test_a_config_without_workers_gets_their_cores_as_threads(fake_machine):
    err = io.StringIO()
    plan = threads.configure_threads(stream=err)  # quiet 4 cores: 2 threads + 2 workers
    assert (plan.threads, plan.workers) == (2, 2) and err.getvalue() == ""
    assert loader_workers(0) == 0
    assert torch.get_num_threads() == 4 and threads._current.runnable == 4
    assert loader_workers(None) == 0  # the rebalanced plan from now on


def test_requested_threads_are_not_rebalanced(fake_machine, capsys):
    threads.configure_threads(1, stream=io.StringIO())
    assert loader_workers(0) == 0 and torch.get_num_threads() == 1
    assert loader_workers(6) == 6 and torch.get_num_threads() == 1  # explicit both: kept


def test_configure_threads_explicit_request_and_env(fake_machine, monkeypatch):
    err = io.StringIO()
    assert threads.configure_threads(3, stream=err).threads == 3
    assert torch.get_num_threads() == 3 and err.getvalue() == ""
    monkeypatch.setattr(threads, "_current", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    plan = threads.configure_threads(stream=err)
    assert (plan.threads, plan.workers) == (2, 2) and torch.get_num_threads() == 2


def test_threads_flag_rejects_zero():
    from typer.testing import CliRunner

    from animalpose.cli import app

    res = CliRunner().invoke(app, ["train", "--config", "x.yaml", "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.output


@pytest.mark.parametrize(("free", "workers"), [(1, 0), (2, 0), (3, 0), (4, 1), (7, 1), (8, 2), (64, 8)])
def test_cpu_training_takes_one_worker_per_four_free_cores(free, workers):
    assert threads.cpu_workers(free) == workers


@pytest.fixture
def two_cores(fake_machine, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    return fake_machine


def test_cpu_training_on_two_quiet_cores_loads_data_inline_with_two_threads(two_cores):
    """On 2 free cores the quick network costs ~50x its data path per image: 2 torch threads and the data in the
    trainer's process, not 1 thread and a worker that idles."""
    plan = threads.configure_threads(stream=io.StringIO())
    assert (plan.threads, plan.workers) == (1, 1)
    assert loader_workers(None, torch.device("cpu")) == 0
    assert torch.get_num_threads() == 2 and threads._current.runnable == 2
    assert loader_workers(None, "cpu") == 0 and torch.get_num_threads() == 2  # stable on the next loader


def test_cuda_loaders_keep_the_planned_workers(two_cores):
    threads.configure_threads(stream=io.StringIO())
    assert loader_workers(None, torch.device("cuda", 0)) == 1 and torch.get_num_threads() == 1
    assert loader_workers(None) == 1


def test_cpu_training_on_four_quiet_cores_one_worker_three_threads(fake_machine):
    threads.configure_threads(stream=io.StringIO())
    assert loader_workers(None, "cpu") == 1 and torch.get_num_threads() == 3


def test_cpu_rule_leaves_requested_threads_and_configured_workers_alone(fake_machine):
    threads.configure_threads(1, stream=io.StringIO())  # --threads 1: the workers fill the other free cores
    assert loader_workers(None, "cpu") == 3 and torch.get_num_threads() == 1
    threads._current = None
    threads.configure_threads(stream=io.StringIO())
    assert loader_workers(2, "cpu") == 2 and torch.get_num_threads() == 2  # data.workers: 2 wins


def test_cpu_rule_without_a_plan_does_not_touch_torch(fake_machine):
    torch.set_num_threads(3)
    assert loader_workers(None, "cpu") == 1 and torch.get_num_threads() == 3
