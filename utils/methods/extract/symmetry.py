"""Canonical form of hidden neurons under their activation's symmetry, before clustering.

ReLU is positively homogeneous (relu(a z) = a relu(z), a > 0): each [w; b] is scaled to unit
length and the norm moves onto its outgoing weights. Its sign flip relu(-z) = relu(z) - z only
adds a linear term, and tanh is odd: for both, each vector is multiplied by the sign of its
pivot coordinate; tanh's outgoing weights flip with it, ReLU's do not (the linear skip of the
reconstructed network absorbs the difference). The pivot is the coordinate where the pooled
neurons are largest (median magnitude), not the first as in the published code: a first input
that is rarely active leaves weights near zero there, and then noise puts copies of one neuron on
both sides, into two clusters pointing in opposite directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYMMETRIES: dict[str, str] = {"relu": "even_linear_positive_scaling", "tanh": "odd"}


@dataclass
class Canonical:
    """Canonical vectors [M, fan_in + 1], the signs and norms taken out, and outgoing weights [M, next]
    carried over (scaled by the norms, flipped for odd activations)."""

    vectors: np.ndarray
    signs: np.ndarray
    norms: np.ndarray
    outgoing: np.ndarray


def canonicalise(vectors: np.ndarray, outgoing: np.ndarray, activation: str) -> Canonical:
    """Canonical form of neurons with incoming [w; b] rows `vectors` and outgoing rows `outgoing`."""
    if activation not in SYMMETRIES:
        raise ValueError(f"no symmetry known for activation {activation!r}; known: {', '.join(SYMMETRIES)}")
    vectors = np.asarray(vectors, dtype=np.float64)
    outgoing = np.asarray(outgoing, dtype=np.float64)
    norms = np.ones(len(vectors))
    if SYMMETRIES[activation] == "even_linear_positive_scaling":
        norms = np.linalg.norm(vectors, axis=1)
        norms = np.where(norms > 0, norms, 1.0)
        vectors = vectors / norms[:, None]
        outgoing = outgoing * norms[:, None]
    pivot = int(np.argmax(np.median(np.abs(vectors), axis=0)))
    signs = np.where(vectors[:, pivot] < 0, -1.0, 1.0)
    vectors = vectors * signs[:, None]
    if SYMMETRIES[activation] == "odd":
        outgoing = outgoing * signs[:, None]
    return Canonical(vectors, signs, norms, outgoing)
