"""SupSup's GG baselines (Figure 3): fixed-body and BatchE layer modes, the gg_baseline method, SupSup
Transfer and their switch in scripts/supsup_gg.sh."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import main_normal
from tests.helpers import run_driver
from tests.helpers.cifar import write_cifar100_pickle
from unforget.models import build_network
from unforget.models.layers.supsup import supsup_layers
from unforget.utils.data.registry import get_benchmark
from unforget.utils.engine import predict
from unforget.utils.methods.gg_baseline import stages as gg
from unforget.utils.methods.gg_baseline.stages import split_parameters
from unforget.utils.methods.supsup import stages as supsup_stages
from unforget.utils.methods.supsup import transfer

SHARED_BODY_MODES = ("fixed_body", "fixed_body_randw", "batche", "batche_randw")
DIGITS = get_benchmark("split_digits").task_names


def _main(*argv: str) -> int:
    return main_normal.main([*argv, "--device", "cpu"])


def _train(network, task: int, images: torch.Tensor, labels: torch.Tensor, steps: int = 3) -> None:
    """A few Adam steps on everything task `task` may change (its own parts and, for task 1, the body)."""
    network.set_task(task)
    network.train()
    body, own = split_parameters(network, task)
    optimizer = torch.optim.Adam(body + own, lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(images), labels).backward()
        optimizer.step()


@torch.no_grad()
def _logits(network, task: int, images: torch.Tensor) -> torch.Tensor:
    network.set_task(task)
    network.eval()
    return network(images)


@pytest.mark.parametrize("mode", SHARED_BODY_MODES)
def test_old_task_logits_are_bit_identical_after_a_new_task(mode):
    """GEMResNet18 (per-task batch-norm statistics) in every shared-body mode: learning task 2 leaves task 1's
    logits exactly as they were, while task 2 does learn and only the first task trains a non-random body."""
    torch.manual_seed(0)
    network = build_network("gem_resnet18", 1.0, mode=mode, input_shape=(3, 32, 32), outputs=5)
    images, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    network.add_task("first", 5)
    body = [m.weight.clone() for m in network.body_weights()]
    _train(network, 1, images, labels)
    trained_body = any(not torch.equal(before, m.weight) for before, m in zip(body, network.body_weights(),
                                                                              strict=True))
    assert trained_body == (not mode.endswith("randw"))
    before = _logits(network, 1, images)
    network.add_task("second", 5)
    untrained = _logits(network, 2, images)
    assert split_parameters(network, 2)[0] == []  # the body is frozen for every later task
    _train(network, 2, images, labels)
    assert not torch.equal(_logits(network, 2, images), untrained)
    assert torch.equal(_logits(network, 1, images), before)


def test_batche_is_the_body_weight_times_a_rank_one_factor_per_task():
    torch.manual_seed(0)
    network = build_network("lenet_300_100", 1.0, mode="batche_randw", input_shape=(1, 8, 8), outputs=2)
    network.add_task("a", 2)
    network.add_task("b", 2)
    layer = network.body_weights()[0]
    for task in (1, 2):
        network.set_task(task)
        s, r = layer.s[task - 1], layer.r[task - 1]
        assert set(s.tolist()) <= {-1.0, 1.0} and set(r.tolist()) <= {-1.0, 1.0}
        assert torch.equal(layer()[0], layer.weight * torch.outer(s, r))
    assert not torch.equal(layer.s[0], layer.s[1])


def _learn_gg(tmp_path: Path, data_root: Path, layers: str, names, *flags: str) -> list[Path]:
    folders = []
    for name in names:
        folder = tmp_path / layers / name
        load = ["--load_folder", str(folders[-1])] if folders else []
        assert _main("--method", "gg_baseline", "--mode", "finetune", "--gg_layers", layers, "--benchmark",
                     "split_digits", "--arch", "lenet_300_100", "--dataset", name, "--data_root", str(data_root),
                     "--save_folder", str(folder), "--epochs", "1", "--lr", "1e-2", *load, *flags) == 0
        folders.append(folder)
    return folders


def test_batche_task_one_logits_unchanged_after_learning_task_two_through_the_checkpoints(tmp_path, data_root):
    first, second = _learn_gg(tmp_path, data_root, "batche", DIGITS[:2])
    data = get_benchmark("split_digits").load_task(data_root, DIGITS[0]).on_device(torch.device("cpu"), 0, False)
    logits = []
    for folder in (first, second):
        network, meta = gg.load(folder)
        network.set_task(network.task_id(DIGITS[0]))
        logits.append(predict(network, data))
    assert torch.equal(*logits)
    assert set(meta["accuracy_after_learning"]) == set(DIGITS[:2])
    assert json.loads((second / "meta.json").read_text())["tasks"][-1]["name"] == DIGITS[1]


def test_upper_bound_keeps_one_network_per_task_and_evaluates_each_with_its_own(tmp_path, data_root):
    folders = _learn_gg(tmp_path, data_root, "plain", DIGITS[:2])
    first, _ = gg.load(folders[0])
    second, _ = gg.load(folders[1])
    assert [spec.name for spec in second.tasks] == [DIGITS[1]]  # went on from the first task's network
    assert not torch.equal(first.body_weights()[0].weight, second.body_weights()[0].weight)
    results = tmp_path / "results.csv"
    assert _main("--method", "gg_baseline", "--mode", "inference", "--benchmark", "split_digits", "--dataset",
                 DIGITS[0], "--data_root", str(data_root), "--gg_task_folders", ",".join(map(str, folders)),
                 "--gg_results", str(results)) == 0
    with results.open() as file:
        rows = list(csv.DictReader(file))
    assert [row["task"] for row in rows] == [*DIGITS[:2], "average"]
    for row in rows[:2]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]


def test_transfer_starts_each_task_at_the_mean_of_the_earlier_tasks_final_scores(tmp_path, data_root, monkeypatch):
    final, start = [], []
    store = supsup_stages.store_masks
    begin = transfer.start_from_mean

    def keep_final(network):
        final.append([layer.scores[str(len(network.tasks))].detach().clone() for layer in supsup_layers(network)])
        store(network)

    def keep_start(network, task, load_folder):
        begin(network, task, load_folder)
        start.append([layer.scores[str(task)].detach().clone() for layer in supsup_layers(network)])

    monkeypatch.setattr(supsup_stages, "store_masks", keep_final)
    monkeypatch.setattr(transfer, "start_from_mean", keep_start)
    folders = []
    for name in DIGITS[:3]:
        load = ["--load_folder", str(folders[-1])] if folders else []
        folders.append(tmp_path / name)
        assert _main("--method", "supsup", "--mode", "finetune", "--supsup_transfer", "--benchmark", "split_digits",
                     "--arch", "lenet_300_100", "--dataset", name, "--data_root", str(data_root), "--save_folder",
                     str(folders[-1]), "--epochs", "1", "--lr", "1e-2", *load) == 0
    assert not all(torch.equal(a, b) for a, b in zip(start[0], final[0], strict=True))  # the scores did train
    for layer in range(len(final[0])):
        assert torch.equal(start[1][layer], final[0][layer])
        assert torch.equal(start[2][layer], (final[0][layer] + final[1][layer]) / 2)
    data = get_benchmark("split_digits").load_task(data_root, DIGITS[0]).on_device(torch.device("cpu"), 0, False)
    first, last = (supsup_stages.load(folder)[0] for folder in (folders[0], folders[-1]))
    last.set_task(1)
    assert torch.equal(predict(first, data), predict(last, data))  # task 1 as it was before tasks 2 and 3


def test_transfer_refuses_one_folder_for_two_tasks_and_a_folder_without_score_sum(tmp_path, data_root, capsys):
    common = ["--method", "supsup", "--mode", "finetune", "--supsup_transfer", "--benchmark", "split_digits",
              "--arch", "lenet_300_100", "--dataset", DIGITS[1], "--data_root", str(data_root), "--epochs", "1"]
    with pytest.raises(SystemExit) as refused:
        _main(*common, "--load_folder", str(tmp_path / "a"), "--save_folder", str(tmp_path / "a"))
    assert refused.value.code == 64
    assert "folder of its own" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert _main("--method", "supsup", "--mode", "finetune", "--benchmark", "split_digits", "--arch",
                 "lenet_300_100", "--dataset", DIGITS[0], "--data_root", str(data_root), "--epochs", "1",
                 "--save_folder", str(plain)) == 0
    assert _main(*common, "--load_folder", str(plain), "--save_folder", str(tmp_path / "b")) == 65
    assert "--supsup_transfer" in capsys.readouterr().err


def test_missing_cifar_stops_a_baseline_with_where_the_files_go(tmp_path, monkeypatch, capsys):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    assert _main("--method", "gg_baseline", "--mode", "finetune", "--gg_layers", "batche_randw", "--benchmark",
                 "rand_split_cifar100", "--dataset", "rand_split_00", "--data_root", str(tmp_path),
                 "--save_folder", str(tmp_path / "out")) == 64
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(tmp_path / "cifar-100-python") in error


def test_driver_rejects_an_unknown_baseline_in_one_line(tmp_path):
    result = run_driver("supsup_gg.sh", BASELINE="batch_e", DATA_ROOT=str(tmp_path))
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1 and "batch_e" in result.stderr


BASELINES = ("upper_bound", "separate_heads", "separate_heads_randw", "batche", "batche_randw", "transfer")


def _driver_results(tmp_path: Path, baseline: str, **env: str) -> list[dict]:
    result = run_driver("supsup_gg.sh", BASELINE=baseline, NUM_TASKS="2", EPOCHS="1", BATCH_SIZE="32",
                        CKPT_ROOT=str(tmp_path / "ck"), **env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (results,) = (tmp_path / "ck").rglob("results.csv")
    with results.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_runs_through_the_driver_on_the_embedded_digits(tmp_path, data_root, baseline):
    benchmark = "split_digits" if baseline in ("separate_heads", "batche", "transfer") else "permuted_digits"
    rows = _driver_results(tmp_path, baseline, BENCHMARK=benchmark, ARCH="lenet_300_100", DATA_ROOT=str(data_root))
    assert [row["task"] for row in rows] == [*get_benchmark(benchmark).task_names[:2], "average"]
    for row in rows[:2]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]
        assert 0.0 <= float(row["accuracy_final"]) <= 1.0
    (root,) = [path.parent for path in (tmp_path / "ck").rglob("run.json")]
    assert json.loads((root / "run.json").read_text())["method"] == f"gg_{baseline}"
    record = json.loads((root / "metrics.json").read_text())
    matrix = record["accuracy_matrix"]  # from the task folders: the first task as it was after each task
    assert [matrix[0][0], matrix[1][1]] == [float(row["accuracy_after_learning"]) for row in rows[:2]]
    assert matrix[0][1] == matrix[0][0] and record["metrics"]["backward_transfer"] == 0
    assert (record["capacity"]["model_vs_independent"] == 1.0) == (baseline == "upper_bound")


@pytest.mark.slow
def test_baseline_seeds_give_one_run_each_and_a_table(tmp_path, data_root):
    result = run_driver("supsup_gg.sh", BASELINE="separate_heads", SEEDS="1 2", BENCHMARK="split_digits",
                        ARCH="lenet_300_100", NUM_TASKS="2", EPOCHS="1", BATCH_SIZE="32", DATA_ROOT=str(data_root),
                        CKPT_ROOT=str(tmp_path / "ck"), OMP_NUM_THREADS="1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    cards = sorted((tmp_path / "ck").rglob("run.json"))
    assert [json.loads(card.read_text())["seed"] for card in cards] == [1, 2]
    assert "| gg_separate_heads | 1 2 |" in result.stdout


@pytest.mark.slow
def test_batche_driver_runs_on_rand_split_cifar100(tmp_path):
    write_cifar100_pickle(tmp_path / "data")
    rows = _driver_results(tmp_path, "batche", DATA_ROOT=str(tmp_path / "data"))
    assert len(rows) == 3 and rows[0]["accuracy_final"] == rows[0]["accuracy_after_learning"]
