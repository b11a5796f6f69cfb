"""How close a rebuilt network is to its teacher, layer by layer (known teachers only).

Per teacher neuron (sorted by the norm of its outgoing weights, largest first): the smallest
dissimilarity 1 - |cos| between its incoming [w; b] and any rebuilt neuron's (|cos| because
both ReLU and tanh neurons are identifiable only up to sign), and for the last hidden layer the
same for its outgoing weights. First-layer neurons are compared on the inputs the probe data
identifies (see `InputMask`). Deeper layers are compared in the teacher's coordinates: each
rebuilt neuron below stands for its best-matching teacher neuron times a scale, so its
incoming weights are mapped through that correspondence first. Excess neurons are rebuilt
neurons that are no teacher neuron's best match.
"""

from __future__ import annotations

import numpy as np

from unforget.utils.methods.extract.inputs import InputMask

RECOVERED = 1e-3  # by default a teacher neuron counts as recovered below this dissimilarity


def dissimilarity(teacher: np.ndarray, rebuilt: np.ndarray) -> np.ndarray:
    """1 - |cos| between each teacher row and each rebuilt row: [T, K]."""
    a = teacher / np.maximum(np.linalg.norm(teacher, axis=1, keepdims=True), 1e-30)
    b = rebuilt / np.maximum(np.linalg.norm(rebuilt, axis=1, keepdims=True), 1e-30)
    return np.clip(1.0 - np.abs(a @ b.T), 0.0, None)


def layer_recovery(teacher: list[tuple[np.ndarray, np.ndarray]], rebuilt: list[tuple[np.ndarray, np.ndarray]],
                   mask: InputMask | None = None, threshold: float = RECOVERED) -> list[dict]:
    """One entry per hidden layer; both lists hold (weight [out, in], bias [out]) per layer, output included.
    First-layer neurons are compared in `mask`'s folded form (the inputs the probes identify)."""
    mask = mask or InputMask.everything(teacher[0][0].shape[1])
    mapping = None
    results = []
    for index in range(len(teacher) - 1):
        r_weight, r_bias = rebuilt[index]
        if mapping is None:
            t_rows, r_rows = mask.fold(*teacher[index]), mask.fold(r_weight, r_bias)
        else:
            t_rows = np.hstack([teacher[index][0], teacher[index][1][:, None]])
            r_rows = np.hstack([r_weight @ mapping, r_bias[:, None]])
        distance = dissimilarity(t_rows, r_rows)
        order = np.argsort(-np.linalg.norm(teacher[index + 1][0], axis=0))
        match = distance.argmin(0)
        scale = np.einsum("kd,kd->k", r_rows, t_rows[match]) / np.einsum("kd,kd->k", t_rows[match], t_rows[match])
        mapping = np.zeros((len(r_rows), len(t_rows)))
        mapping[np.arange(len(r_rows)), match] = scale
        entry = {"layer": index + 1, "teacher_size": len(t_rows), "rebuilt_size": len(r_rows),
                 "incoming": distance.min(1)[order].tolist(),
                 "excess": int(len(r_rows) - len(set(distance.argmin(1).tolist())))}
        if index == len(teacher) - 2:
            mapped_out = rebuilt[index + 1][0] @ mapping
            out = dissimilarity(teacher[index + 1][0].T, mapped_out.T).diagonal()
            entry["outgoing"] = out[order].tolist()
        entry["recovered"] = int((np.array(entry["incoming"]) < threshold).sum())
        entry["max_incoming"] = float(max(entry["incoming"]))
        results.append(entry)
    return results
