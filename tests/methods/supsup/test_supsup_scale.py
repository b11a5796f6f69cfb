"""Scale: a checkpoint's tasks are rebuilt at their final size (no replay of how they were learned), the
SupSup stack grows by doubling, and every output of an old task stays bit-identical through saving,
loading and growth (SupSup and CPG). Also the GNs driver and the adapt_results.csv of EVAL_AT points."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from tests.helpers import run_driver
from tests.helpers.cifar import write_cifar100_pickle
from unforget.models import build_network
from unforget.models.layers.base import TaskSpec
from unforget.models.layers.cpg import CPGWeights
from unforget.models.layers.per_task import TaskBatchNorm2d, TaskHeads
from unforget.models.layers.supsup import SupSupWeights, set_density, store_masks, supsup_layers
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, save_checkpoint
from unforget.utils.data import rand_cifar100
from unforget.utils.data.registry import get_benchmark
from unforget.utils.methods.cpg.settings import CPGSettings
from unforget.utils.methods.supsup.settings import SupSupSettings
from unforget.utils.methods.supsup.stages import first_tasks, merge

SUPSUP_SHAPE = {"input_shape": (1, 8, 8), "outputs": 12}


def _logits(network: TaskNetwork, inputs: torch.Tensor) -> list[torch.Tensor]:
    network.eval()
    outputs = []
    with torch.no_grad():
        for task in range(1, len(network.tasks) + 1):
            network.set_task(task)
            outputs.append(network(inputs))
    return outputs


def _learn_supsup_tasks(network: TaskNetwork, count: int, prefix: str = "t") -> None:
    """Tasks added as a stage adds them: fresh scores (random here, instead of trained), then stored."""
    for _ in range(count):
        network.add_task(f"{prefix}{len(network.tasks) + 1}", 10)
        set_density(network, None)
        store_masks(network)


def _supsup_network(tasks: int) -> TaskNetwork:
    torch.manual_seed(0)
    network = build_network("lenet_300_100", 1.0, mode="supsup", **SUPSUP_SHAPE)
    _learn_supsup_tasks(network, tasks)
    return network


def _no_replay(monkeypatch) -> None:
    """Loading must never learn a task again: adding one (scores drawn, picks filled, a batch-norm copied, a
    head initialised) fails the test."""
    def refuse(self, spec):
        raise AssertionError(f"{type(self).__name__}.add_task called while restoring {spec.name}")

    for kind in (SupSupWeights, CPGWeights, TaskBatchNorm2d, TaskHeads):
        monkeypatch.setattr(kind, "add_task", refuse)


def test_supsup_checkpoint_loads_the_saved_stacks_at_their_size_and_the_same_logits(tmp_path, monkeypatch):
    network = _supsup_network(5)  # 1 -> 2 -> 4 -> 8 rows: the saved stacks are views with spare rows
    inputs = torch.randn(7, 1, 8, 8)
    before = _logits(network, inputs)
    assert all(layer.capacity == 8 for layer in supsup_layers(network))
    save_checkpoint(tmp_path, network, "lenet_300_100", SupSupSettings(mode="finetune", dataset="t1"), {})
    payload = load_checkpoint(tmp_path)
    for name, value in payload["model"].items():  # only the used rows went into the file
        assert value.untyped_storage().nbytes() == value.numel() * value.element_size(), name
    _no_replay(monkeypatch)
    loaded = network_from_checkpoint(payload, **SUPSUP_SHAPE)
    for saved, restored in zip(supsup_layers(network), supsup_layers(loaded), strict=True):
        assert torch.equal(restored.stack, saved.stack)
        assert restored.capacity == restored.num_tasks == 5  # sized once, straight from the checkpoint
        assert restored.stack.data_ptr() == restored._rows.data_ptr()
    for old, new in zip(before, _logits(loaded, inputs), strict=True):
        assert torch.equal(old, new)


@pytest.mark.parametrize("mode, arch, options", [("supsup", "lenet_300_100", SUPSUP_SHAPE),
                                                  ("cpg", "digits_convnet", {})])
def test_restoring_tasks_draws_no_random_numbers(mode, arch, options):
    """Nothing is drawn for a stored task (no scores, no head init): building with k stored tasks uses the
    generator exactly as building with none."""
    specs = [TaskSpec(f"t{index}", 10, 1.0) for index in range(3)]
    states = []
    for tasks in ([], specs):
        torch.manual_seed(1)
        build_network(arch, 1.0, tasks, mode=mode, **options)
        states.append(torch.get_rng_state())
    assert torch.equal(*states)


def test_the_stack_grows_by_doubling_and_old_tasks_stay_bit_identical():
    network = _supsup_network(1)
    inputs = torch.randn(5, 1, 8, 8)
    layer = supsup_layers(network)[0]
    reallocations, buffer = 0, layer._rows.data_ptr()
    history = []
    for count in range(2, 18):
        before = _logits(network, inputs)
        _learn_supsup_tasks(network, 1)
        if layer._rows.data_ptr() != buffer:
            reallocations, buffer = reallocations + 1, layer._rows.data_ptr()
        history.append(layer.capacity)
        after = _logits(network, inputs)
        assert all(torch.equal(old, new) for old, new in zip(before, after[:-1], strict=False))
        assert layer.num_tasks == count and layer.stack.data_ptr() == layer._rows.data_ptr()
    assert reallocations == 5 and history[-1] == 32  # 1 -> 2 -> 4 -> ... -> 32: O(k) rows copied in all


def test_forgotten_rows_are_cleared_before_they_are_reused():
    """first_tasks keeps the buffer; a task added afterwards must not inherit a forgotten task's bits, which a
    superposed forward would read while the new task is still being learned."""
    network = _supsup_network(3)
    inputs = torch.randn(5, 1, 8, 8)
    first = _logits(network, inputs)[0]
    first_tasks(network, 1)
    network.add_task("again", 10)
    assert all(layer.num_tasks == 2 and not layer.stack[1].any() for layer in supsup_layers(network))
    store_masks(network)
    assert torch.equal(_logits(network, inputs)[0], first)


def test_merging_single_task_checkpoints_sizes_the_stack_once_and_keeps_every_task(tmp_path):
    """GG: one network from k single-task runs (same weights) gives each task the logits of its own run."""
    inputs, expected, folders = torch.randn(4, 1, 8, 8), [], []
    meta = {"input_shape": [1, 8, 8], "outputs": SUPSUP_SHAPE["outputs"]}
    for index in range(3):
        network = _supsup_network(0)
        torch.manual_seed(10 + index)  # each run's own scores
        _learn_supsup_tasks(network, 1, prefix=f"run{index}_")
        expected += _logits(network, inputs)
        folders.append(tmp_path / f"run{index}")
        save_checkpoint(folders[-1], network, "lenet_300_100", SupSupSettings(mode="finetune", dataset="t1"),
                        {**meta, "accuracy_after_learning": {network.tasks[0].name: 0.5}})
    merged, meta = merge(folders)
    assert [spec.name for spec in merged.tasks] == ["run0_1", "run1_1", "run2_1"]
    assert len(meta["accuracy_after_learning"]) == 3
    assert all(layer.capacity == 3 for layer in supsup_layers(merged))
    for old, new in zip(expected, _logits(merged, inputs), strict=True):
        assert torch.equal(old, new)


def _cpg_network(tasks: int) -> TaskNetwork:
    """A CPG network whose tasks own, free and pick weights at random, with their own batch-norm statistics."""
    torch.manual_seed(0)
    network = build_network("digits_convnet", 1.0, mode="cpg")
    generator = torch.Generator().manual_seed(0)
    for task in range(1, tasks + 1):
        network.add_task(f"t{task}", 2)
        with torch.no_grad():
            for layer in [m for m in network.modules() if isinstance(m, CPGWeights)]:
                owned = layer.owner == task
                freed = torch.rand(layer.owner.shape, generator=generator) < 0.3
                layer.owner[owned & freed] = 0
                if task > 1:
                    picks = getattr(layer, f"pick_{task}")
                    picks.copy_(torch.randint(0, 256, picks.shape, dtype=torch.uint8, generator=generator))
                layer.invalidate()
            for module in network.modules():
                if isinstance(module, torch.nn.BatchNorm2d) and module.running_mean is not None:
                    module.running_mean.normal_(generator=generator)
    return network


def test_cpg_checkpoint_rebuilds_every_task_without_replay_and_the_same_logits(tmp_path, monkeypatch):
    network = _cpg_network(4)
    inputs = torch.randn(3, 1, 8, 8)
    before = _logits(network, inputs)
    save_checkpoint(tmp_path, network, "digits_convnet", CPGSettings(mode="finetune", dataset="t1"), {})
    _no_replay(monkeypatch)
    switches, set_task = [], TaskNetwork.set_task

    def counted(self, task: int) -> None:
        switches.append(task)
        set_task(self, task)

    monkeypatch.setattr(TaskNetwork, "set_task", counted)
    loaded = network_from_checkpoint(load_checkpoint(tmp_path))
    assert switches == [4, 4]  # once after the tasks are restored, once by the loader: not once per task
    monkeypatch.undo()
    stored, restored = network.state_dict(), loaded.state_dict()
    assert stored.keys() == restored.keys() and all(torch.equal(stored[key], restored[key]) for key in stored)
    for old, new in zip(before, _logits(loaded, inputs), strict=True):
        assert torch.equal(old, new)



@pytest.mark.slow
def test_gns_driver_evaluates_every_learned_task_at_each_eval_point(tmp_path, data_root):
    """scripts/supsup_gns_permuted_mnist.sh on permuted_digits: adapt_results.csv in the reference's format holds
    a row per task learned so far after each EVAL_AT count and at the end."""
    result = run_driver("supsup_gns_permuted_mnist.sh", "0", BENCHMARK="permuted_digits", NUM_TASKS="3",
                        EVAL_AT="1 2", DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    root = tmp_path / "SupSup/permuted_digits/gns_seed1/lenet_300_100"
    meta = json.loads((root / "model/meta.json").read_text())
    assert meta["outputs"] == 10  # shared labels: no superfluous neurons
    with (root / "oneshot_h/adapt_results.csv").open() as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == ["Date Finished", "Name", "Task", "Num Tasks Learned", "Current Val", "Adapt Val"]
    names = [spec["name"] for spec in meta["tasks"]]
    assert [(int(row["Num Tasks Learned"]), row["Task"]) for row in rows] == [
        (learned, name) for learned in (1, 2, 3) for name in names[:learned]]
    for row in rows:
        assert float(row["Current Val"]) == meta["accuracy_after_learning"][row["Task"]]
        assert 0.0 <= float(row["Adapt Val"]) <= 1.0
    assert rows[0]["Adapt Val"] == rows[0]["Current Val"]  # one task learned: inferring it cannot go wrong
    summary = json.loads((root / "oneshot_h/summary.json").read_text())
    assert summary["labels"] == "shared"
    assert [f"{task['accuracy_inferred_task']:.4f}" for task in summary["tasks"]] == [
        row["Adapt Val"] for row in rows if row["Num Tasks Learned"] == "3"]


def test_every_rand_split_task_of_a_process_comes_from_one_read_of_cifar100(tmp_path, monkeypatch):
    """GG inference evaluates all tasks in one process: CIFAR-100 is assembled once, not once per task."""
    write_cifar100_pickle(tmp_path)
    reads = []
    load_all_classes = rand_cifar100.load_all_classes
    monkeypatch.setattr(rand_cifar100, "load_all_classes", lambda root: reads.append(root) or load_all_classes(root))
    rand_cifar100._all_classes.cache_clear()
    benchmark = get_benchmark("rand_split_cifar100")
    tasks = [benchmark.load_task(tmp_path, name) for name in benchmark.task_names[:3]]
    rand_cifar100._all_classes.cache_clear()
    assert len(reads) == 1
    assert all(len(task.classes) == 5 and task.train_labels.max() == 4 for task in tasks)
    fresh = benchmark.load_task(tmp_path, benchmark.task_names[1])  # the same task as a cold read gives it
    assert torch.equal(fresh.train_images, tasks[1].train_images) and torch.equal(fresh.test_labels,
                                                                                  tasks[1].test_labels)


def test_bench_builds_checkpoints_of_k_stored_masks_and_times_inference(tmp_path, capsys):
    """tools/bench_supsup.py (not a timing test): its checkpoints hold k random masks that load, and its
    inference part reports one row per k."""
    from unforget.tools import bench_supsup
    from unforget.utils.methods.supsup.stages import load

    (tmp_path / "data").mkdir()
    bench_supsup.stored_checkpoint(tmp_path / "k3", tmp_path / "data", 3, "permuted_digits", "lenet_300_100", 12)
    network, meta = load(tmp_path / "k3")
    assert len(network.tasks) == 3 and meta["outputs"] == 12
    assert all(layer.num_tasks == 3 and layer.stack.any() for layer in supsup_layers(network))
    out = tmp_path / "bench.json"
    assert bench_supsup.main(["--part", "inference", "--counts", "2", "5", "--repeats", "1", "--images", "4",
                              "--outputs", "12", "--work", str(tmp_path), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["inference"]
    assert [(row["tasks"], row["images"]) for row in rows] == [(2, 4), (5, 4)]
    assert "us/image/task" in capsys.readouterr().out
