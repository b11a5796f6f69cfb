"""synthetic_cifar: CIFAR-shaped tasks made from a seed (5 classes, 500 train and 100 test images
each), so speed can be measured anywhere without downloaded data. Every class is a fixed random
pattern plus noise, which makes the tasks learnable."""

from __future__ import annotations

from pathlib import Path

import torch

from unforget.utils.data.tasks import TaskData, channel_stats

CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS = 5, 500, 100
NOISE = 64.0


def load_task(data_root: Path, task_name: str) -> TaskData:
    generator = torch.Generator().manual_seed(int(task_name.rsplit("_", 1)[1]))
    patterns = torch.randint(0, 256, (CLASSES, 3, 32, 32), generator=generator).float()

    def split(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(CLASSES).repeat_interleave(per_class)
        noise = torch.randn(len(labels), 3, 32, 32, generator=generator) * NOISE
        return (0.5 * patterns[labels] + 64 + noise).clamp(0, 255).to(torch.uint8), labels

    train_images, train_labels = split(TRAIN_PER_CLASS)
    test_images, test_labels = split(TEST_PER_CLASS)
    mean, std = channel_stats(train_images)
    return TaskData(task_name, tuple(f"class_{c}" for c in range(CLASSES)), train_images, train_labels,
                    test_images, test_labels, mean, std)
