"""``keytrack bench-tokenize``: tokenized pose pairs per second (and, with ``--model``, the default
transformer's forward and training step on them)."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import Tensor

from keytrack.cli import at_least_one
from keytrack.pairs import sample_pairs
from keytrack.poses import PoseTable
from keytrack.skeleton import NUM_JOINTS
from keytrack.tables import Column, markdown_table
from keytrack.tokenize import TokenConfig, tokenize_table

__all__ = ["random_table", "add_arguments", "run"]

# ---------------------------------------------------------------------------------------------


def random_table(
    videos: int = 8,
    frames: int = 60,
    people: int = 6,
    width: float = 960.0,
    height: float = 540.0,
    seed: int = 0,
) -> PoseTable:
    """A :class:`PoseTable` of people drifting through ``videos`` scenes (for benchmarks).

    Each person is a jittered standing skeleton that random-walks across the frame; keypoints go
    missing at random (15 %) and a person is absent from a frame at random (10 %).
    """
    rng = np.random.default_rng(seed)
    # A standing person ~200 px tall, joints in JOINTS order (offsets from the hip centre).
    template = np.array(
        [
            [0, -150],
            [0, -125],
            [0, -180],
            [-30, -115],
            [30, -115],
            [-40, -70],
            [40, -70],
            [-45, -25],
            [45, -25],
            [-15, 0],
            [15, 0],
            [-15, 50],
            [15, 50],
            [-15, 100],
            [15, 100],
        ],
        dtype=np.float64,
    )
    v, f, p = videos, frames, people
    start = rng.uniform([0.1 * width, 0.3 * height], [0.9 * width, 0.7 * height], size=(v, 1, p, 2))
    walk = np.cumsum(rng.normal(0.0, 4.0, size=(v, f, p, 2)), axis=1)
    scale = rng.uniform(0.5, 1.3, size=(v, 1, p, 1, 1))
    xy = (start + walk)[..., None, :] + scale * template + rng.normal(0.0, 3.0, size=(v, f, p, NUM_JOINTS, 2))
    c = (rng.random((v, f, p, NUM_JOINTS)) > 0.15).astype(np.float64)
    kp = np.concatenate([xy, c[..., None]], axis=-1) * c[..., None]
    present = rng.random((v, f, p)) > 0.10
    vid, frm, pid = np.broadcast_arrays(
        np.arange(v)[:, None, None], np.arange(f)[None, :, None], np.arange(p)[None, None, :]
    )
    keep = present.reshape(-1)
    kp = kp.reshape(-1, NUM_JOINTS, 3)[keep]
    boxes = np.full((len(kp), 4), np.nan)
    return PoseTable(
        kp,
        pid.reshape(-1)[keep].astype(np.int64),
        boxes,
        vid.reshape(-1)[keep].astype(np.int64),
        frm.reshape(-1)[keep].astype(np.int64),
        np.tile([width, height], (len(kp), 1)),
    )


def _median_seconds(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="PoseTrack18-layout folder to read (keytrack.io.read_dataset); default: random drifting poses",
    )
    parser.add_argument("--split", default=None, help="with --data: the split to read (e.g. train)")
    parser.add_argument("--videos", type=int, default=8, help="random poses: number of videos")
    parser.add_argument("--frames", type=int, default=60, help="random poses: frames per video")
    parser.add_argument("--people", type=int, default=6, help="random poses: people per video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=at_least_one, default=4, help="δ, frames looked back (paper: 4)")
    parser.add_argument(
        "--nearest", type=int, default=None, help="keep the n nearest poses per earlier frame"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--device", default="cpu", help="torch device for tokenizing and the model")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)"
    )
    parser.add_argument(
        "--model",
        action="store_true",
        help="also time the default TransformerMatchingNetwork (forward+backward, forward)",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 512], help="model batch sizes")
    parser.add_argument("--steps", type=int, default=10, help="model steps per timed repeat")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if args.data:
        from keytrack.io import read_dataset  # lazy: only this path needs the readers

        dataset = read_dataset(args.data, split=args.split)
        table = dataset.table()
        source = f"{args.data}{f' [{args.split}]' if args.split else ''} ({dataset.report()})"
    else:
        table = random_table(args.videos, args.frames, args.people, seed=args.seed)
        source = f"random drifting poses ({args.videos} videos x {args.frames} frames x {args.people} people)"
    config = TokenConfig(delta=args.delta)

    pairs = sample_pairs(table, delta=args.delta, nearest=args.nearest)
    if len(pairs) == 0:
        from keytrack.errors import InputError

        raise InputError(f"{source}: no pose pairs to time (poses in frames within --delta of each other)")
    t_pairs = _median_seconds(
        lambda: sample_pairs(table, delta=args.delta, nearest=args.nearest), args.repeats
    )
    t_tok = _median_seconds(lambda: tokenize_table(table, pairs, config, device=device), args.repeats, sync)

    rows = [
        (f"sample_pairs (δ={args.delta}, nearest={args.nearest})", len(pairs), len(pairs) / t_pairs),
        ("tokenize_table (one batch of all pairs)", len(pairs), len(pairs) / t_tok),
    ]
    if args.model:
        rows += _bench_model(tokenize_table(table, pairs, config, device=device), config, args, device, sync)

    print(f"source: {source}; {len(table)} poses; {len(pairs)} pairs ({pairs.num_matching} matching)")
    print(f"device: {device}; torch threads: {torch.get_num_threads()}; median of {args.repeats} repeats\n")
    columns = [Column("stage"), Column("n", "pairs per call", fmt=","), Column("rate", "pairs/s", fmt=",.0f")]
    print(markdown_table([dict(zip(("stage", "n", "rate"), r)) for r in rows], columns))
    return 0


def _bench_model(
    tokens: dict[str, Tensor], config: TokenConfig, args: argparse.Namespace, device: torch.device, sync
) -> list[tuple[str, int, float]]:
    """Forward+backward and forward-only pairs/s of the default matching network."""
    from keytrack.models.registry import transformer_config
    from keytrack.models.transformer import TransformerMatchingNetwork

    torch.manual_seed(args.seed)
    model = TransformerMatchingNetwork(transformer_config(config)).to(device)
    m = len(tokens["labels"])
    rows = []
    for b in args.batch_sizes:
        idx = torch.arange(b, device=device) % m
        batch = {k: v[idx] for k, v in tokens.items()}
        labels = batch.pop("labels")

        def train_steps():
            for _ in range(args.steps):
                loss = torch.nn.functional.cross_entropy(model(batch), labels)
                loss.backward()
                model.zero_grad(set_to_none=True)

        def infer_steps():
            with torch.inference_mode():
                for _ in range(args.steps):
                    model(batch)

        model.train()
        train_steps()  # warm-up
        t_train = _median_seconds(train_steps, args.repeats, sync) / args.steps
        model.eval()
        infer_steps()
        t_infer = _median_seconds(infer_steps, args.repeats, sync) / args.steps
        rows += [
            (f"model forward+backward, batch {b}", b, b / t_train),
            (f"model forward (eval), batch {b}", b, b / t_infer),
        ]
    return rows
