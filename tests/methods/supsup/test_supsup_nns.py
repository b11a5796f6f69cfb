"""SupSup NNs (no task identity at training or test time): the new-task rule, old masks kept exactly, bad
inputs, and on 5 permuted-digit tasks the masks allocated and the accuracy against GNu."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import main_normal
from tests.helpers.files import png_is_drawn
from unforget.models.layers.supsup import set_density
from unforget.models.lenet import LeNet300100
from unforget.utils.data.registry import get_benchmark
from unforget.utils.methods.supsup import nns
from unforget.utils.methods.supsup.settings import SupSupSettings

NAMES = get_benchmark("permuted_digits").task_names
NNS = ["--supsup_masks", "threshold", "--supsup_optimizer", "rmsprop", "--supsup_weight_decay", "0", "--lr", "3e-3",
       "--batch_size", "128", "--supsup_output_size", "10"]


def _main(*argv: str) -> int:
    return main_normal.main([*argv, "--device", "cpu"])


def _nns(data_root: Path, folder: Path, stream, *flags: str) -> None:
    code = _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_digits", "--dataset", stream[0],
                 "--arch", "lenet_300_100", "--data_root", str(data_root), "--supsup_scenario", "nns",
                 "--supsup_stream", ",".join(stream), "--save_folder", str(folder), *NNS, *flags)
    assert code == 0


def _summary(data_root: Path, folder: Path, summary: Path, *flags: str) -> dict:
    code = _main("--method", "supsup", "--mode", "inference", "--benchmark", "permuted_digits", "--dataset", NAMES[0],
                 "--data_root", str(data_root), "--load_folder", str(folder), "--val_batch_size", "500",
                 "--supsup_summary", str(summary), *flags)
    assert code == 0
    return json.loads(summary.read_text())


def _stream(budget: int = 10, epsilon: float = 0.125) -> nns.MaskStream:
    torch.manual_seed(0)
    network = LeNet300100(input_shape=(1, 8, 8), outputs=10)
    set_density(network, None)
    settings = SupSupSettings(mode="finetune", dataset=NAMES[0], method="supsup", benchmark="permuted_digits",
                              supsup_nns_budget=budget, supsup_nns_epsilon=epsilon)
    stream = nns.MaskStream(network, settings, 10)
    stream.allocate()
    return stream


@pytest.mark.parametrize("share, known", [(1.124, False), (1.126, True)])
def test_a_check_allocates_exactly_when_n_max_nu_is_below_one_plus_epsilon(monkeypatch, share, known):
    """Gradients whose softmax gives mask 1 the share `share`/n of 5 candidates: the rule's boundary."""
    stream = _stream()
    rest = (1 - share / 5) / 4
    grad = -torch.tensor([share / 5, rest, rest, rest, rest]).log()
    monkeypatch.setattr(nns, "alpha_gradient", lambda *args: grad)
    mask, fields = stream.decide(torch.zeros(4, 1, 8, 8))
    assert fields["decision"] == ("known" if known else "new")
    assert mask == (1 if known else 2) and stream.allocated == (1 if known else 2)


def test_an_untrained_winner_or_a_spent_budget_allocates_nothing_known(monkeypatch):
    stream = _stream(budget=2)
    grad = torch.tensor([0.0, 0.0, -5.0, 0.0, 0.0])  # candidate 3 was never allocated
    monkeypatch.setattr(nns, "alpha_gradient", lambda *args: grad)
    mask, fields = stream.decide(torch.zeros(4, 1, 8, 8))
    assert (mask, fields["decision"], stream.allocated) == (2, "new_untrained_won", 2)
    mask, fields = stream.decide(torch.zeros(4, 1, 8, 8))
    assert (mask, fields["decision"], stream.allocated) == (None, "budget_spent", 2)


def test_candidates_fill_up_to_maxn_and_grow_past_it():
    stream = _stream()
    assert len(stream.network.tasks) == 5
    for _ in range(5):
        stream.allocate()
    assert stream.allocated == 6 and len(stream.network.tasks) == 6


@pytest.mark.slow
def test_a_mask_no_check_picks_keeps_its_outputs_bit_identical(tmp_path, data_root):
    """The stream [A] and the stream [A, B] where B gets a new mask: mask 1 answers the same, bit for bit."""
    flags = ("--supsup_nns_task_batches", "200", "--supsup_nns_every", "100")
    _nns(data_root, tmp_path / "a", NAMES[:1], *flags)
    _nns(data_root, tmp_path / "ab", NAMES[:2], *flags)
    from unforget.utils.methods.supsup.stages import load

    meta = json.loads((tmp_path / "ab" / "meta.json").read_text())
    assert [entry["mapped_mask"] for entry in meta["stream"]] == [1, 2]
    images = torch.randn(16, 1, 8, 8)
    outputs = []
    for folder in ("a", "ab"):
        network, _ = load(tmp_path / folder)
        network.eval()
        network.set_task(1)
        with torch.no_grad():
            outputs.append(network(images))
    assert torch.equal(*outputs)


@pytest.mark.slow
def test_nns_on_five_permuted_digit_tasks_allocates_five_to_seven_masks_and_matches_gnu(tmp_path, data_root):
    """The same tasks, batches (200 a task: 20 epochs), optimizer and one-shot entropy inference of single
    images, once without task identities (NNs) and once with them at training (GNu)."""
    _nns(data_root, tmp_path / "nns", NAMES[:5], "--supsup_nns_task_batches", "200", "--supsup_nns_every", "100")
    found = _summary(data_root, tmp_path / "nns", tmp_path / "nns.json", "--supsup_scenario", "nns")
    for index, name in enumerate(NAMES[:5]):
        gnu = ["--load_folder", str(tmp_path / "gnu")] if index else []
        assert _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_digits", "--dataset", name,
                     "--arch", "lenet_300_100", "--data_root", str(data_root), "--save_folder", str(tmp_path / "gnu"),
                     "--epochs", "20", "--supsup_schedule", "constant", *NNS, *gnu) == 0
    given = _summary(data_root, tmp_path / "gnu", tmp_path / "gnu.json", "--supsup_adaptor", "oneshot",
                     "--supsup_objective", "h")
    print(f"NNs: {found['masks_allocated']} masks, accuracy {found['average_accuracy_inferred_mask']}; "
          f"GNu: {given['average_accuracy_inferred_task']}")
    assert 5 <= found["masks_allocated"] <= 7
    assert [row["task"] for row in found["tasks"]] == list(NAMES[:5])
    assert abs(found["average_accuracy_inferred_mask"] - given["average_accuracy_inferred_task"]) <= 0.03


@pytest.mark.parametrize("flags, message", [
    (("--supsup_nns_budget", "0"), "--supsup_nns_budget must be at least 1"),
    (("--supsup_nns_epsilon", "nan"), "--supsup_nns_epsilon must be a finite number"),
    (("--supsup_nns_epsilon", "0"), "--supsup_nns_epsilon must be above 0"),
    (("--supsup_nns_maxn", "1"), "--supsup_nns_maxn must be at least 2"),
    (("--supsup_stream", "pdigits_00,nope"), "'nope' is not a task of permuted_digits"),
    (("--supsup_stream", "pdigits_00,pdigits_00"), "names a task twice"),
    ((), "needs --supsup_stream"),
])
def test_bad_nns_inputs_exit_64_with_one_line(tmp_path, data_root, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:  # flags are checked as they are parsed
        _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_digits", "--dataset", NAMES[0],
              "--arch", "lenet_300_100", "--data_root", str(data_root), "--supsup_scenario", "nns",
              "--save_folder", str(tmp_path / "m"), *flags)
    err = capsys.readouterr().err
    assert stop.value.code == 64 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_the_nns_driver_logs_every_check_and_writes_the_summary(tmp_path, data_root):
    from tests.helpers import run_driver

    env = {"BENCHMARK": "permuted_digits", "NUM_TASKS": "2", "TASK_BATCHES": "20", "CHECK_EVERY": "10",
           "LR": "3e-3", "OUTPUT_SIZE": "10", "DATA_ROOT": str(data_root), "CKPT_ROOT": str(tmp_path)}
    result = run_driver("supsup_nns_permuted_mnist.sh", "0", **env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    root = tmp_path / "SupSup/permuted_digits/nns_seed1/lenet_300_100"
    checks = [line for line in (root / "train.log").read_text().splitlines() if " batch=" in line]
    assert [int(line.split(" batch=")[1].split()[0]) for line in checks] == [10, 20, 30]
    assert all("decision=" in line and "masks_allocated=" in line for line in checks)
    summary = json.loads((root / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == list(NAMES[:2])
    assert all(row["num_tasks_learned"] == summary["masks_allocated"] and "accuracy_inferred_mask" in row
               and "mapped_mask" in row for row in summary["tasks"])
    assert (root / "results.csv").read_text().startswith("num_tasks_learned,task,mapped_mask")
    with (root / "model/checks.csv").open() as file:  # the plot's data: the checks train.log gives
        rows = list(csv.DictReader(file))
    assert [(row["batch"], row["decision"], row["n_max_nu"]) for row in rows] == [
        (line.split(" batch=")[1].split()[0], line.split(" decision=")[1].split()[0],
         line.split(" n_max_nu=")[1].split()[0]) for line in checks]
    assert png_is_drawn(root / "nns_checks.png")


def test_the_stream_report_refuses_a_folder_without_a_run_and_a_corrupt_checks_file(tmp_path, capsys):
    from unforget.tools import stream_report

    with pytest.raises(SystemExit) as stop:
        stream_report.main([str(tmp_path)])
    assert stop.value.code == 64 and "is not a finished NNs or HopSupSup run" in capsys.readouterr().err
    (tmp_path / "model").mkdir()
    (tmp_path / "model/meta.json").write_text(json.dumps({"settings": {"supsup_nns_epsilon": 0.125}}))
    (tmp_path / "model/checks.csv").write_text("batch,stream_task,decision,n_max_nu,masks_allocated\n10,a,new,x,1\n")
    assert stream_report.main([str(tmp_path)]) == 65
    err = capsys.readouterr().err
    assert "not an NNs checks file" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "model/checks.csv").write_text("batch,stream_task,decision,n_max_nu,masks_allocated\n10,a,new,nan,1\n")
    assert stream_report.main([str(tmp_path)]) == 65
    err = capsys.readouterr().err
    assert "n_max_nu nan is not a finite number" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "model/checks.csv").unlink()
    (tmp_path / "summary.json").write_text(json.dumps({"hidden": 64, "recovery_trace": {"a": [{"step": 1}]}}))
    assert stream_report.main([str(tmp_path)]) == 65  # a HopSupSup summary whose trace lacks the overlaps
    err = capsys.readouterr().err
    assert "not a HopSupSup recovery trace" in err and len(err.strip().splitlines()) == 1



def test_nns_inference_of_a_gnu_checkpoint_exits_64(tmp_path, data_root, capsys):
    assert _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_digits", "--dataset", NAMES[0],
                 "--arch", "lenet_300_100", "--data_root", str(data_root), "--epochs", "1",
                 "--save_folder", str(tmp_path / "m")) == 0
    capsys.readouterr()
    code = _main("--method", "supsup", "--mode", "inference", "--benchmark", "permuted_digits", "--dataset", NAMES[0],
                 "--data_root", str(data_root), "--supsup_scenario", "nns", "--load_folder", str(tmp_path / "m"))
    err = capsys.readouterr().err
    assert code == 64 and "was not learned by --supsup_scenario nns" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("scenario", [("--supsup_scenario", "nns", "--supsup_stream", ",".join(NAMES[:2])), ()])
def test_too_few_outputs_for_the_tasks_classes_is_one_line_and_64_before_training(tmp_path, data_root, capsys,
                                                                                    scenario):
    try:
        code = _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_digits", "--dataset",
                     NAMES[0], "--arch", "lenet_300_100", "--data_root", str(data_root), "--save_folder",
                     str(tmp_path / "m"), "--supsup_output_size", "5", *scenario)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 64 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "has 10 classes, more than the network's 5 outputs" in err
