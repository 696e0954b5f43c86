"""Keypoint HOTA as the PoseTrack21 kit computes it, and IDF1, on hand-computable scenes.

Every pose below has all 15 joints unless said otherwise, so each joint sees the same events and
per-joint values equal the totals. HEAD gives a head size of 0.6 x 50 = 30 px.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from test_evaluation import dataset, frame  # noqa: E402  (the same hand-made frames)

from keytrack.evaluation import EvaluationError
from keytrack.evaluation.hota import ALPHAS, hota
from keytrack.io import read_dataset, write_posetrack21
from keytrack.poses import Dataset
from keytrack.skeleton import JOINTS, NUM_JOINTS

A, B, C = (100.0, 100.0), (400.0, 100.0), (700.0, 100.0)


def pose(centre, offset=(0.0, 0.0), drop=()) -> np.ndarray:
    kp = np.zeros((NUM_JOINTS, 3))
    kp[:, 0] = centre[0] + 3.0 * np.arange(NUM_JOINTS) + offset[0]
    kp[:, 1] = centre[1] + 5.0 * np.arange(NUM_JOINTS) + offset[1]
    kp[:, 2] = 1.0
    for name in drop:
        kp[JOINTS.index(name)] = 0.0
    return kp


def one_track(n: int = 4, **kwargs) -> Dataset:
    return dataset([frame(i, [pose(A)], [1]) for i in range(n)], **kwargs)


def close(value, expected) -> bool:
    return np.allclose(value, expected, rtol=0, atol=1e-9)


def check_all_joints(r: dict, metric: str, expected: float) -> None:
    assert close(r["per_joint"][metric], expected), (metric, r["per_joint"][metric])
    assert close(r["total"][metric], expected), (metric, r["total"][metric])


def test_perfect_track_is_100():
    r = hota(one_track(), dataset([frame(i, [pose(A)], [5]) for i in range(4)]))
    for metric in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr", "IDF1", "IDP", "IDR"):
        check_all_joints(r, metric, 100.0)
    assert close(r["counts"]["TP"][:, :NUM_JOINTS], 4) and r["num_frames"] == 4


def test_identity_switch_halfway():
    # one GT track (4 frames) predicted as id 10 then id 20: TP = 4, matches (g,10) = (g,20) = 2,
    # |g| = 4, |10| = |20| = 2. AssA = sum_c A(c) |TPA(c)| / |TP| with A(c) = TPA / (TPA+FNA+FPA):
    # A(g,10) = 2 / (4 + 2 - 2) = 0.5, likewise (g,20): AssA = (2 * 0.5 + 2 * 0.5) / 4 = 0.5.
    # AssRe = (2 * 2/4 + 2 * 2/4) / 4 = 0.5, AssPr = (2 * 2/2 + 2 * 2/2) / 4 = 1.
    r = hota(one_track(), dataset([frame(i, [pose(A)], [10 if i < 2 else 20]) for i in range(4)]))
    check_all_joints(r, "DetA", 100.0)
    check_all_joints(r, "AssA", 50.0)
    check_all_joints(r, "AssRe", 50.0)
    check_all_joints(r, "AssPr", 100.0)
    check_all_joints(r, "HOTA", 100 * math.sqrt(0.5))


def test_two_people_swapping_identities():
    # A(1), B(2) predicted [10, 20] then [20, 10]: four id pairs with 2 matches each, every id
    # 4 detections: A(c) = 2 / (4 + 4 - 2) = 1/3, AssA = 8 * 1/3 / 8 = 1/3.
    gt = dataset([frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)])
    pred = dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 2 else [20, 10]) for i in range(4)])
    r = hota(gt, pred)
    check_all_joints(r, "AssA", 100 / 3)
    check_all_joints(r, "HOTA", 100 * math.sqrt(1 / 3))


def test_missed_detection():
    # B missed in frame 3: TP 7, FN 1 -> DetA 7/8; A(a) = 4/4 = 1, A(b) = 3 / (4 + 3 - 3) = 3/4,
    # AssA = (4 * 1 + 3 * 3/4) / 7 = 6.25 / 7; HOTA = sqrt(7/8 * 6.25/7).
    gt = dataset([frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)])
    pred = dataset(
        [frame(i, [pose(A), pose(B)] if i < 3 else [pose(A)], [1, 2] if i < 3 else [1]) for i in range(4)]
    )
    r = hota(gt, pred)
    check_all_joints(r, "DetA", 100 * 7 / 8)
    check_all_joints(r, "DetRe", 100 * 7 / 8)
    check_all_joints(r, "DetPr", 100.0)
    check_all_joints(r, "AssA", 100 * 6.25 / 7)
    check_all_joints(r, "HOTA", 100 * math.sqrt(7 / 8 * 6.25 / 7))


def test_frame_without_predictions_counts_every_gt_joint_of_the_video_as_missed():
    # the kit's quirk: a frame with GT but no predicted pose adds the sequence's GT joint count
    # (4 per joint) to FN, not the frame's (1): TP 3, FN 4 -> DetA 3/7; AssA = 3 * 3/4 / 3.
    pred = dataset([frame(i, [pose(A)] if i < 3 else [], [1] if i < 3 else []) for i in range(4)])
    r = hota(one_track(), pred)
    assert close(r["counts"]["FN"][:, 0], 4)
    check_all_joints(r, "DetA", 100 * 3 / 7)
    check_all_joints(r, "AssA", 75.0)


def test_false_positive():
    # an extra pose far from anyone in frame 0: TP 4, FP 1 -> DetA = DetPr = 4/5, AssA 1.
    pred = dataset(
        [frame(i, [pose(A), pose(C)] if i == 0 else [pose(A)], [1, 9] if i == 0 else [1]) for i in range(4)]
    )
    r = hota(one_track(), pred)
    check_all_joints(r, "DetA", 80.0)
    check_all_joints(r, "DetPr", 80.0)
    check_all_joints(r, "DetRe", 100.0)
    check_all_joints(r, "AssA", 100.0)
    check_all_joints(r, "HOTA", 100 * math.sqrt(0.8))


def test_frame_without_gt_counts_every_predicted_joint_of_the_video_as_false_positive():
    # frame 3 is labeled but has no GT person: the kit adds the sequence's predicted joint count
    # (4 per joint: 3 matched + the stray one) to FP. TP 3, FP 4 -> DetA 3/7.
    gt = dataset([frame(i, [pose(A)] if i < 3 else [], [1] if i < 3 else []) for i in range(4)])
    pred = dataset([frame(i, [pose(A)] if i < 3 else [pose(C)], [1] if i < 3 else [2]) for i in range(4)])
    r = hota(gt, pred, compute_idf1=False)
    check_all_joints(r, "DetA", 100 * 3 / 7)


def test_offset_prediction_matches_at_low_alphas_only():
    # 9 px off with head size 30: d = 0.3, similarity 1 - 0.3 / 0.5001 = 0.40012, so it is a
    # match for alpha <= 0.40 (8 of the 19 thresholds) and a miss + false positive above.
    sim = 1 - 0.3 / 0.5001
    r = hota(one_track(), dataset([frame(i, [pose(A, offset=(9.0, 0.0))], [1]) for i in range(4)]))
    n = int((ALPHAS <= sim).sum())
    assert n == 8
    deta = r["per_alpha"]["DetA"][:, 0]
    assert close(deta[:n], 100.0) and close(deta[n:], 0.0)
    assert deta[ALPHAS.tolist().index(0.05)] != deta[-1]
    check_all_joints(r, "DetA", 100 * n / 19)
    check_all_joints(r, "HOTA", 100 * n / 19)
    # LocA is the mean similarity of the matches, and 1 at thresholds without any match
    check_all_joints(r, "LocA", 100 * (n * sim + (19 - n)) / 19)


def test_total_averages_each_videos_mean_over_joints():
    # no nose anywhere: nose has TP 0 and AssA 0; the total DetA pools the counts (56 / 56) but
    # the total AssA is the TP-weighted mean of each video's mean over the 15 joints (14/15).
    gt = dataset([frame(i, [pose(A, drop=("nose",))], [1]) for i in range(4)])
    pred = dataset([frame(i, [pose(A, drop=("nose",))], [3]) for i in range(4)])
    r = hota(gt, pred, compute_idf1=False)
    nose = JOINTS.index("nose")
    assert r["per_joint"]["HOTA"][nose] == 0 and close(np.delete(r["per_joint"]["HOTA"], nose), 100)
    assert close(r["total"]["DetA"], 100.0)
    assert close(r["total"]["AssA"], 100 * 14 / 15)
    assert close(r["total"]["HOTA"], 100 * math.sqrt(14 / 15))


def test_videos_combine_weighted_by_true_positives():
    # video 1 perfect (AssA 1, TP 4), video 2 one switch (AssA 0.5, TP 4): AssA 0.75
    gt = Dataset(one_track(name="a").videos + one_track(name="b").videos)
    pred = Dataset(
        dataset([frame(i, [pose(A)], [1]) for i in range(4)], "a").videos
        + dataset([frame(i, [pose(A)], [1 if i < 2 else 2]) for i in range(4)], "b").videos
    )
    r = hota(gt, pred, compute_idf1=False)
    check_all_joints(r, "AssA", 75.0)
    check_all_joints(r, "HOTA", 100 * math.sqrt(0.75))


def test_unlabeled_frames_and_ignore_regions_are_not_scored():
    region = [np.array([[650.0, 50.0], [900.0, 50.0], [900.0, 300.0], [650.0, 300.0]])]
    gt = dataset(
        [
            frame(0, [pose(A)], [1], ignore_regions=region),  # C lies inside the region
            frame(1, [pose(A)], [1], is_labeled=False),  # wrong prediction, unlabeled
            frame(2, [pose(A)], [1]),
            frame(3, [pose(A)], [1]),
        ]
    )
    pred = dataset(
        [
            frame(0, [pose(A), pose(C)], [1, 9]),
            frame(1, [pose(B)], [4]),
            frame(2, [pose(A)], [1]),
            frame(3, [pose(A)], [1]),
        ]
    )
    r = hota(gt, pred, compute_idf1=False)
    assert r["num_frames"] == 3
    check_all_joints(r, "HOTA", 100.0)


def test_idf1_of_a_switch():
    # poseval's MOT accumulators (reused here) see frames 0..2 of 4 (the last one is left out):
    # GT 1 and 2 three times each, pred 10 = (1, 1, 2), pred 20 = (2, 2, 1). Global assignment
    # 10 <-> 1, 20 <-> 2: IDTP 4, IDFN 2, IDFP 2 -> IDF1 = IDP = IDR = 4 / 6.
    gt = dataset([frame(i, [pose(A), pose(B)], [1, 2]) for i in range(4)])
    pred = dataset([frame(i, [pose(A), pose(B)], [10, 20] if i < 2 else [20, 10]) for i in range(4)])
    r = hota(gt, pred)
    for metric in ("IDF1", "IDP", "IDR"):
        check_all_joints(r, metric, 100 * 4 / 6)


def test_untracked_predictions_are_refused():
    with pytest.raises(EvaluationError, match="track id"):
        hota(one_track(), dataset([frame(i, [pose(A)], [-1]) for i in range(4)]))


def test_posetrack21_writer_round_trips(tmp_path):
    region = [np.array([[650.0, 50.0], [900.0, 50.0], [900.0, 300.0]])]
    data = dataset(
        [
            frame(0, [pose(A), pose(B, drop=("nose",))], [1, 2], ignore_regions=region),
            frame(1, [], [], is_labeled=False),
            frame(2, [pose(A)], [1]),
        ]
    )
    (path,) = write_posetrack21(data, tmp_path)
    doc = json.loads(path.read_text())
    assert all("ignore_regions_x" in im and "ignore_regions_y" in im for im in doc["images"])
    assert doc["images"][2]["ignore_regions_x"] == []
    assert [a["person_id"] for a in doc["annotations"]] == [a["track_id"] for a in doc["annotations"]]
    back = read_dataset(tmp_path).videos[0]
    for f, g in zip(data.videos[0].frames, back.frames):
        assert np.array_equal(f.keypoints, g.keypoints) and np.array_equal(f.track_ids, g.track_ids)
        assert np.array_equal(f.head_boxes, g.head_boxes) and f.is_labeled == g.is_labeled
        assert len(f.ignore_regions) == len(g.ignore_regions)
        for a, b in zip(f.ignore_regions, g.ignore_regions):
            assert np.array_equal(a, b)


def test_evaluate_command_adds_hota_and_idf1_beside_poseval(tmp_path, capsys):
    from keytrack.cli import main
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    gt = generate_dataset(2, seed=8, config=SynthConfig(frames_per_video=(8, 10)))
    for video in gt.videos:  # never annotate the nose, as Bonn
        for f in video.frames:
            f.keypoints[:, JOINTS.index("nose")] = 0.0
    write_posetrack18(gt, tmp_path / "gt")
    assert (
        main(["track", "--scorer", "oks", "--data", str(tmp_path / "gt"), "--out", str(tmp_path / "pred")])
        == 0
    )
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(tmp_path / "gt"),
                "--pred",
                str(tmp_path / "pred"),
                "--metrics",
                "poseval,hota,idf1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "MOTA" in printed and "%IDSW" in printed
    assert re.search(r"^HOTA: (\d+)/\1 videos", printed, re.M) and re.search(
        r"^scoring: (\d+)/\1 videos", printed, re.M
    )
    for row in ("| HOTA |", "| DetA |", "| AssA |", "| LocA |", "| IDF1 |"):
        assert row in printed
    result = json.loads(out.read_text())
    direct = hota(
        read_dataset(tmp_path / "gt", keep_empty_poses=True),
        read_dataset(tmp_path / "pred", keep_empty_poses=True),
    )
    assert result["hota"]["HOTA"]["total"] == pytest.approx(direct["total"]["HOTA"])
    assert set(result["hota"]["AssA"]["per_joint"]) == set(JOINTS) and "IDF1" in result["idf1"]
    assert result["idf1"]["IDF1"]["per_joint"]["nose"] is None  # NaN written as null
    assert "total" in result  # poseval's numbers are still there
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(tmp_path / "gt"),
                "--pred",
                str(tmp_path / "pred"),
                "--metrics",
                "hota,x",
            ]
        )
        == 2
    )
    assert "--metrics: unknown ['x']" in capsys.readouterr().err


def _pt21_annotation(
    image_id: int, ann_id: int, track_id: int, person_id: int, centre, with_keypoints=True
) -> dict:
    kp17 = np.zeros((17, 3))
    if with_keypoints:
        kp17[:, 0] = centre[0] + 3.0 * np.arange(17)
        kp17[:, 1] = centre[1] + 5.0 * np.arange(17)
        kp17[:, 2] = 1.0
        kp17[[3, 4]] = 0.0  # PoseTrack21's ears are placeholders
    return {
        "image_id": image_id,
        "id": ann_id,
        "category_id": 1,
        "track_id": track_id,
        "person_id": person_id,
        "keypoints": kp17.ravel().tolist(),
        "bbox": [centre[0] - 10, centre[1] - 10, 80, 110],
        "bbox_head": [centre[0], centre[1], 30, 30],
    }


def test_posetrack21_layout_is_read_as_the_kit_reads_it(tmp_path):
    """posetrack_data/<split>/, identity from track_id (not person_id), box-only people dropped and
    counted, unlabeled frames and ignore regions kept: HOTA of the file against itself is 100."""
    images = [
        {
            "id": 10 + t,
            "frame_id": 10 + t,
            "file_name": f"images/val/000001_x/{t:06d}.jpg",
            "is_labeled": t != 1,
            "has_labeled_person": True,
            "nframes": 3,
            "vid_id": "000001",
            "ignore_regions_x": [[600, 900, 900]] if t == 2 else [],
            "ignore_regions_y": [[50, 50, 300]] if t == 2 else [],
        }
        for t in range(3)
    ]
    anns = [
        _pt21_annotation(10, 1, 0, 1024, A),
        _pt21_annotation(10, 2, 1, 77, B),
        _pt21_annotation(10, 3, 2, 5, C, with_keypoints=False),
        _pt21_annotation(12, 4, 0, 1024, A),
        _pt21_annotation(12, 5, 1, 77, B),
    ]
    doc = {
        "images": images,
        "annotations": anns,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": [
                    "nose",
                    "head_bottom",
                    "head_top",
                    "left_ear",
                    "right_ear",
                    "left_shoulder",
                    "right_shoulder",
                    "left_elbow",
                    "right_elbow",
                    "left_wrist",
                    "right_wrist",
                    "left_hip",
                    "right_hip",
                    "left_knee",
                    "right_knee",
                    "left_ankle",
                    "right_ankle",
                ],
            }
        ],
    }
    folder = tmp_path / "posetrack_data" / "val"
    folder.mkdir(parents=True)
    (folder / "000001_x_val.json").write_text(json.dumps(doc))
    data = read_dataset(tmp_path, split="val")
    (video,) = data.videos
    assert [f.track_ids.tolist() for f in video.frames] == [[0, 1], [], [0, 1]]  # track_id, never person_id
    assert sum(data.skipped.values()) == 1  # the box-only person
    assert [f.is_labeled for f in video.frames] == [True, False, True]
    assert len(video.frames[2].ignore_regions) == 1 and not video.frames[0].ignore_regions
    r = hota(data, data)
    assert close(r["total"]["HOTA"], 100.0)
