"""Flags of the Expand-and-Cluster method (torch-free, so `main_normal.py --help` stays fast)."""

from __future__ import annotations

import argparse


def add_flags(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("--ec_sizes", default="20,8,2",
        help="gaussian_teacher benchmark: layer sizes of the synthetic teacher, inputs first, outputs last")
    add("--ec_activation", default="relu", choices=("relu", "tanh"), help="synthetic teacher's activation")
    add("--ec_samples", type=int, default=2000, help="gaussian_teacher: training inputs (plus a quarter for test)")
    add("--ec_students", type=int, default=10, help="N, the number of students trained at once")
    add("--ec_expansion", type=float, default=4.0, help="student width / teacher width, every hidden layer")
    add("--ec_gamma", type=float, default=0.5, help="keep clusters of at least int(gamma*N) neurons")
    add("--ec_beta", type=float, default=6.0,
        help="alignment filter: drop clusters whose median cosine distance exceeds 1-cos(pi/beta)")
    add("--ec_finetune_lr", type=float, default=1e-3, help="Adam learning rate of the final fine-tune")
    add("--ec_finetune_epochs", type=int, default=3000, help="most epochs of the final fine-tune")
    add("--ec_patience", type=int, default=100, help="epochs without progress before the learning rate decays")
    add("--ec_report", default=None,
        help="retrain: also write the recovery report here (JSON; its table beside it as .txt), a path drivers know")
    add("--ec_min_lr", type=float, default=1e-6, help="training stops early once the learning rate falls below")
