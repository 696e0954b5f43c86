"""``keytrack export-weights CHECKPOINT OUT``: a training checkpoint stripped to its weights and config.

    keytrack export-weights runs/improved/synthetic-seed0 keytrack/weights/keytrack-synthetic.pt

CHECKPOINT is a training checkpoint (``*.ckpt``) or a run folder (its best checkpoint). OUT holds the
weights (fp32) and the run's config, without the optimizer and loop state
(:func:`keytrack.weights.export_weights`); it loads wherever a checkpoint does and scores exactly as
CHECKPOINT. ``make weights`` makes the shipped ``keytrack-synthetic`` this way.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a training checkpoint (*.ckpt) or run folder"
    )
    parser.add_argument(
        "out", metavar="OUT", help="the stripped file to write (e.g. keytrack/weights/NAME.pt)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from keytrack.outputs import sha256_file
    from keytrack.weights import export_weights

    out = export_weights(args.checkpoint, args.out)
    size = Path(out).stat().st_size
    print(f"{args.checkpoint} -> {out}: {size / 1e6:.2f} MB, sha256 {sha256_file(out)}")
    return 0
