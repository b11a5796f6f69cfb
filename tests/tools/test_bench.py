"""The benchmark harness times every stage of each variant through the real entry point and writes its JSON."""

import json

import pytest

from unforget.tools import bench


@pytest.mark.slow
def test_bench_reports_every_stage_of_every_variant_and_a_projection(tmp_path, data_root):
    out = tmp_path / "bench.json"
    assert bench.main(["--benchmark", "split_digits", "--epochs", "2", "--device", "cpu", "--work",
                       str(tmp_path / "work"), "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["warm_start"] and summary["device"].startswith("cpu")
    assert [(variant["name"], variant["flags"]) for variant in summary["variants"]] == [("plain", "--plain"),
                                                                                        ("default", "")]
    for variant in summary["variants"]:
        stages = {row["stage"]: row for row in variant["stages"]}
        assert list(stages) == ["finetune", "prune", "finetune_second_task", "retrain", "inference"]
        for name in ("finetune", "prune", "retrain"):
            assert stages[name]["epochs"] == 2 and stages[name]["epoch_seconds"] > 0
            assert 0 < stages[name]["setup_seconds"] < stages[name]["wall_seconds"]
        assert stages["retrain"]["eval_seconds"] > 0
        assert variant["finetune_epoch_with_eval_seconds"] > stages["finetune"]["epoch_seconds"]
        assert variant["prune_stage_20_epochs_seconds"] > 20 * min(stages["prune"]["epoch_list"])
        assert variant["images_per_second"] > 0 and variant["projected_protocol_minutes"] > 0


def test_epoch_timings_read_train_log_fields(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("t stage=prune task=a epoch=1/2 loss=0.1 seconds=0.5000 setup_seconds=2.0000\n"
                   "t stage=prune task=a epoch=2/2 loss=0.1 seconds=0.3000\n"
                   't stage=prune task=a exit=0 reason="pruned at 0.1"\n')
    assert bench.epoch_timings(log) == ([0.5, 0.3], 2.0)


def test_a_variant_names_its_speed_flags():
    assert bench.parse_variant("fast=--bf16 --channels_last") == ("fast", ["--bf16", "--channels_last"])
    assert bench.parse_variant("default=") == ("default", [])
