"""The students layer mode: N students in one tensor behave as N separate networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unforget.models.layers.base import Geometry, SharedLinear
from unforget.models.layers.students import StudentsWeights
from unforget.models.students import StudentsMLP
from unforget.utils.methods.extract.training import TrainSettings, student_losses, train_students


def separate(model: StudentsMLP, student: int, x: torch.Tensor) -> torch.Tensor:
    """Student `student` computed on its own with F.linear."""
    for index in range(len(model.layers)):
        weight, bias = model.weights(index)
        x = F.linear(x, weight[student], bias[student])
        if index < len(model.layers) - 1:
            x = model.act(x)
    return x


def test_batched_students_equal_separate_networks_in_outputs_and_gradients():
    torch.manual_seed(0)
    model = StudentsMLP([5, 7, 6, 2], students=4, activation="tanh")
    x, y = torch.randn(9, 5), torch.randn(9, 2)
    batched = model(x)
    assert batched.shape == (4, 9, 2)
    student_losses(batched, y).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    for student in range(4):
        own = separate(model, student, x)
        torch.testing.assert_close(batched[student], own, rtol=1e-5, atol=1e-6)
        model.zero_grad()
        (own - y).pow(2).mean().backward()
        for grad, param in zip(grads, model.parameters(), strict=True):
            torch.testing.assert_close(grad[student], param.grad[student], rtol=1e-5, atol=1e-6)


def test_students_mode_is_registered_and_takes_per_student_inputs():
    layer = SharedLinear(3, 2, mode="students")
    assert isinstance(layer.weights, StudentsWeights)
    x = torch.randn(layer.weights.weight.shape[0], 4, 3)
    out = layer(x)
    torch.testing.assert_close(out[1], F.linear(x[1], layer.weights.weight[1], layer.weights.bias[1]))
    std = StudentsWeights(Geometry(400, 50), 1.0, True, students=3).weight.std().item()
    assert abs(std - (2 / 400) ** 0.5) < 0.1 * (2 / 400) ** 0.5  # fan-in of one student, not of the stack


def test_training_lowers_every_students_loss_independently():
    torch.manual_seed(0)
    teacher = StudentsMLP([3, 2, 1], students=1)
    x = torch.randn(64, 3)
    y = teacher(x)[0].detach()
    model = StudentsMLP([3, 8, 1], students=3)
    before = student_losses(model(x), y).detach()
    after = train_students(model, x, y, TrainSettings(lr=1e-2, epochs=200, batch_size=64))
    assert torch.all(after < 0.2 * before)


def test_the_probe_order_follows_the_seed():
    """Mini-batch order came from a fixed seed 0 whatever --seed said."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randn(64, 2)

    def trained(seed: int) -> torch.Tensor:
        torch.manual_seed(1)
        model = StudentsMLP([5, 4, 2], 2)
        train_students(model, x, y, TrainSettings(1e-2, 3, 16, seed=seed))
        return model.layers[0].weights.weight.detach().clone()

    assert torch.equal(trained(3), trained(3))
    assert not torch.equal(trained(3), trained(4))
