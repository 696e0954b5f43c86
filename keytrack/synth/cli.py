"""``keytrack synth``: write synthetic scenes as a PoseTrack18-layout dataset.

``keytrack synth --out DIR --videos N --seed S`` writes ``DIR/annotations/train/synth_*.json``
(one PoseTrack18 file per video, through :func:`keytrack.io.write_posetrack18`), so that
``data.root=DIR`` reads it like any PoseTrack18 download. ``--val-videos M`` adds a disjoint
``DIR/annotations/val/`` (video indices ``N .. N+M-1`` of the same seed). Every
:class:`~keytrack.synth.SynthConfig` knob can be set with ``--set KNOB=VALUE`` (JSON values).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from keytrack.errors import InputError
from keytrack.synth.cache import DEFAULT_NUM_VIDEOS
from keytrack.synth.config import SynthConfig
from keytrack.synth.scene import generate_dataset


def _int_range(text: str) -> tuple[int, int]:
    """``"5"`` -> ``(5, 5)``, ``"2-9"`` -> ``(2, 9)``."""
    try:
        lo, _, hi = text.partition("-")
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or A-B, got {text!r}") from None


def _weights(text: str, key=str) -> dict:
    """``"walk=0.3,stand=0.7"`` -> ``{"walk": 0.3, "stand": 0.7}``; a bare key weighs 1."""
    out = {}
    try:
        for item in filter(None, text.split(",")):
            k, _, w = item.partition("=")
            out[key(k.strip())] = float(w) if w else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY[=WEIGHT],..., got {text!r}") from None
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def _knob(text: str) -> tuple[str, object]:
    name, eq, value = text.partition("=")
    fields = {f.name for f in dataclasses.fields(SynthConfig)}
    if not eq or name not in fields:
        raise argparse.ArgumentTypeError(
            f"expected KNOB=VALUE with KNOB one of {sorted(fields)}, got {text!r}"
        )
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return name, parsed


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    """The :class:`SynthConfig` the command-line options describe (defaults elsewhere)."""
    changes: dict[str, object] = {}
    for name, value in args.set or []:
        if name in ("frame_strides", "motion_mix"):
            if not isinstance(value, dict):
                raise InputError(f"--set {name}: expected a JSON object, got {value!r}")
            value = {int(k) if name == "frame_strides" else k: float(v) for k, v in value.items()}
        changes[name] = _tuples(value)
    if args.frames is not None:
        changes["frames_per_video"] = args.frames
    if args.people is not None:
        changes["people_per_video"] = args.people
    if args.strides is not None:
        changes["frame_strides"] = args.strides
    if args.motions is not None:
        changes["motion_mix"] = args.motions
    if args.size:
        changes["frame_sizes"] = tuple(args.size)
    try:
        return dataclasses.replace(SynthConfig(), **changes)
    except (ValueError, TypeError) as err:
        raise InputError(f"{err}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="dataset root; files go to OUT/annotations/<split>/"
    )
    parser.add_argument("--videos", type=int, default=DEFAULT_NUM_VIDEOS, help="videos in --split")
    parser.add_argument("--seed", type=int, default=0, help="seed (video i is seeded by (seed, i))")
    parser.add_argument("--split", default="train", help="split name of the --videos videos")
    parser.add_argument(
        "--val-videos",
        type=int,
        default=0,
        help="also write this many further videos (indices after --videos) as --val-split",
    )
    parser.add_argument("--val-split", default="val", help="split name of the --val-videos videos")
    parser.add_argument(
        "--frames", type=_int_range, default=None, metavar="F|A-B", help="annotated frames per video"
    )
    parser.add_argument(
        "--people", type=_int_range, default=None, metavar="N|A-B", help="people placed per video"
    )
    parser.add_argument(
        "--strides",
        type=lambda s: _weights(s, int),
        default=None,
        metavar="S[=W],...",
        help="frame strides and their weights, e.g. 1=0.5,4=0.5",
    )
    parser.add_argument(
        "--motions",
        type=_weights,
        default=None,
        metavar="M[=W],...",
        help="motion mix, e.g. walk=0.5,dance=0.5 (walk run turn jump dance stand)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        action="append",
        default=None,
        metavar="WxH",
        help="frame size choice (repeat for several)",
    )
    parser.add_argument(
        "--set",
        type=_knob,
        action="append",
        default=None,
        metavar="KNOB=VALUE",
        help="any SynthConfig knob, JSON value (e.g. --set jitter=0.01 --set 'scale_range=[0.2,0.9]')",
    )


def run(args: argparse.Namespace) -> int:
    from keytrack.io import write_posetrack18

    config = config_from_args(args)
    if args.videos < 0 or args.val_videos < 0:
        raise InputError("--videos and --val-videos must be >= 0")
    start = time.perf_counter()
    parts = []
    for split, count, first in ((args.split, args.videos, 0), (args.val_split, args.val_videos, args.videos)):
        if count == 0:
            continue
        dataset = generate_dataset(count, args.seed, config, first_index=first)
        folder = args.out / "annotations" / split
        write_posetrack18(dataset, folder)
        tracks = sum(len({int(t) for f in v.frames for t in f.track_ids}) for v in dataset.videos)
        parts.append(
            f"{split}: {len(dataset.videos)} videos, {dataset.num_frames} frames, "
            f"{dataset.num_poses} poses, {tracks} tracks -> {folder}"
        )
    print(f"keytrack synth (seed {args.seed}, {time.perf_counter() - start:.1f} s): " + "; ".join(parts))
    return 0
