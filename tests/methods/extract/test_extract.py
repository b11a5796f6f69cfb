"""Expand-and-Cluster pieces on hand-made arrays (symmetry, cut rule, clustering, collapse, recovery,
input mask), the fine-tune's recovery check, one small end-to-end recovery and bad teachers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers import run_driver, run_main
from unforget.utils.methods.extract.clustering import best_cut, big_cluster_counts, cluster_neurons, merge_duplicates
from unforget.utils.methods.extract.folders import settings_hash
from unforget.utils.methods.extract.inputs import InputMask
from unforget.utils.methods.extract.reconstruct import RebuiltLayer, assemble, collapse, fine_tune
from unforget.utils.methods.extract.recovery import layer_recovery
from unforget.utils.methods.extract.symmetry import canonicalise
from unforget.utils.methods.extract.teachers import gaussian_probes, synthetic_teacher
from unforget.utils.methods.extract.training import TrainSettings

RNG = np.random.default_rng(0)


def test_relu_scale_and_sign_are_canonical_and_keep_the_function():
    neuron = np.array([[0.5, -2.0, 1.0]])  # [w; b]
    copies = np.vstack([neuron, 3.0 * neuron, -0.2 * neuron])
    canonical = canonicalise(copies, np.array([[1.0], [1.0], [1.0]]), "relu")
    np.testing.assert_allclose(canonical.vectors, np.repeat(canonical.vectors[:1], 3, 0))
    assert canonical.vectors[0, 1] > 0 and np.isclose(np.linalg.norm(canonical.vectors[0]), 1.0)  # pivot: largest
    np.testing.assert_array_equal(canonical.signs, [-1.0, -1.0, 1.0])
    x = np.array([[0.3, -0.7, 1.0], [2.0, 1.0, 1.0]])  # inputs with the bias' 1 appended
    original = np.maximum(x @ copies[2], 0) * 1.0  # the copy whose sign was kept
    rescaled = np.maximum(x @ canonical.vectors[2], 0) * canonical.outgoing[2, 0]
    np.testing.assert_allclose(original, rescaled)
    np.testing.assert_allclose(canonical.outgoing[:, 0], np.array([1.0, 3.0, 0.2]) * np.linalg.norm(neuron))


def test_tanh_sign_is_canonical_and_flips_outgoing_weights():
    neuron = np.array([-0.5, 2.0, 0.3])
    canonical = canonicalise(np.vstack([neuron, -neuron]), np.array([[2.0, -1.0], [2.0, -1.0]]), "tanh")
    np.testing.assert_allclose(canonical.vectors[0], neuron)  # the pivot is the largest coordinate, 2.0
    np.testing.assert_allclose(canonical.vectors[1], neuron)
    np.testing.assert_allclose(canonical.outgoing, [[2.0, -1.0], [-2.0, 1.0]])
    np.testing.assert_allclose(canonical.norms, 1.0)
    x = np.array([0.4, -1.1, 1.0])
    assert np.isclose(np.tanh(x @ neuron) * 2.0, np.tanh(x @ canonical.vectors[0]) * canonical.outgoing[0, 0])


def hand_made_tree() -> np.ndarray:
    """Seven points: pairs {0,1} at 0.1, {2,3} at 0.2, {4,5} at 0.3, point 6 joins {4,5} at 0.35,
    {0..3} at 0.5, everything at 0.9. Clusters of >= 2: 1, 2, 3, 3, 2, 1."""
    return np.array([[0, 1, 0.1, 2], [2, 3, 0.2, 2], [4, 5, 0.3, 2], [6, 9, 0.35, 3], [7, 8, 0.5, 4],
                     [10, 11, 0.9, 7]], dtype=float)


def test_cut_is_the_last_height_of_the_first_run_reaching_the_most_big_clusters():
    tree = hand_made_tree()
    np.testing.assert_array_equal(big_cluster_counts(tree, 2), [1, 2, 3, 3, 2, 1])
    assert best_cut(tree, 2) == 0.35
    np.testing.assert_array_equal(big_cluster_counts(tree, 3), [0, 0, 0, 1, 2, 1])
    assert best_cut(tree, 3) == 0.5
    assert best_cut(tree, 2, max_height=0.32) == 0.3


def test_cut_rule_ignores_a_later_run_of_the_same_count():
    # {0,1}@0.1, {2,3}@0.2, {0,1,2,3}@0.3 (count 1), {4,5}@0.4 (count 2 again), all@0.8
    tree = np.array([[0, 1, 0.1, 2], [2, 3, 0.2, 2], [6, 7, 0.3, 4], [4, 5, 0.4, 2], [8, 9, 0.8, 6]])
    np.testing.assert_array_equal(big_cluster_counts(tree, 2), [1, 2, 1, 2, 1])
    assert best_cut(tree, 2) == 0.2


def pooled_students(students: int = 10, noise: float = 1e-3):
    """Each student holds 3 shared directions (random sign and scale) plus 3 random neurons, in 12
    dimensions, where a random neuron is very unlikely to fall within the alignment tolerance."""
    directions = RNG.normal(size=(3, 12))
    rows, student_of = [], []
    for student in range(students):
        for direction in directions:
            rows.append(direction * RNG.uniform(0.5, 2.0) * RNG.choice([-1, 1]) + RNG.normal(scale=noise, size=12))
        rows.extend(RNG.normal(size=(3, 12)))
        student_of += [student] * 6
    return directions, np.array(rows), np.array(student_of)


def test_a_neuron_split_by_the_cut_is_merged_back_and_distinct_neurons_are_not():
    directions = RNG.normal(size=(2, 12))
    halves = [directions[0] + RNG.normal(scale=1e-3, size=(5, 12)) for _ in range(2)]
    other = directions[1] + RNG.normal(scale=1e-3, size=(5, 12))
    vectors = np.vstack([*halves, other])
    clusters = merge_duplicates(vectors, [np.arange(5), np.arange(5, 10), np.arange(10, 15)], tolerance=0.01)
    assert sorted(len(members) for members in clusters) == [5, 10]
    assert sorted(np.concatenate(clusters).tolist()) == list(range(15))


def test_near_zero_first_coordinates_do_not_split_a_neuron():
    neuron = np.array([1e-4, -2.0, 1.5, 0.7])
    copies = neuron + RNG.normal(scale=1e-3, size=(20, 4))  # the first coordinate changes sign among copies
    canonical = canonicalise(copies, np.ones((20, 1)), "relu")
    assert np.all(canonical.vectors @ canonical.vectors[0] > 0.99)


def test_clustering_finds_the_neurons_most_students_share():
    directions, rows, student_of = pooled_students()
    canonical = canonicalise(rows, np.ones((len(rows), 1)), "relu")
    clusters = cluster_neurons(canonical.vectors, 10, 0.5, 6)
    assert len(clusters) == 3
    layer = collapse(clusters, canonical, student_of, np.arange(10.0), "relu")
    head = (np.ones((1, 3)), np.zeros(1))
    recovery = layer_recovery([(directions[:, :-1], directions[:, -1]), head],
                              [(layer.weight.numpy(), layer.bias.numpy()), head])
    assert recovery[0]["recovered"] == 3 and recovery[0]["excess"] == 0


def test_recovery_of_a_deeper_layer_is_measured_through_the_layer_below():
    w1, b1 = RNG.normal(size=(4, 3)), RNG.normal(size=4)
    w2, b2 = RNG.normal(size=(2, 4)), RNG.normal(size=2)
    w3, b3 = RNG.normal(size=(1, 2)), RNG.normal(size=1)
    order, scale = np.array([2, 0, 3, 1]), np.array([0.5, 2.0, 1.5, 3.0])
    r1, rb1 = w1[order] * scale[:, None], b1[order] * scale  # permuted, positively rescaled
    r2 = w2[:, order] / scale  # compensates the rescaling, so the function is unchanged
    recovery = layer_recovery([(w1, b1), (w2, b2), (w3, b3)], [(r1, rb1), (r2[::-1], b2[::-1]), (w3[:, ::-1], b3)])
    assert [entry["recovered"] for entry in recovery] == [4, 2]
    assert max(recovery[1]["outgoing"]) < 1e-12
    broken = layer_recovery([(w1, b1), (w2, b2), (w3, b3)], [(r1, rb1), (w2, b2), (w3, b3)])
    assert broken[1]["recovered"] < 2


def test_folder_hash_depends_on_every_setting_only():
    assert settings_hash("ec", {"a": 1, "b": 2}) == settings_hash("ec", {"b": 2, "a": 1})
    assert settings_hash("ec", {"a": 1}) != settings_hash("ec", {"a": 2})
    assert len(settings_hash("ec", {})) == len("ec_") + 10


@pytest.mark.parametrize("flags", [["--mode", "prune"], ["--mode", "finetune", "--ec_gamma", "0.1"]])
def test_bad_extract_flags_exit_64_with_one_line(tmp_path, flags):
    result = run_main("--method", "extract", "--benchmark", "gaussian_teacher", "--dataset", "gaussian",
                      "--data_root", str(tmp_path), "--save_folder", str(tmp_path), *flags)
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1 and "error" in result.stderr


@pytest.mark.slow
def test_synthetic_driver_trains_clusters_and_reports(tmp_path):
    result = run_driver("extract_synthetic.sh", str(tmp_path / "out"), SEEDS="2", EPOCHS="2000", SAMPLES="1000")
    assert result.returncode == 0, result.stderr[-2000:]
    reports = list((tmp_path / "out").glob("ec_*/clustering_*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report and "| seed |" in result.stdout
    assert (reports[0].parent / "recovery.png").read_bytes()[:4] == b"\x89PNG"


def test_input_mask_drops_exactly_the_constant_inputs_and_folds_them_into_the_bias():
    x = torch.tensor(RNG.normal(size=(50, 9)))
    constant = [0, 4, 7]
    x[:, constant] = torch.tensor([-0.8, 0.0, 2.5], dtype=torch.float64)
    x[3, 5] = x[4, 5] = 1.0  # a varying input may repeat values
    mask = InputMask.of(x)
    assert mask.dropped == constant
    weight, bias = RNG.normal(size=(4, 9)), RNG.normal(size=4)
    rows = mask.fold(weight, bias)
    assert rows.shape == (4, 9 - len(constant) + 1)
    unfolded_weight, unfolded_bias = mask.unfold(rows)
    np.testing.assert_array_equal(unfolded_weight[:, constant], 0.0)
    np.testing.assert_allclose(x.numpy() @ unfolded_weight.T + unfolded_bias, x.numpy() @ weight.T + bias)


def test_input_mask_share_drops_inputs_that_rarely_leave_their_usual_value():
    x = torch.tensor(RNG.normal(size=(100, 4)))
    x[:, 1] = 0.0
    x[:2, 1] = 1.0  # leaves 0 on 2% of the probes
    assert InputMask.of(x).dropped == []
    assert InputMask.of(x, min_share=0.05).dropped == [1]


def first_layer_count(teacher_weights: list, network) -> int:
    rebuilt = [tuple(t[0].detach().double().numpy() for t in network.weights(i)) for i in range(len(teacher_weights))]
    return layer_recovery(teacher_weights, rebuilt)[0]["recovered"]


def test_fine_tune_never_reduces_the_recovered_count():
    """A rebuilt layer missing one teacher neuron: a free fine-tune bends the recovered neurons to make up
    for it (the count falls), the checked fine-tune keeps them."""
    teacher = synthetic_teacher([5, 4, 1], "relu", 3)
    probes = gaussian_probes(teacher, 300, 3)
    w1, b1 = teacher.layers[0]
    truth = [(w.double().numpy(), b.double().numpy()) for w, b in teacher.layers]
    settings = TrainSettings(1e-2, 200, 1000)

    def rebuilt():
        return assemble([RebuiltLayer(w1[1:], b1[1:])], 1, "relu", probes.x_train, probes.y_train)

    before = first_layer_count(truth, rebuilt())
    assert before == 3
    free = rebuilt()
    fine_tune(free, probes.x_train, probes.y_train, settings)
    assert first_layer_count(truth, free) < before
    checked = rebuilt()
    tuned = fine_tune(checked, probes.x_train, probes.y_train, settings,
                      recovered=lambda net: first_layer_count(truth, net), check_every=20)
    assert first_layer_count(truth, checked) == tuned.recovered >= before


@pytest.mark.slow
def test_a_small_teacher_is_recovered_end_to_end(tmp_path):
    common = ["--method", "extract", "--benchmark", "gaussian_teacher", "--dataset", "gaussian", "--data_root",
              str(tmp_path), "--save_folder", str(tmp_path), "--ec_sizes", "6,3,1", "--ec_students", "6",
              "--ec_samples", "300", "--lr", "1e-2", "--epochs", "2000", "--batch_size", "1000", "--seed", "2",
              "--ec_finetune_epochs", "300", "--device", "cpu"]
    assert run_main(*common, "--mode", "finetune").returncode == 0
    result = run_main(*common, "--mode", "retrain", "--ec_report", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [layer["recovered"] for layer in report["after_tuning"]["layers"]] == [3]
    assert len(report["student_losses"][0]) == 6
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {run.name: run for run in tmp_path.rglob("tensorboard/*")}
    assert {"students_L1", "fine_tune"} <= set(runs)
    for name in ("students_L1", "fine_tune"):
        events = EventAccumulator(str(runs[name]))
        events.Reload()
        assert {"loss", "lr", "seconds"} <= set(events.Tags()["scalars"]), name
        assert events.Scalars("loss")[-1].value < events.Scalars("loss")[0].value or name == "fine_tune"


def test_a_teacher_that_is_not_fully_connected_exits_64_with_one_line(tmp_path, capsys):
    import main_normal

    (tmp_path / "data").mkdir()
    data = ["--benchmark", "digits10", "--dataset", "digits10", "--data_root", str(tmp_path / "data"),
            "--device", "cpu"]
    assert main_normal.main(["--method", "baseline", "--mode", "finetune", "--arch", "digits_convnet", *data,
                             "--epochs", "1", "--save_folder", str(tmp_path / "teacher")]) == 0
    capsys.readouterr()
    code = main_normal.main(["--method", "extract", "--mode", "finetune", *data, "--load_folder",
                             str(tmp_path / "teacher"), "--save_folder", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 64 and len(err.strip().splitlines()) == 1 and "not a fully connected" in err, err


@pytest.mark.parametrize("damage", ["truncated", "other students"])
def test_saved_students_that_cannot_be_reused_exit_65_with_one_line_naming_the_file(tmp_path, capsys, damage):
    import main_normal

    flags = ["--method", "extract", "--mode", "finetune", "--benchmark", "gaussian_teacher", "--dataset", "gaussian",
             "--data_root", str(tmp_path), "--save_folder", str(tmp_path), "--ec_sizes", "6,3,1", "--ec_students",
             "4", "--ec_samples", "50", "--epochs", "1", "--device", "cpu"]
    assert main_normal.main(flags) == 0
    (students,) = tmp_path.glob("ec_*/students.pth")
    if damage == "truncated":  # as a full disk may leave it
        students.write_bytes(students.read_bytes()[:100])
    else:
        torch.save({"weight": torch.zeros(1)}, students)
    capsys.readouterr()
    code = main_normal.main(flags)
    err = capsys.readouterr().err
    assert code == 65 and len(err.strip().splitlines()) == 1 and str(students) in err, err
    assert err.startswith("main_normal.py: error: cannot reuse the saved students: ")


@pytest.mark.slow
def test_extract_mnist_without_mnist_stops_naming_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_driver("extract_mnist.sh", str(tmp_path / "out"), DATA_ROOT=str(tmp_path / "empty"), SEEDS="1")
    assert result.returncode == 64
    assert "MNIST/raw" in result.stderr and "teacher_seed1" in result.stderr


def test_a_trained_teacher_is_probed_with_its_images_or_with_gaussian_inputs(tmp_path):
    (tmp_path / "data").mkdir()
    trained = run_main("--method", "baseline", "--mode", "finetune", "--arch", "digits_mlp_16", "--benchmark",
                       "digits10", "--dataset", "digits10", "--data_root", str(tmp_path / "data"), "--device", "cpu",
                       "--epochs", "1", "--save_folder", str(tmp_path / "teacher"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    from unforget.utils.methods.extract.teachers import checkpoint_teacher

    teacher, images = checkpoint_teacher(tmp_path / "teacher", "digits10", "digits10", tmp_path / "data")
    assert teacher.sizes == [64, 16, 10] and images.x_train.shape[1] == 64 and 0.0 <= teacher.accuracy <= 1.0
    assert InputMask.of(images.x_train).dropped  # some 8x8 border pixels are always blank
    network = teacher.network()
    torch.testing.assert_close(network(images.x_test)[0], images.y_test, rtol=1e-4, atol=1e-4)
    _, gaussian = checkpoint_teacher(tmp_path / "teacher" / "checkpoint.pth", "digits10", "digits10",
                                     tmp_path / "data", probe="gaussian", samples=50, seed=3)
    assert gaussian.x_train.shape == (50, 64) and not InputMask.of(gaussian.x_train).dropped
    torch.testing.assert_close(network(gaussian.x_train)[0], gaussian.y_train, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gaussian.x_test, images.x_test)
