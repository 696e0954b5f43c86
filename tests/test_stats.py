"""keytrack.stats: dataset statistics checked against values worked out by hand."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import NUM_JOINTS
from keytrack.stats import STATISTICS, compute_stats, markdown_table, write_csv


def _pose(x: float, y: float) -> np.ndarray:
    """A pose with two present joints spanning a 3 x 4 box (diagonal 5) from (x, y)."""
    kp = np.zeros((NUM_JOINTS, 3))
    kp[0] = (x, y, 1)
    kp[1] = (x + 3, y + 4, 1)
    return kp


def _frame(index: int, poses: dict[int, tuple[float, float]], labeled: bool = True) -> Frame:
    kp = np.stack([_pose(*xy) for xy in poses.values()]) if poses else np.zeros((0, NUM_JOINTS, 3))
    return Frame.from_poses(index, kp, track_ids=list(poses), is_labeled=labeled)


@pytest.fixture
def hand_built() -> Dataset:
    video_a = Video(
        "a",
        [
            _frame(0, {0: (0, 0), 1: (10, 0)}),
            _frame(1, {0: (1, 0), 2: (0, 20)}),  # track 0 moves 1 px; 1 is gone; 2 enters
            _frame(2, {0: (1, 2), 1: (10, 0), 2: (0, 20)}),  # track 0 moves 2 px; 1 comes back
        ],
        width=100,
        height=200,
    )
    video_b = Video(
        "b",
        [
            _frame(0, {0: (50, 50)}),
            _frame(1, {0: (60, 50), 5: (0, 0)}, labeled=False),  # not annotated: must be ignored
            _frame(2, {}),  # annotated, nobody there
        ],
        width=100,
        height=100,
    )
    return Dataset([video_a, video_b])


def test_statistics_match_hand_computed_values(hand_built):
    s = compute_stats(hand_built)
    assert (s["videos"], s["frames"], s["poses"], s["tracks"]) == (2, 5, 8, 4)

    people = np.array([2, 2, 3, 1, 0])
    assert s["people_mean"] == pytest.approx(1.6)
    assert s["people_p90"] == pytest.approx(2.6)  # sorted [0,1,2,2,3]: 2 + 0.6 * (3 - 2)
    assert s["people_p90"] == pytest.approx(np.quantile(people, 0.9))
    assert s["people_max"] == 3

    # every box is 3 x 4 (diagonal 5); frame heights 200 (7 poses) and 100 (1 pose)
    assert s["size_rel_height"] == pytest.approx(5 / 200)

    # track 0 of video a: 1 px then 2 px; track 2: 0 px; track 1 skips a frame (no pair)
    disp = np.array([1 / 5, 2 / 5, 0.0])
    assert s["disp_median"] == pytest.approx(0.2)
    assert s["disp_p90"] == pytest.approx(0.2 + 0.8 * 0.2)
    assert s["disp_p90"] == pytest.approx(np.quantile(disp, 0.9))

    # box centres: frame 0 (1.5, 2) & (11.5, 2); frame 1 (2.5, 2) & (1.5, 22);
    # frame 2 (2.5, 4), (11.5, 2), (1.5, 22); video b has one pose per labelled frame (no neighbour)
    d02_01 = np.hypot(9, 2)
    nn = np.array([10, 10, np.hypot(1, 20), np.hypot(1, 20), d02_01, d02_01, np.hypot(1, 18)]) / 5
    assert s["nn_median"] == pytest.approx(np.median(nn))
    assert s["nn_median"] == pytest.approx(2.0)
    assert s["nn_p10"] == pytest.approx(np.quantile(nn, 0.1))

    assert s["visibility"] == pytest.approx(2 / 15)
    assert s["visibility_annotated"] == pytest.approx(1.0)  # only joints 0 and 1 are ever annotated

    # lengths: a/0 = 3, a/1 = 2, a/2 = 2, b/0 = 1 (its unlabelled frame does not count)
    assert s["track_len_mean"] == pytest.approx(2.0)
    assert s["track_len_median"] == pytest.approx(2.0)

    # eligible frames: a/1, a/2, b/2 (enter) and a/0, a/1, b/0 (leave)
    # entering: a/1 (track 2), a/2 (track 1 back); leaving: a/0 (track 1), b/0 (track 0)
    assert s["enter_frac"] == pytest.approx(2 / 3)
    assert s["leave_frac"] == pytest.approx(2 / 3)


def test_displacement_is_relative_to_person_size():
    def video(scale: float) -> Video:
        frames = [Frame.from_poses(k, _pose(k * 2.0, 0) * [scale, scale, 1], track_ids=[7]) for k in range(3)]
        return Video("v", frames, 100, 100)

    one, twice = compute_stats(Dataset([video(1.0)])), compute_stats(Dataset([video(2.0)]))
    assert one["disp_median"] == pytest.approx(2 / 5)
    assert twice["disp_median"] == pytest.approx(one["disp_median"])  # twice the motion, twice the size


def test_untracked_poses_count_for_crowding_but_not_for_tracks():
    frames = [Frame.from_poses(0, np.stack([_pose(0, 0), _pose(10, 0)]), track_ids=[-1, 4])]
    s = compute_stats(Dataset([Video("v", frames, 100, 100)]))
    assert s["people_mean"] == 2 and s["tracks"] == 1
    assert s["nn_median"] == pytest.approx(2.0)


def test_repeated_track_id_in_a_frame_is_an_error_naming_the_video():
    frames = [Frame.from_poses(0, np.stack([_pose(0, 0), _pose(10, 0)]), track_ids=[3, 3])]
    with pytest.raises(ValueError, match=r"clip\.json.*track id 3"):
        compute_stats(Dataset([Video("v", frames, 100, 100, source="clip.json")]))


def test_empty_dataset_gives_nan_not_an_error():
    s = compute_stats(Dataset([]))
    assert s["poses"] == 0 and np.isnan(s["people_mean"]) and np.isnan(s["disp_median"])


def test_table_and_csv_have_one_column_per_dataset(hand_built, tmp_path):
    cols = {"x": compute_stats(hand_built), "y": compute_stats(Dataset(hand_built.videos[:1]))}
    table = markdown_table(cols)
    lines = table.strip().splitlines()
    assert lines[0] == "| statistic | x | y |" and len(lines) == 2 + len(STATISTICS)
    assert "| people per frame, max | 3 | 3 |" in lines
    write_csv(cols, tmp_path / "t.csv")
    rows = list(csv.reader(open(tmp_path / "t.csv")))
    assert rows[0] == ["statistic", "x", "y"]
    assert dict((r[0], float(r[1])) for r in rows[1:])["people_mean"] == pytest.approx(1.6)


def test_data_stats_command_compares_synthetic_with_a_posetrack18_folder(
    hand_built, tmp_path, monkeypatch, capsys
):
    from keytrack import io
    from keytrack.cli import main

    monkeypatch.setenv("KEYTRACK_CACHE", str(tmp_path / "cache"))
    io.write_posetrack18(Dataset(hand_built.videos[:1]), tmp_path / "real" / "annotations" / "train")
    out = tmp_path / "docs" / "stats.md"
    assert (
        main(
            [
                "data-stats",
                "--data",
                str(tmp_path / "real"),
                "--split",
                "train",
                "--videos",
                "2",
                "--no-stride-1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    header = "| statistic | synthetic default | real train |"
    assert header in printed and out.read_text().startswith(header)
    assert "| tracks | " in printed and "| 3 |" in out.read_text()  # the real column: 3 tracks
    assert (tmp_path / "docs" / "stats.csv").exists()
    assert list((tmp_path / "cache" / "synth").glob("*/dataset.npz"))
