"""Settings of HAT (torch-free): the paper's defaults (s_max 400, c 0.75, SGD at 0.05 divided by 3 after 5
epochs without a better validation loss, stopped below 1e-4 or after 200 epochs, batches of 64)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import ValidationFlag
from unforget.utils.settings import StageSettings, flag

CHAINS = ("digits_convnet", "subspace_convnet", "subspace_convnet_rgb", "lenet_300_100", "fc_1024_1024",
          "custom_vgg_cifar100", "vgg16_bn_cifar100")
"""Architectures whose HAT layers form one chain, each reading the previous one's units: the gradient
conditioning pairs a weight's output unit with the input unit it reads (a residual network's shortcuts
break that pairing)."""


@dataclass(frozen=True)
class HATSettings(ValidationFlag, StageSettings):
    """hat (hard attention to the task)"""

    LAYER_MODE: ClassVar[str] = "hat"
    STAGES: ClassVar[tuple[str, ...]] = ("finetune",)
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",)}

    lr: float = flag(0.05, "SGD learning rate at the start of each task (the paper's 0.05)", at_least=0.0)
    batch_size: int = flag(64, "the paper's 64", at_least=1)
    epochs: int = flag(200, "most epochs per task (the paper's 200; the schedule usually stops earlier)",
                       at_least=1)
    hat_smax: float = flag(400.0, "s_max, the gate's largest scale: attention sigmoid(s e) is near binary at "
                           "s_max, which evaluation uses; training anneals s from 1/s_max to s_max over each "
                           "epoch's batches (the paper's 400)", at_least=0.0)
    hat_c: float = flag(0.75, "c, the strength of the attention-sparsity regulariser (the units a task attends "
                        "to that earlier tasks left free, per free unit; the paper's 0.75; 0 turns it off)",
                        at_least=0.0)
    hat_lr_factor: float = flag(3.0, "the learning rate is divided by this after --hat_lr_patience epochs "
                                "without a better validation loss (the paper's 3)", at_least=1.0)
    hat_lr_patience: int = flag(5, "epochs without a better validation loss before the rate falls", at_least=1)
    hat_lr_min: float = flag(1e-4, "a task's training stops when the rate falls below this (the paper's 1e-4)",
                             at_least=0.0)
    hat_clipgrad: float = flag(10000.0, "the gradient's largest norm (the reference's 10000)", at_least=0.0)
    hat_thres_cosh: float = flag(50.0, "the embedding gradient compensation clamps s e to +-this before cosh "
                                 "(the reference's 50: cosh overflows past about 89 in float32)", at_least=0.0,
                                 at_most=88.0)
    hat_thres_emb: float = flag(6.0, "embeddings are clamped to +-this after every step (the reference's 6: "
                                "sigmoid(400 * 6) is 1 to float32)", at_least=0.0)

    def validate(self) -> None:
        super().validate()
        for name in ("hat_smax", "hat_clipgrad", "hat_thres_cosh", "hat_thres_emb", "hat_lr_factor"):
            if getattr(self, name) <= (1.0 if name == "hat_lr_factor" else 0.0):
                bound = "above 1" if name == "hat_lr_factor" else "above 0"
                raise UsageError(f"--{name} must be {bound}, got {getattr(self, name)}")
        if self.arch not in CHAINS:
            raise UsageError(f"--method hat needs an architecture whose layers form one chain ({', '.join(CHAINS)}),"
                             f" got {self.arch}")
