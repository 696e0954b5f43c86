"""``keytrack render``: synthetic scenes as videos or stills, to look at them.

``keytrack render --out DIR --videos N --seed S`` writes ``DIR/synth_<i>.mp4`` (H.264 through
imageio-ffmpeg, at the annotated frame rate ``fps / stride``) for videos ``--first .. --first+N-1``
of the seed, drawn by :mod:`keytrack.synth.render`; ``--format gif`` writes animated GIFs (PIL),
``--format png`` one still per video (frame ``--frame``, default the middle one). ``--skeletons``
draws the annotated poses on top, coloured by track id. ``--scale`` renders smaller frames;
``--set KNOB=VALUE`` changes any :class:`~keytrack.synth.SynthConfig` knob as for ``keytrack synth``.
Every file is written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from keytrack.atomic import atomic_path
from keytrack.errors import InputError
from keytrack.synth.cli import _knob, _tuples
from keytrack.synth.config import SynthConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder the files are written to")
    parser.add_argument("--videos", type=int, default=1, help="number of videos to render")
    parser.add_argument("--first", type=int, default=0, help="index of the first video")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes")
    parser.add_argument(
        "--format",
        choices=("mp4", "gif", "png"),
        default="mp4",
        help="mp4 or gif: the whole video; png: one still (--frame)",
    )
    parser.add_argument("--frame", type=int, default=None, help="frame of the png still (default: middle)")
    parser.add_argument("--scale", type=float, default=1.0, help="frame size relative to the video's")
    parser.add_argument("--skeletons", action="store_true", help="draw the annotated poses on top")
    parser.add_argument(
        "--set",
        type=_knob,
        action="append",
        default=None,
        metavar="KNOB=VALUE",
        help="any SynthConfig knob, JSON value (as for keytrack synth)",
    )


def _config(args: argparse.Namespace) -> SynthConfig:
    changes = {}
    for name, value in args.set or []:
        if name in ("frame_strides", "motion_mix") and isinstance(value, dict):
            value = {int(k) if name == "frame_strides" else k: float(v) for k, v in value.items()}
        changes[name] = _tuples(value)
    try:
        return dataclasses.replace(SynthConfig(), **changes)
    except (ValueError, TypeError) as err:
        raise InputError(f"{err}") from None


def _even(image: np.ndarray) -> np.ndarray:
    """Pad to even width and height (H.264 needs them) by repeating the last row/column."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write ``frames`` (``[H, W, 3]`` uint8) to ``path`` (.mp4 or .gif), atomically."""
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=max(20, round(1000 / fps)),
                loop=0,
            )
        else:
            import imageio.v2 as imageio

            named = tmp.with_name(tmp.name + path.suffix)  # ffmpeg picks the container by name
            try:
                with imageio.get_writer(
                    named, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, quality=7
                ) as writer:
                    for f in frames:
                        writer.append_data(_even(f))
                os.replace(named, tmp)
            finally:
                named.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from keytrack.synth.render import draw_skeletons, render_scene

    if args.videos < 0 or args.first < 0:
        raise InputError("--videos and --first must be >= 0")
    if not args.scale > 0:
        raise InputError(f"--scale must be > 0, got {args.scale}")
    config = _config(args)
    start = time.perf_counter()
    rendered = 0
    for index in range(args.first, args.first + args.videos):
        video, renderer = render_scene(index, args.seed, config, args.scale)
        if args.format == "png":
            f = renderer.num_frames // 2 if args.frame is None else args.frame
            if not 0 <= f < renderer.num_frames:
                raise InputError(f"--frame {f} out of range 0..{renderer.num_frames - 1}")
            chosen = [f]
        else:
            chosen = list(range(renderer.num_frames))
        frames = []
        for f in chosen:
            image = renderer.render(f)
            frames.append(draw_skeletons(image, video.frames[f], args.scale) if args.skeletons else image)
        rendered += len(frames)
        path = args.out / f"{video.name}.{args.format}"
        if args.format == "png":
            with atomic_path(path) as tmp:
                Image.fromarray(frames[0]).save(tmp, format="PNG", optimize=True)
        else:
            write_video(path, frames, config.fps / renderer.geometry.stride)
        print(
            f"{path}: {len(frames)} frames, {renderer.size[0]}x{renderer.size[1]}, "
            f"{renderer.geometry.num_people} people"
        )
    seconds = time.perf_counter() - start
    print(f"rendered {rendered} frames of {args.videos} videos in {seconds:.1f} s")
    return 0
