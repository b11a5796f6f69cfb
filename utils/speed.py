"""Which fast paths a CPG stage takes (design section 7), and their flags (torch-free).

The four exact paths are on by default and give bit-identical weights, decisions and
accuracies to the plain fp32 path (`--plain`, the reference semantics); each can be
turned off alone to measure what it is worth. The three opt-in paths change the
arithmetic and agree with the plain path within the tolerances the README states.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

EXACT_PATHS = {
    "resident_data": "uint8 task data kept and augmented on the device (off: a host copy, batches moved per step)",
    "device_metrics": "loss and accuracy summed on the device, read once an epoch (off: read after every step)",
    "cached_masks": "ownership multipliers built once per mask change (off: rebuilt in every forward)",
    "device_pruning": "pruning thresholds found on the device (off: on a host copy of the magnitudes)",
}
OPT_IN_PATHS = {
    "bf16": "bf16 autocast in training and evaluation (weights, optimizer and pruning stay fp32)",
    "channels_last": "channels-last memory layout for images and convolution weights",
    "cuda_graph": "capture each full training step in one CUDA graph and replay it (CUDA only)",
}


@dataclass(frozen=True)
class Speed:
    resident_data: bool = True
    device_metrics: bool = True
    cached_masks: bool = True
    device_pruning: bool = True
    bf16: bool = False
    channels_last: bool = False
    cuda_graph: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Speed:
        values = {name: getattr(args, name) for name in OPT_IN_PATHS}
        for name in EXACT_PATHS:
            values[name] = not (args.plain or getattr(args, f"no_{name}"))
        return cls(**values)

    def is_default(self) -> bool:
        return self == Speed()

    def describe(self) -> str:
        """The paths that are on, for train.log."""
        return ",".join(field.name for field in fields(self) if getattr(self, field.name)) or "plain"


DEFAULT_SPEED = Speed()


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("speed (CPG, PackNet and baseline stages)")
    group.add_argument("--plain", action="store_true",
                       help="the plain fp32 path: every exact fast path below off (for comparisons)")
    for name, text in EXACT_PATHS.items():
        group.add_argument(f"--no_{name}", action="store_true", help=f"turn this exact fast path off: {text}")
    for name, text in OPT_IN_PATHS.items():
        group.add_argument(f"--{name}", action="store_true", help=text)
