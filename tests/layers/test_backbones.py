"""ImageNet backbones from the shared layers: torchvision's state dicts load by name and give
torchvision's logits; with --pretrained the ImageNet task is task 1 and its outputs never change
as tasks are learned on top; bad pretrained files stop with exit 64 and one line.

Logits are compared with a tolerance of 1e-5 of their scale. In practice they are bit-identical
(the same F.conv2d/F.linear calls on the same tensors, and in CPG mode W*1 + W*0 is W exactly), but
a backend may pick another convolution algorithm for an equal call, so exactness is not the contract.
"""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torchvision

import main_normal
from tests.helpers import run_main
from unforget.models import build_network
from unforget.models.layers.base import SharedLinear, slice_to
from unforget.models.layers.cpg import cpg_layers
from unforget.models.pretrained import PretrainedError, add_pretrained_task, load_pretrained, torchvision_names
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, save_checkpoint
from unforget.utils.methods.cpg.settings import CPGSettings

INPUTS = (2, 3, 64, 64)


def torchvision_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """torchvision's model with random weights and random batch-norm statistics and affines (so a
    mapping mistake in any of them shows), in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.0, 0.1)
    return model.eval()


def logits(network: torch.nn.Module, inputs: torch.Tensor, task: int | None = None) -> torch.Tensor:
    network.eval()
    if task is not None:
        network.set_task(task)
    with torch.no_grad():
        return network(inputs)


def assert_same_logits(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=0.0, atol=1e-5 * theirs.abs().max().item())


@pytest.fixture(scope="module")
def resnet18() -> torch.nn.Module:
    return torchvision_model("resnet18")


@pytest.fixture(scope="module")
def resnet18_file(resnet18, tmp_path_factory):
    """torchvision's resnet18 state dict as torch.save writes it (the format of resnet18-f37072fd.pth)."""
    path = tmp_path_factory.mktemp("pretrained") / "resnet18.pth"
    torch.save(resnet18.state_dict(), path)
    return path


@pytest.mark.parametrize("arch, mode", [
    ("resnet18", "plain"), ("resnet18", "cpg"), ("resnet34", "plain"), ("resnet50", "plain"),
    pytest.param("vgg16_bn", "plain", marks=pytest.mark.slow)])
def test_a_torchvision_file_gives_torchvision_logits(arch, mode, tmp_path):
    model = torchvision_model(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(model.state_dict(), path)
    network = build_network(arch, 1.0, mode=mode)
    network.add_task("imagenet", 1000)
    load_pretrained(network, path)
    inputs = torch.randn(INPUTS)
    assert_same_logits(logits(network, inputs), logits(model, inputs))


@pytest.mark.parametrize("arch, examples", [
    ("resnet18", {"conv1.weight": "features.conv1.weights.weight", "bn1.running_mean": "features.bn1.per_task.0."
                  "running_mean", "layer2.0.downsample.1.weight": "features.layer2.0.downsample.1.per_task.0.weight",
                  "fc.bias": "heads.per_task.0.weights.bias"}),
    ("resnet50", {"layer1.0.conv3.weight": "features.layer1.0.conv3.weights.weight",
                  "layer1.0.downsample.0.weight": "features.layer1.0.downsample.0.weights.weight",
                  "fc.weight": "heads.per_task.0.weights.weight"})])
def test_every_torchvision_name_has_one_of_ours(arch, examples):
    network = build_network(arch, 1.0, mode="cpg")
    network.add_task("imagenet", 1000)
    names = torchvision_names(network)
    assert set(names) == set(getattr(torchvision.models, arch)(weights=None).state_dict())
    assert set(names.values()) <= set(network.state_dict())
    assert len(set(names.values())) == len(names)
    assert {name: names[name] for name in examples} == examples


def test_vgg_names_keep_torchvision_indices():
    network = build_network("vgg16_bn", 1.0, mode="cpg")
    network.add_task("imagenet", 1000)
    names = torchvision_names(network)
    assert names["features.0.bias"] == "features.0.weights.biases.0"
    assert names["features.41.running_var"] == "features.41.per_task.0.running_var"
    assert names["classifier.3.weight"] == "classifier.3.weights.weight"
    assert names["classifier.6.weight"] == "heads.per_task.0.weights.weight"
    assert network.classifier[0].weights.weight.shape == (4096, 512 * 7 * 7)


def test_a_flattened_map_grows_by_whole_channels():
    layer = SharedLinear(8, 4, width=2.0, positions=9, mode="plain")
    assert tuple(layer.weights.weight.shape) == (5, 11 * 9)  # int(4 sqrt 2), int(8 sqrt 2) channels of 9 positions


def test_another_class_count_keeps_its_own_head(resnet18):
    network = build_network("resnet18", 1.0, mode="plain")
    network.add_task("birds", 7)
    head = network.heads.per_task[0].weights.weight.clone()
    load_pretrained(network, resnet18.state_dict())
    assert torch.equal(network.heads.per_task[0].weights.weight, head)
    assert torch.equal(network.features.bn1.per_task[0].running_var, resnet18.bn1.running_var)
    assert torch.equal(network.features.conv1.weights.weight, resnet18.conv1.weight)


def test_wider_cpg_network_gives_the_rest_to_the_next_task_and_never_changes_imagenet(resnet18, tmp_path):
    """Width 1.5: task 1 (ImageNet) owns the width-1.0 corner, the first real task owns the rest and
    picks from the corner; training it leaves the ImageNet logits torchvision's, also after a reload."""
    network = build_network("resnet18", 1.5, mode="cpg")
    add_pretrained_task(network, resnet18.state_dict())
    task = network.add_task("synthetic_1", 5)
    for layer in cpg_layers(network):
        corner = slice_to(layer.owner, layer.task_shapes[0])
        assert bool((corner == 1).all()) and int((layer.owner == 2).sum()) == layer.owner.numel() - corner.numel()
    inputs = torch.randn(INPUTS)
    expected = logits(resnet18, inputs)
    untrained = logits(network, inputs, task)
    network.train()
    masks = [mask for layer in cpg_layers(network) if (mask := layer.start_picking()) is not None]
    optimizer = torch.optim.SGD([*network.task_parameters(task), *masks], lr=0.1, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(inputs), torch.tensor([0, 3])).backward()
        optimizer.step()
    assert_same_logits(logits(network, inputs, task=1), expected)
    assert not torch.allclose(logits(network, inputs, task), untrained)
    save_checkpoint(tmp_path, network, "resnet18", CPGSettings(mode="finetune", dataset="synthetic_1"), {})
    reloaded = network_from_checkpoint(load_checkpoint(tmp_path))
    assert [spec.name for spec in reloaded.tasks] == ["imagenet", "synthetic_1"]
    for task_id in (1, 2):
        assert torch.equal(logits(reloaded, inputs, task_id), logits(network, inputs, task_id))


@pytest.mark.parametrize("network_args, error", [
    (("custom_vgg_cifar100", "cpg"), "VGG16CIFAR has no torchvision counterpart"),
    (("resnet18", "supsup"), "layer mode supsup cannot start from pretrained weights")])
def test_networks_that_cannot_take_torchvision_weights_say_so(resnet18, network_args, error):
    arch, mode = network_args
    network = build_network(arch, 1.0, mode=mode, **({"input_shape": (3, 32, 32)} if mode == "supsup" else {}))
    with pytest.raises(PretrainedError, match=error):
        add_pretrained_task(network, resnet18.state_dict())


def finetune_args(tmp_path, method: str, pretrained, *extra: str) -> list[str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return ["--method", method, "--mode", "finetune", "--benchmark", "synthetic_cifar", "--dataset", "synthetic_1",
            "--arch", "resnet18", "--epochs", "1", "--device", "cpu", "--data_root", str(data), "--save_folder",
            str(tmp_path / "synthetic_1"), "--pretrained", str(pretrained), *extra]


@pytest.mark.slow
def test_cpg_with_pretrained_keeps_imagenet_and_reloads(resnet18, resnet18_file, tmp_path):
    record = tmp_path / "record.txt"
    code = main_normal.main(finetune_args(tmp_path, "cpg", resnet18_file, "--jsonfile", str(record)))
    assert code == 5  # width 1.0: ImageNet owns every weight, the task only picks (no free weights to prune)
    folder = tmp_path / "synthetic_1"
    network = network_from_checkpoint(load_checkpoint(folder))
    assert [(spec.name, spec.num_classes, spec.width) for spec in network.tasks] == [
        ("imagenet", 1000, 1.0), ("synthetic_1", 5, 1.0)]
    inputs = torch.randn(INPUTS)
    assert_same_logits(logits(network, inputs, task=1), logits(resnet18, inputs))
    meta = json.loads((folder / "meta.json").read_text())
    result = run_main("--method", "cpg", "--mode", "inference", "--benchmark", "synthetic_cifar", "--dataset",
                      "synthetic_1", "--device", "cpu", "--data_root", str(tmp_path / "data"), "--load_folder",
                      str(folder))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["accuracy"] == meta["test_accuracy"]  # inference measures


@pytest.mark.slow
def test_piggyback_with_pretrained_learns_only_a_mask(resnet18, resnet18_file, tmp_path):
    assert main_normal.main(finetune_args(tmp_path, "piggyback", resnet18_file)) == 0
    payload = load_checkpoint(tmp_path / "synthetic_1")
    state = resnet18.state_dict()
    for theirs, ours in torchvision_names(network_from_checkpoint(payload)).items():  # body and ImageNet's own
        assert torch.equal(payload["model"][ours], state[theirs]), theirs
    assert any(".pick_2" in name for name in payload["model"])
    network = network_from_checkpoint(payload)
    inputs = torch.randn(INPUTS)
    assert_same_logits(logits(network, inputs, task=1), logits(resnet18, inputs))


def _missing(tmp_path, resnet18):
    return tmp_path / "nowhere" / "resnet18-f37072fd.pth"


def _text(tmp_path, resnet18):
    (tmp_path / "notes.pth").write_text("not weights\n")
    return tmp_path / "notes.pth"


def _truncated(tmp_path, resnet18):
    torch.save(resnet18.state_dict(), tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.pth"


def _other_arch(tmp_path, resnet18):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    return tmp_path / "resnet34.pth"


def _not_a_state_dict(tmp_path, resnet18):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    return tmp_path / "list.pth"


@pytest.mark.parametrize("make, message", [
    (_missing, "put torchvision's resnet18-f37072fd.pth (from torchvision.models.ResNet18_Weights.IMAGENET1K_V1) at"),
    (_text, "is not a file torch.save wrote"),
    (_truncated, "is not a file torch.save wrote"),
    (_other_arch, "does not fit resnet18 (torchvision's resnet18-f37072fd.pth): unexpected layer1.2."),
    (_not_a_state_dict, "holds a list, not a state dict")])
def test_a_bad_pretrained_file_exits_64_with_one_line(resnet18, tmp_path, capsys, make, message):
    path = make(tmp_path, resnet18)
    code = main_normal.main(finetune_args(tmp_path, "cpg", path, "--jsonfile", str(tmp_path / "record.txt")))
    err = capsys.readouterr().err
    assert code == 64
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "synthetic_1").exists()


def test_a_plain_pickle_is_one_line_without_torchs_warning(resnet18, tmp_path):
    """torch warns about a pickle protocol it does not expect before its weights-only load fails."""
    path = tmp_path / "resnet18-f37072fd.pth"
    with path.open("wb") as file:
        pickle.dump({name: value.numpy() for name, value in resnet18.state_dict().items()}, file, protocol=4)
    result = run_main(*finetune_args(tmp_path, "cpg", path, "--jsonfile", str(tmp_path / "record.txt")))
    assert result.returncode == 64
    assert result.stderr.splitlines() == [f"main_normal.py: error: --pretrained: {path} is not a file torch.save "
                                          f"wrote (truncated, or another format); get torchvision's "
                                          f"resnet18-f37072fd.pth again"], result.stderr


def test_a_missing_file_says_where_to_put_it_from_the_shell(tmp_path):
    result = run_main(*finetune_args(tmp_path, "piggyback", tmp_path / "resnet18-f37072fd.pth"))
    assert result.returncode == 64
    assert result.stderr.splitlines() == [
        f"main_normal.py: error: --pretrained: no pretrained weights at {tmp_path / 'resnet18-f37072fd.pth'}: put "
        f"torchvision's resnet18-f37072fd.pth (from torchvision.models.ResNet18_Weights.IMAGENET1K_V1) at "
        f"{tmp_path / 'resnet18-f37072fd.pth'}"]


@pytest.mark.parametrize("extra, message", [
    (("--load_folder", "somewhere"), "--pretrained starts a fresh network"),
    (("--arch", "custom_vgg_cifar100"), "VGG16CIFAR has no torchvision counterpart")])
def test_pretrained_where_it_cannot_go_is_a_usage_error(resnet18_file, tmp_path, capsys, extra, message):
    try:
        code = main_normal.main(finetune_args(tmp_path, "cpg", resnet18_file, "--jsonfile", str(tmp_path / "r.txt"),
                                              *extra))
    except SystemExit as stop:  # flags that contradict each other stop in the parser
        code = stop.code
    err = capsys.readouterr().err
    assert code == 64
    assert len(err.splitlines()) == 1 and message in err, err
