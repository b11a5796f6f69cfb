"""The real parameter ratio of a width multiplier: shared weights at that width over those at width 1.0.

A width multiplier w scales every scaled dimension by sqrt(w), so a layer whose input side does not
scale (the first layer's pixels) grows by sqrt(w) only: LeNet at w = 1.5 has 1.25x the weights.

usage: python -m tools.capacity --arch ARCH --width W   (prints the ratio, e.g. 1.2462)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as `python tools/capacity.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser, end_quietly_on_closed_pipe


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--width", required=True, type=float)
    args = parser.parse_args(argv)
    if not math.isfinite(args.width) or args.width < 1.0:
        parser.error(f"--width must be a finite number of at least 1.0, got {args.width}")
    from unforget.models import ARCHITECTURES

    if args.arch not in ARCHITECTURES:
        parser.error(f"unknown architecture {args.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    network = ARCHITECTURES[args.arch](width=1.0, mode="plain")
    print(f"{network.shared_weight_count(args.width) / network.shared_weight_count(1.0):.4f}")
    return 0


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main())
