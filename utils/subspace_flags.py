"""Flags of the subspace method (torch-free, so `main_normal.py --help` stays fast)."""

from __future__ import annotations

import argparse

KINDS = ("line", "curve", "simplex")


def add_flags(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("--subspace", default="line", choices=KINDS, help="shape of the subspace of networks to learn")
    add("--subspace_vertices", type=int, default=3, help="vertices of a simplex (2-9)")
    add("--subspace_layerwise", action="store_true", help="draw a separate point per layer each step")
    add("--subspace_beta", type=float, default=1.0,
        help="weight of the squared-cosine regulariser between a random vertex pair (0 turns it off)")
    add("--subspace_label_noise", type=float, default=0.0,
        help="fraction of training labels replaced at random")
    add("--subspace_warmup_epochs", type=int, default=0,
        help="epochs of linear learning-rate warm-up before the cosine decay")
