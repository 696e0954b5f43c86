"""``keytrack data-stats``: the statistics that make pose tracking easy or hard, side by side.

KeyTrack matches poses from keypoints alone (§3.2), so how hard tracking is on a dataset is set by
how crowded its frames are, how far a pose moves between annotated frames compared with how far
apart different people stand, and how many joints are missing (§A.6 names crowds of people who
move alike and long occlusions as the failure cases). This module measures exactly those
quantities, for the synthetic default scenes (:mod:`keytrack.synth`) and for real
PoseTrack18-layout data, so the synthetic generator can be tuned toward the real data.

Definitions (all computed on ground-truth poses, vectorised over :class:`keytrack.poses.PoseTable`):

* **person size**: the diagonal ``sqrt(w² + h²)`` of the tight box around a pose's present
  keypoints (recomputed from the keypoints, so every source is measured the same way). The
  diagonal rather than ``sqrt(w·h)``: it stays meaningful for thin boxes (a frontal person with
  arms down, a profile view), where the box area collapses.
* **consecutive frames**: neighbouring *labelled* frames of a video (rank ``r`` and ``r + 1`` in
  the video's list of labelled frames): what a tracker sees between two annotations.
* **displacement**: for a track present in two consecutive frames, the mean over the joints
  present in both of the keypoint displacement, divided by the mean person size of the two poses.
* **nearest-neighbour distance**: distance between the centre (box centre) of a pose and the
  nearest other pose centre in the same frame, divided by the pose's size. Frames with one pose
  have none.
* **joint visibility**: the fraction of the 15 joints (:data:`keytrack.skeleton.JOINTS`) present;
  and the same over only the joints the set annotates at least once (some sets never label a
  joint, e.g. the Bonn set's nose).
* **track length**: the number of labelled frames in which a (video, track id) occurs.
* **entering / leaving**: a labelled frame (not the video's first) where some track is present
  that was absent from the previous labelled frame; a labelled frame (not the video's last) where
  some track is present that is absent from the next one. Reported as the fraction of such frames.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from keytrack.cli import at_least_one
from keytrack.poses import Dataset, keypoint_boxes

#: (key, label, format) of every statistic, in table order.
STATISTICS: tuple[tuple[str, str, str], ...] = (
    ("videos", "videos", ",.0f"),
    ("frames", "labelled frames", ",.0f"),
    ("poses", "poses", ",.0f"),
    ("tracks", "tracks", ",.0f"),
    ("people_mean", "people per frame, mean", ".2f"),
    ("people_p90", "people per frame, p90", ".1f"),
    ("people_max", "people per frame, max", ".0f"),
    ("size_rel_height", "person size / frame height, median", ".3f"),
    ("disp_median", "displacement / person size, median", ".3f"),
    ("disp_p90", "displacement / person size, p90", ".3f"),
    ("nn_median", "nearest-neighbour distance / person size, median", ".3f"),
    ("nn_p10", "nearest-neighbour distance / person size, p10", ".3f"),
    ("visibility", "joint visibility rate (15 joints)", ".3f"),
    ("visibility_annotated", "joint visibility rate (joints the set annotates)", ".3f"),
    ("track_len_mean", "track length (frames), mean", ".1f"),
    ("track_len_median", "track length (frames), median", ".1f"),
    ("enter_frac", "frames with a track entering", ".3f"),
    ("leave_frac", "frames with a track leaving", ".3f"),
)


def _quantile(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.quantile(values, q)) if len(values) else math.nan


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def _labelled_frames(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(video, frame index)`` of every labelled frame, sorted (one entry per frame, not pose)."""
    vids, idxs = [], []
    for vi, video in enumerate(dataset.videos):
        index = np.array([f.index for f in video.frames if f.is_labeled], dtype=np.int64)
        vids.append(np.full(len(index), vi, dtype=np.int64))
        idxs.append(index)
    if not vids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    vid, idx = np.concatenate(vids), np.concatenate(idxs)
    order = np.lexsort((idx, vid))
    return vid[order], idx[order]


def _segment_min_pairwise(centres: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For rows sorted by ``group``: distance from each row to the nearest other row of its group
    (``inf`` when alone). Builds the ``Σ n_g²`` within-group pairs at once."""
    n = len(centres)
    if n == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, n])
    size_of_row = np.repeat(sizes, sizes)
    start_of_row = np.repeat(starts, sizes)
    # row i is paired with rows start_of_row[i] .. start_of_row[i] + size_of_row[i] - 1
    left = np.repeat(np.arange(n), size_of_row)
    offsets = np.arange(len(left)) - np.repeat(np.cumsum(size_of_row) - size_of_row, size_of_row)
    right = np.repeat(start_of_row, size_of_row) + offsets
    dist = np.linalg.norm(centres[left] - centres[right], axis=-1)
    dist[left == right] = np.inf
    return np.minimum.reduceat(dist, np.r_[0, np.cumsum(size_of_row)[:-1]])


def _labelled_poses(dataset: Dataset, frame_vid: np.ndarray, frame_idx: np.ndarray):
    """Keypoints, track ids and videos of the poses of labelled frames, and each pose's frame row
    in ``(frame_vid, frame_idx)``."""
    table = dataset.table()
    frame_key = frame_vid * (1 << 32) + frame_idx
    pose_key = table.video * (1 << 32) + table.frame
    if len(frame_key):
        row = np.minimum(np.searchsorted(frame_key, pose_key), len(frame_key) - 1)
        keep = frame_key[row] == pose_key
    else:
        row, keep = np.zeros(len(table), np.int64), np.zeros(len(table), bool)
    return table.keypoints[keep], table.track_ids[keep], table.video[keep], row[keep]


def _crowding(row: np.ndarray, num_frames: int) -> dict[str, float]:
    """People per labelled frame: mean, p90, max."""
    people = np.bincount(row, minlength=num_frames).astype(np.float64)
    return {
        "people_mean": _mean(people),
        "people_p90": _quantile(people, 0.9),
        "people_max": float(people.max()) if len(people) else math.nan,
    }


def _size_and_visibility(
    dataset: Dataset, present: np.ndarray, size: np.ndarray, vid: np.ndarray
) -> dict[str, float]:
    """Person size relative to the frame height, and the joint visibility rates."""
    heights = np.array([v.height for v in dataset.videos], dtype=np.float64)
    annotated = present.any(0)  # joints the set annotates at all (Bonn: no nose)
    return {
        "size_rel_height": _quantile(size / heights[vid], 0.5),
        "visibility": float(present.mean()) if len(present) else math.nan,
        "visibility_annotated": float(present[:, annotated].mean()) if annotated.any() else math.nan,
    }


def _nearest_neighbours(box: np.ndarray, size: np.ndarray, row: np.ndarray) -> dict[str, float]:
    """Nearest-neighbour distance inside each frame (poses are sorted by frame row already)."""
    centre = box[:, :2] + box[:, 2:] / 2
    nn = _segment_min_pairwise(np.nan_to_num(centre, nan=np.inf), row) if len(box) else np.zeros(0)
    nn = np.where(np.isfinite(nn), nn, np.nan) / size
    return {"nn_median": _quantile(nn, 0.5), "nn_p10": _quantile(nn, 0.1)}


@dataclass
class _Tracks:
    """The poses with a track id, sorted by (video, track, frame rank); ``same_track[i]`` and
    ``consecutive[i]`` relate pose ``i + 1`` to pose ``i``."""

    vid: np.ndarray
    tid: np.ndarray
    rank: np.ndarray
    kp: np.ndarray
    present: np.ndarray
    size: np.ndarray
    same_track: np.ndarray
    consecutive: np.ndarray


def _tracks(
    kp: np.ndarray, present: np.ndarray, size: np.ndarray, tid: np.ndarray, vid: np.ndarray, rank: np.ndarray
) -> _Tracks:
    """:class:`_Tracks` from the per-pose columns (``rank``: frame rank of each pose)."""
    tracked = tid >= 0
    order = np.lexsort((rank[tracked], tid[tracked], vid[tracked]))
    t_vid, t_tid, t_rank = vid[tracked][order], tid[tracked][order], rank[tracked][order]
    same_track = (t_vid[1:] == t_vid[:-1]) & (t_tid[1:] == t_tid[:-1])
    return _Tracks(
        vid=t_vid,
        tid=t_tid,
        rank=t_rank,
        kp=kp[tracked][order],
        present=present[tracked][order],
        size=size[tracked][order],
        same_track=same_track,
        consecutive=same_track & (t_rank[1:] == t_rank[:-1] + 1),
    )


def _check_one_pose_per_track_and_frame(
    t: _Tracks, dataset: Dataset, frame_vid: np.ndarray, frame_idx: np.ndarray
) -> None:
    """Refuse a track id that occurs twice in one frame, naming the video and frame."""
    if not len(t.vid):
        return
    dup = t.same_track & (t.rank[1:] == t.rank[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        video = dataset.videos[int(t.vid[i])]
        index = frame_idx[np.searchsorted(frame_vid, t.vid[i]) + t.rank[i]]
        from keytrack.io.errors import DataError

        raise DataError(
            video.source or video.name,
            f"track id {int(t.tid[i])} occurs twice",
            frame=f"frame {int(index)}",
            field="track_ids",
        )


def _displacement(t: _Tracks) -> dict[str, float]:
    """Displacement between consecutive frames of a track relative to the person size."""
    both = t.present[1:] & t.present[:-1]
    step = np.linalg.norm(t.kp[1:, :, :2] - t.kp[:-1, :, :2], axis=-1)
    n_both = both.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        disp = np.where(both, step, 0.0).sum(-1) / n_both / ((t.size[1:] + t.size[:-1]) / 2)
    disp = disp[t.consecutive & (n_both > 0)]
    return {"disp_median": _quantile(disp, 0.5), "disp_p90": _quantile(disp, 0.9)}


def _track_lengths(t: _Tracks) -> dict[str, float]:
    """Number of tracks and their lengths in labelled frames."""
    new_track = np.r_[True, ~t.same_track] if len(t.vid) else np.zeros(0, bool)
    track_start = np.flatnonzero(new_track)
    lengths = np.diff(np.r_[track_start, len(t.vid)]).astype(np.float64)
    return {
        "tracks": float(len(lengths)),
        "track_len_mean": _mean(lengths),
        "track_len_median": _quantile(lengths, 0.5),
    }


def _entering_and_leaving(t: _Tracks, frame_vid: np.ndarray, frames_in_video: np.ndarray) -> dict[str, float]:
    """Fraction of frames where a track enters (present at rank r > 0 and not at r - 1) or leaves
    (present at r < last and not at r + 1)."""
    has_prev = np.r_[False, t.consecutive] if len(t.vid) else np.zeros(0, bool)
    has_next = np.r_[t.consecutive, False] if len(t.vid) else np.zeros(0, bool)
    last_rank = frames_in_video[t.vid] - 1
    frame_row = np.searchsorted(frame_vid, t.vid, side="left") + t.rank
    entering = np.unique(frame_row[~has_prev & (t.rank > 0)])
    leaving = np.unique(frame_row[~has_next & (t.rank < last_rank)])
    n_videos_with_frames = int((frames_in_video > 0).sum())
    eligible = len(frame_vid) - n_videos_with_frames  # all frames but each video's first
    return {
        "enter_frac": len(entering) / eligible if eligible else math.nan,
        "leave_frac": len(leaving) / eligible if eligible else math.nan,
    }


def compute_stats(dataset: Dataset) -> dict[str, float]:
    """The statistics of :data:`STATISTICS` for ``dataset`` (definitions in the module docstring).

    Only labelled frames count; poses of unlabelled frames are ignored. Poses with track id ``-1``
    count for crowding and visibility but not for the track statistics.
    """
    frame_vid, frame_idx = _labelled_frames(dataset)
    kp, tid, vid, row = _labelled_poses(dataset, frame_vid, frame_idx)
    # rank of each labelled frame inside its video
    frame_rank = np.arange(len(frame_vid)) - np.searchsorted(frame_vid, frame_vid, side="left")
    frames_in_video = np.bincount(frame_vid, minlength=len(dataset.videos))

    stats: dict[str, float] = {
        "videos": float(len(dataset.videos)),
        "frames": float(len(frame_vid)),
        "poses": float(len(kp)),
    }
    stats.update(_crowding(row, len(frame_vid)))
    present = kp[..., 2] > 0
    box = keypoint_boxes(kp)
    size = np.hypot(box[:, 2], box[:, 3])
    size = np.where(size > 0, size, np.nan)  # one keypoint: no extent
    stats.update(_size_and_visibility(dataset, present, size, vid))
    stats.update(_nearest_neighbours(box, size, row))
    tracks = _tracks(kp, present, size, tid, vid, frame_rank[row])
    _check_one_pose_per_track_and_frame(tracks, dataset, frame_vid, frame_idx)
    stats.update(_displacement(tracks))
    stats.update(_track_lengths(tracks))
    stats.update(_entering_and_leaving(tracks, frame_vid, frames_in_video))
    return stats


def format_value(key: str, value: float) -> str:
    """A statistic as printed in the table (``–`` where it is undefined)."""
    spec = next(fmt for k, _, fmt in STATISTICS if k == key)
    return format(value, spec) if math.isfinite(value) else "–"


def markdown_table(columns: dict[str, dict[str, float]]) -> str:
    """One row per statistic, one column per dataset (``columns``: name -> :func:`compute_stats`)."""
    from keytrack import tables

    rows = [
        {"statistic": label, **{n: format_value(key, columns[n][key]) for n in columns}}
        for key, label, _ in STATISTICS
    ]
    return (
        tables.markdown_table(
            rows,
            [tables.Column("statistic", align="left"), *(tables.Column(n, align="right") for n in columns)],
        )
        + "\n"
    )


def write_csv(columns: dict[str, dict[str, float]], path: Path) -> None:
    """The table as CSV (full precision): ``statistic,<dataset>,...``."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["statistic", *columns])
        for key, _, _ in STATISTICS:
            writer.writerow([key, *(repr(columns[n][key]) for n in columns)])


# --------------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a PoseTrack18-layout dataset root to compare with (read by keytrack.io)",
    )
    parser.add_argument(
        "--split",
        action="append",
        default=None,
        help="split(s) of --data to measure, one column each (repeat or comma-separate; "
        "default: the whole root as one column)",
    )
    parser.add_argument(
        "--videos",
        type=at_least_one,
        default=None,
        help="number of synthetic videos (default: the default set's size)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes")
    parser.add_argument(
        "--stride-1",
        dest="stride1",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add a column for the synthetic scenes sampled at every simulated frame "
        "(frame stride 1, like fully annotated real video)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="generate the synthetic default instead of reading the cached copy",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the Markdown table here, and a CSV beside it (same stem)",
    )


def run(args: argparse.Namespace) -> int:
    from keytrack.synth import DEFAULT_NUM_VIDEOS, SynthConfig, default_dataset, generate_dataset

    num_videos = DEFAULT_NUM_VIDEOS if args.videos is None else args.videos
    columns: dict[str, dict[str, float]] = {}
    synth = (
        generate_dataset(num_videos, args.seed)
        if args.no_cache
        else default_dataset(num_videos=num_videos, seed=args.seed)
    )
    columns["synthetic default"] = compute_stats(synth)
    if args.stride1:
        config = replace(SynthConfig(), frame_strides={1: 1.0})
        columns["synthetic, stride 1"] = compute_stats(generate_dataset(num_videos, args.seed, config))
    if args.data is not None:
        from keytrack.io import read_dataset

        splits = [s for item in (args.split or []) for s in item.split(",") if s] or [None]
        for split in splits:
            real = read_dataset(args.data, split=split)
            name = args.data.name + (f" {split}" if split else "")
            columns[name] = compute_stats(real)
    table = markdown_table(columns)
    sys.stdout.write(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        write_csv(columns, args.out.with_suffix(".csv"))
        print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    return 0
