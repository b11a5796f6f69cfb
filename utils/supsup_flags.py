"""Flags of the SupSup method (torch-free: the entry point parses them before importing torch)."""

from __future__ import annotations

import argparse


def add_flags(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add("--supsup_masks", default="topk", choices=("topk", "threshold"),
        help="topk: keep a density of largest |scores|; threshold: keep scores >= 0 (the GNu reference)")
    add("--supsup_density", type=float, default=0.5, help="share of weights a top-k mask keeps")
    add("--supsup_er", type=float, default=0.0,
        help="ER budget factor s (1..32): density min(0.5, s (c_out+c_in)/(c_out c_in k k)); 0 uses --supsup_density")
    add("--supsup_output_size", type=int, default=None,
        help="units of the last layer: the task's classes plus superfluous neurons (default: the classes)")
    add("--supsup_real_neurons", type=int, default=10, help="outputs the G objective leaves out (the classes)")
    add("--supsup_optimizer", default="adam", choices=("adam", "rmsprop"), help="optimizer of the scores")
    add("--supsup_weight_decay", type=float, default=1e-4, help="L2 on the scores")
    add("--supsup_schedule", default="cosine", choices=("cosine", "constant"), help="learning rate per epoch")
    add("--supsup_adaptor", default="gt", choices=("gt", "oneshot", "binary"),
        help="inference: gt uses each task's own mask; oneshot/binary infer the task by superposing the masks")
    add("--supsup_objective", default="g", choices=("g", "h"),
        help="task inference objective: g (superfluous neurons' logsumexp) or h (output entropy)")
    add("--supsup_infer_batch", type=int, default=1, help="test images per task inference (1: each image alone)")
    add("--supsup_eval", default="all", choices=("all", "last"), help="inference evaluates every task or the newest")
    add("--supsup_task_folders", default=None,
        help="comma-separated single-task checkpoint folders (GG) merged into one network for inference")
    add("--supsup_results", default=None, help="CSV the inference rows are appended to")
    add("--supsup_summary", default=None, help="run summary JSON the inference writes")
