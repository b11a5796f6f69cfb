"""What WSN's masks cost: their packed bits (1 per weight per task), the share of weights some task uses, and the
paper's compressed size of the per-weight N-bit code (which of the N tasks use the weight): its entropy bound and
its Huffman-coded length, both computed here from the symbol counts (numpy and heapq, no codec library)."""

from __future__ import annotations

import heapq
import math

import numpy as np
from torch import nn

from unforget.models.layers.wsn import wsn_layers


def task_bits(network: nn.Module) -> np.ndarray:
    """bool [T, P]: which of the P masked weights (every wsn layer's, in module order) task t's mask keeps."""
    rows = [np.stack([layer.mask(task).cpu().numpy().ravel() for task in range(1, layer.num_tasks + 1)])
            for layer in wsn_layers(network)]
    return np.concatenate(rows, axis=1)


def huffman_bits(counts: list[int]) -> int:
    """Bits of a Huffman code of symbols occurring `counts` times (the code table left out): every merge of the
    two rarest subtrees adds one bit to each of their symbols. A lone symbol still takes 1 bit each."""
    if len(counts) == 1:
        return counts[0]
    heap = list(counts)
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def entropy_bits(counts: list[int]) -> float:
    """n H(p): the fewest bits any code of these symbols averages (Shannon's bound)."""
    n = sum(counts)
    return -sum(count * math.log2(count / n) for count in counts)


def mask_cost(network: nn.Module) -> dict:
    """The masks' storage: packed bytes (what the checkpoint holds) and the N-bit code's compressed sizes."""
    bits = task_bits(network)
    tasks, weights = bits.shape
    packed = sum(layer.masks.numel() for layer in wsn_layers(network))
    symbols = np.packbits(bits, axis=0).T  # one row per weight: its N task bits
    counts = [int(count) for count in np.unique(symbols, axis=0, return_counts=True)[1]]
    return {"masked_weights": weights, "mask_bytes": packed,
            "mask_bits_per_weight_per_task": round(8 * packed / (weights * tasks), 4),
            "used_fraction": round(float(bits.any(0).mean()), 6),
            "task_density": [round(float(row.mean()), 6) for row in bits],
            "mask_entropy_bytes": math.ceil(entropy_bits(counts) / 8),
            "mask_huffman_bytes": math.ceil(huffman_bits(counts) / 8)}
