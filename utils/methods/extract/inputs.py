"""Which inputs the probe data can identify first-layer weights on.

An input that is constant over the probe data (a border pixel that is always background) adds
w_i * c_i to a first-layer neuron, exactly like its bias: only b + sum_i w_i c_i is determined by
the teacher's behaviour, while w_i itself keeps whatever value training left it. An input that
leaves its usual value on a handful of probes only is barely better: a few examples cannot pin a
weight per neuron. So first-layer neurons are compared (clustered, and matched to the teacher) in
a folded form, [w on the kept inputs; b + sum over dropped inputs of w_i c_i], with c_i the
dropped input's usual (most common) value. This plays the role of the published code's Boruta
pixel mask, computed here from the probe data. The networks themselves keep every input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class InputMask:
    """`kept` [d] is True for the inputs neurons are compared on; `values` [d] holds each input's
    most common value over the probes (what a dropped input nearly always is)."""

    kept: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, x: torch.Tensor, min_share: float = 0.0) -> InputMask:
        """The mask of probe inputs `x` [B, d]: an input is kept when more than `min_share` of the probes
        differ from its most common value (so 0 drops exactly the constant inputs)."""
        x = x.detach().cpu().double()
        usual = x.mode(0).values
        share = (x != usual).double().mean(0)
        return cls((share > min_share).numpy(), usual.numpy())

    @classmethod
    def everything(cls, inputs: int) -> InputMask:
        return cls(np.ones(inputs, dtype=bool), np.zeros(inputs))

    @property
    def dropped(self) -> list[int]:
        return np.flatnonzero(~self.kept).tolist()

    def fold(self, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Rows [w on kept inputs; b + w on dropped inputs . their usual values] of neurons with weight
        [..., K, d] and bias [..., K]: their identifiable part, shape [..., K, kept + 1]."""
        dropped = ~self.kept
        folded_bias = bias + weight[..., dropped] @ self.values[dropped]
        return np.concatenate([weight[..., self.kept], folded_bias[..., None]], -1)

    def unfold(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weight [K, d] (zero on dropped inputs) and bias [K] that compute the folded `rows` wherever the
        dropped inputs take their usual values."""
        weight = np.zeros((len(rows), len(self.kept)))
        weight[:, self.kept] = rows[:, :-1]
        return weight, rows[:, -1].copy()
