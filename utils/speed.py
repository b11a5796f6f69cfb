"""Which fast paths a CPG stage takes (docs/design.md#performance), and their flags (torch-free).

The four exact paths are on by default and give bit-identical weights, decisions and
accuracies to the plain fp32 path (`--plain`, the reference semantics); each can be
turned off alone to measure what it is worth. The three opt-in paths change the
arithmetic and agree with the plain path within the tolerances docs/performance.md states.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from unforget.utils.cli import UsageError
from unforget.utils.settings import Settings, flag

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
    def from_flags(cls, flags: SpeedFlags) -> Speed:
        values = {name: getattr(flags, name) for name in OPT_IN_PATHS}
        for name in EXACT_PATHS:
            values[name] = not (flags.plain or getattr(flags, f"no_{name}"))
        return cls(**values)

    def is_default(self) -> bool:
        return self == Speed()

    def describe(self) -> str:
        """The paths that are on, for train.log."""
        return ",".join(field.name for field in fields(self) if getattr(self, field.name)) or "plain"


DEFAULT_SPEED = Speed()


@dataclass(frozen=True)
class SpeedFlags(Settings):
    """speed (the CPG family's stages)"""

    plain: bool = flag(False, "the plain fp32 path: every exact fast path below off (for comparisons)")
    no_resident_data: bool = flag(False, f"turn this exact fast path off: {EXACT_PATHS['resident_data']}")
    no_device_metrics: bool = flag(False, f"turn this exact fast path off: {EXACT_PATHS['device_metrics']}")
    no_cached_masks: bool = flag(False, f"turn this exact fast path off: {EXACT_PATHS['cached_masks']}")
    no_device_pruning: bool = flag(False, f"turn this exact fast path off: {EXACT_PATHS['device_pruning']}")
    bf16: bool = flag(False, OPT_IN_PATHS["bf16"])
    channels_last: bool = flag(False, OPT_IN_PATHS["channels_last"])
    cuda_graph: bool = flag(False, OPT_IN_PATHS["cuda_graph"])

    @property
    def speed(self) -> Speed:
        return Speed.from_flags(self)

    def validate(self) -> None:
        super().validate()
        speed = self.speed
        if speed.cuda_graph and not all(getattr(speed, name) for name in EXACT_PATHS):
            raise UsageError("--cuda_graph replays device-resident, device-summed steps with cached masks; "
                             "it cannot be combined with --plain or --no_* flags")
