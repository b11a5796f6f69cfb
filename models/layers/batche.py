"""BatchEnsemble mode (Wen et al. 2020; SupSup's BatchE baseline): one shared body weight W and per task a
rank-one factor, W_t = W * (s_t r_t^T), with s_t over the output units and r_t over the inputs.

`batche`: W trains with the first task (as the reference's `train_weight_tasks=1`), then is frozen.
`batche_randw`: W is fixed signed-constant random weights.
Each task's r and s start at random signs (+-1) and only that task trains them.
"""

from __future__ import annotations

import torch
from torch import nn

from unforget.models.layers.base import Geometry, LayerMode, TaskSpec, register
from unforget.models.layers.fixed_body import FixedBodyWeights, fixed_body_norm
from unforget.models.layers.per_task import head_per_task


def _random_signs(size: int, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, (size,)).mul_(2).sub_(1).to(device=device, dtype=torch.float32)


class BatchEWeights(FixedBodyWeights):
    """A fixed body weight modulated per task by the outer product of `s[t-1]` [out] and `r[t-1]` [in]."""

    def __init__(self, geometry: Geometry, width: float, bias: bool, random: bool = False):
        super().__init__(geometry, width, bias, random)
        self.r = nn.ParameterList()
        self.s = nn.ParameterList()

    def add_task(self, spec: TaskSpec) -> None:
        out_features, in_features = self.weight.shape[:2]
        self.s.append(nn.Parameter(_random_signs(out_features, self.weight.device)))
        self.r.append(nn.Parameter(_random_signs(in_features, self.weight.device)))

    def restore_task(self, spec: TaskSpec) -> None:
        """Room for a stored task's vectors (the checkpoint fills them in; nothing is drawn)."""
        out_features, in_features = self.weight.shape[:2]
        self.s.append(nn.Parameter(self.weight.new_empty(out_features)))
        self.r.append(nn.Parameter(self.weight.new_empty(in_features)))

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        return [self.r[task - 1], self.s[task - 1], *self.body_parameters(task)]

    def forward(self) -> tuple[torch.Tensor, None]:
        trailing = (1,) * (self.weight.dim() - 2)
        s, r = self.s[self.active_task - 1], self.r[self.active_task - 1]
        return self.weight * s.view(-1, 1, *trailing) * r.view(1, -1, *trailing), None


register(LayerMode("batche", BatchEWeights, fixed_body_norm, head_per_task, bias=False))
register(LayerMode("batche_randw", lambda geometry, width, bias: BatchEWeights(geometry, width, bias, True),
                   fixed_body_norm, head_per_task, bias=False))
