"""``keytrack diagnose``: how a matcher ranks each pose's candidates, as the tracker decides (§3.1).

    keytrack diagnose --checkpoint runs/improved/<run>/checkpoints/best.ckpt --data DIR [--split S]
                      [--stride K] [--out DIR]
    keytrack diagnose --checkpoint keytrack-synthetic --data DIR   # a shipped matcher (keytrack.weights)
    keytrack diagnose --scorer oks --data DIR                 # the same numbers for OKS

Every pose of a frame ``t`` (with a ground-truth track id) is a query; its candidates are the
annotated poses of frames ``t-1 .. t-δ`` of the same video (the tracker's window, every pose, with
the ground-truth identities, so the numbers measure the matcher alone, not error propagation).
With ``--motion velocity`` (the default for a checkpoint trained with ``pairs.motion: velocity``)
each candidate is first moved by its ground-truth track's velocity times ``Δ``, as the tracker
with that motion shows it (:func:`keytrack.pairs.moved_previous`). All pairs are scored in
batches. Writes to ``--out`` (default
``runs/diagnose/<input>-<split>-<scorer>-stride<K>/``):

* ``ranking.md`` / ``ranking.csv``: :mod:`keytrack.ranking`'s rank-1 accuracy, share of poses
  whose best wrong candidate beats the true one, share of new people correctly sent to a new track,
  share correctly accepted, over the whole window (a track scores its best appearance, A.4) and per
  ``Δ`` (only the candidates of frame ``t - Δ``);
* ``scores.png``: histograms of the true candidate's score and of the best wrong candidate's score;
* ``worst_frames.md`` / ``.csv``: the frames with the most poses whose best wrong candidate beats
  the true one, with the largest margin.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from keytrack.atomic import write_text
from keytrack.cli import at_least_one, renamed_option
from keytrack.errors import InputError
from keytrack.outputs import default_out
from keytrack.pairs import MOTIONS
from keytrack.tables import Column, csv_table, markdown_table
from keytrack.weights import checkpoint_argument
from keytrack.weights import names as shipped_names

log = logging.getLogger("keytrack.diagnose")

__all__ = ["score_pairs", "diagnose", "add_arguments", "run"]


def score_pairs(scorer, table, pairs, previous: np.ndarray | None = None) -> np.ndarray:
    """``[M]`` match scores of ``pairs`` (rows of ``table``) under a tracker scorer: a matching
    network (its :meth:`~keytrack.tracking.PoseEntailmentScorer.pair_scores`, one forward per chunk) or
    OKS (the earlier pose's box as the scale). ``previous``: the earlier poses to score instead of
    the table's (``[M, 15, 3]``, e.g. moved by their track's motion)."""
    kp = np.asarray(table.keypoints, dtype=np.float64)
    b = kp[pairs.previous] if previous is None else np.asarray(previous, dtype=np.float64)
    if getattr(scorer, "name", "") == "oks":
        from keytrack.tracking.scorers import _filled_boxes, oks_pairs

        boxes = _filled_boxes(np.asarray(table.boxes)[pairs.previous], kp[pairs.previous])  # the scale only
        return oks_pairs(kp[pairs.current], b, boxes)
    size = np.asarray(table.frame_size, dtype=np.float32)
    return scorer.pair_scores(kp[pairs.current], b, size[pairs.current], pairs.delta)


def diagnose(
    dataset,
    scorer,
    *,
    delta: int = 4,
    match_threshold: float = 0.5,
    worst: int = 10,
    motion: str | None = None,
) -> dict:
    """The numbers of the module docstring for ``dataset`` (ground truth with track ids);
    ``motion`` None: the scorer's (what its network was trained for), else ``"none"``."""
    import torch

    from keytrack.pairs import moved_previous, resolve_motion, sample_pairs
    from keytrack.ranking import per_query, ranking_stats

    motion = resolve_motion(motion, scorer, where="diagnose")

    table = dataset.table()
    pairs = sample_pairs(table, delta=delta)
    if len(pairs) == 0:
        raise InputError("the data has no pose pairs (poses with track ids in frames within --delta)")
    scores = score_pairs(
        scorer, table, pairs, moved_previous(table, pairs, delta) if motion == "velocity" else None
    )
    s, lab, q = (torch.as_tensor(x) for x in (scores, pairs.label, pairs.current))
    rows = [{"candidates": f"window Δ = 1..{delta}", **ranking_stats(s, lab, q, match_threshold)}]
    for d in range(1, delta + 1):
        sel = torch.as_tensor(pairs.delta == d)
        if sel.any():
            rows.append(
                {"candidates": f"Δ = {d}", **ranking_stats(s[sel], lab[sel], q[sel], match_threshold)}
            )
    ids, best_true, best_wrong, has_true = (x.numpy() for x in per_query(s, lab, q))
    # Worst frames: queries whose best wrong candidate beats the true one.
    bad = has_true & (best_wrong > best_true)
    video, frame = np.asarray(table.video)[ids], np.asarray(table.frame)[ids]
    frames: dict[tuple[int, int], dict] = {}
    for v, f, margin in zip(video[bad], frame[bad], (best_wrong - best_true)[bad]):
        entry = frames.setdefault((int(v), int(f)), {"wrong": 0, "margin": 0.0})
        entry["wrong"] += 1
        entry["margin"] = max(entry["margin"], float(margin))
    keys, counts = np.unique(
        np.stack([np.asarray(table.video), np.asarray(table.frame)], 1), axis=0, return_counts=True
    )
    poses = {(int(v), int(f)): int(n) for (v, f), n in zip(keys, counts)}
    ranked = sorted(frames.items(), key=lambda kv: (-kv[1]["wrong"], -kv[1]["margin"], kv[0]))[:worst]
    worst_rows = [
        {
            "video": dataset.videos[v].name,
            "frame": f,
            "poses": poses[v, f],
            "wrong_first": e["wrong"],
            "worst_margin": e["margin"],
        }
        for (v, f), e in ranked
    ]
    return {
        "rows": rows,
        "worst": worst_rows,
        "true": best_true[has_true],
        "wrong": best_wrong[has_true],
        "pairs": len(pairs),
    }


RANKING_COLUMNS = [
    Column("candidates", "Candidates", align="left"),
    Column("rank1", "Rank-1", fmt=".4f"),
    Column("wrong_beats_true", "Best wrong > true", fmt=".4f"),
    Column("new_track", "New track ok", fmt=".4f"),
    Column("accepted", "Accepted", fmt=".4f"),
    Column("continuing", "Continuing poses", fmt="d"),
    Column("new", "New poses", fmt="d"),
]
WORST_COLUMNS = [
    Column("video", "Video", align="left"),
    Column("frame", "Frame", fmt="d"),
    Column("poses", "Poses", fmt="d"),
    Column("wrong_first", "Poses with a wrong candidate first", fmt="d"),
    Column("worst_margin", "Largest margin", fmt=".4f"),
]


def write_report(result: dict, out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, heading, rows, columns in (
        ("ranking", title, result["rows"], RANKING_COLUMNS),
        ("worst_frames", f"Worst frames: {title}", result["worst"], WORST_COLUMNS),
    ):
        files += [
            write_text(out / f"{name}.md", f"# {heading}\n\n{markdown_table(rows, columns)}\n"),
            write_text(out / f"{name}.csv", csv_table(rows, [c.key for c in columns])),
        ]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(result["true"], bins=bins, alpha=0.6, label="true continuation")
    wrong = result["wrong"][np.isfinite(result["wrong"])]
    ax.hist(wrong, bins=bins, alpha=0.6, label="best wrong candidate")
    ax.set_yscale("log")
    ax.set_xlabel("match score")
    ax.set_ylabel("poses")
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    tmp = out / ".scores.png.tmp"
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(out / "scores.png")
    return [*files, out / "scores.png"]


def _network_label(checkpoint: str) -> str:
    """A network's name in a report's folder: a shipped matcher's own, else its run's folder name."""
    from keytrack.weights import WEIGHTS_DIR

    path = Path(checkpoint)
    return path.stem if path.resolve().parent == WEIGHTS_DIR else path.parent.parent.name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=checkpoint_argument,
        default=None,
        help="training checkpoint of the matching network, or a shipped matcher's name "
        f"({', '.join(shipped_names())})",
    )
    parser.add_argument(
        "--scorer",
        choices=("pose_entailment", "oks"),
        default="pose_entailment",
        help="pose_entailment (needs --checkpoint) or oks",
    )
    renamed_option(
        parser,
        "--data",
        "--input",
        dest="input",
        metavar="DATA",
        required=True,
        help="PoseTrack18-layout folder or file with track ids",
    )
    parser.add_argument("--split", default=None, help="annotation split under --data (e.g. test)")
    renamed_option(
        parser,
        "--stride",
        "--frame-stride",
        dest="frame_stride",
        metavar="K",
        type=at_least_one,
        default=1,
        help="keep every k-th frame (as keytrack track)",
    )
    parser.add_argument("--delta", type=at_least_one, default=4, help="δ: frames looked back (paper: 4)")
    parser.add_argument(
        "--match-threshold",
        type=float,
        default=0.5,
        help="the tracker's threshold for the new-track and accepted shares",
    )
    parser.add_argument(
        "--keypoints",
        default="gt_boxes_gt_keypoints",
        metavar="SETTING",
        help="score the input as it is (default) or the perturbation protocol's predictions "
        "of it (gt_boxes_predicted_keypoints, predicted_boxes_predicted_keypoints; seed "
        "--perturb-seed), each predicted pose keeping the identity it was drawn from",
    )
    parser.add_argument("--perturb-seed", type=int, default=0, help="seed of the perturbation protocol")
    parser.add_argument(
        "--motion",
        choices=MOTIONS,
        default=None,
        help="move each candidate by its track's velocity first (default: what the checkpoint "
        "was trained for, none for OKS)",
    )
    parser.add_argument("--worst", type=int, default=10, help="worst frames listed")
    renamed_option(
        parser,
        "--out",
        "--output",
        dest="output",
        metavar="OUT",
        default=None,
        help="folder for the report (default runs/diagnose/...)",
    )
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from keytrack.io import read_dataset
    from keytrack.tracking import subsample
    from keytrack.tracking.scorers import OKSScorer, PoseEntailmentScorer

    if args.scorer == "pose_entailment":
        if not args.checkpoint:
            raise InputError("--checkpoint is required with --scorer pose_entailment")
        scorer = PoseEntailmentScorer.from_checkpoint(args.checkpoint, device=args.device)
        if args.delta > scorer.max_delta:
            raise InputError(f"--delta {args.delta} exceeds the matcher's δ = {scorer.max_delta}")
    else:
        scorer = OKSScorer()
    dataset = read_dataset(args.input, split=args.split)
    if args.keypoints != "gt_boxes_gt_keypoints":
        from keytrack.perturb import SETTINGS, perturb, with_oracle_track_ids

        if args.keypoints not in SETTINGS:
            raise InputError(
                f"--keypoints: unknown setting {args.keypoints!r} (known: {', '.join(SETTINGS)})"
            )
        dataset = with_oracle_track_ids(
            perturb(dataset, args.keypoints, int(args.perturb_seed), keep_track_ids=True)
        )
    dataset = subsample(dataset, int(args.frame_stride))
    result = diagnose(
        dataset,
        scorer,
        delta=args.delta,
        match_threshold=args.match_threshold,
        worst=args.worst,
        motion=args.motion,
    )
    name = Path(args.input).resolve().name + (f"-{args.split}" if args.split else "")
    who = _network_label(args.checkpoint) if args.scorer == "pose_entailment" else "oks"
    if args.keypoints != "gt_boxes_gt_keypoints":
        name += f"-{args.keypoints}-seed{args.perturb_seed}"
    out = (
        Path(args.output)
        if args.output
        else default_out("diagnose", f"{name}-{who}-stride{args.frame_stride}")
    )
    title = (
        f"{args.scorer} ({args.checkpoint or 'no learning'}) on {name}, stride {args.frame_stride}, "
        f"δ = {args.delta}, {result['pairs']:,} pairs"
    )
    files = write_report(result, out, title)
    print((out / "ranking.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
